// Argument checks for `Backend.gatherRows`, shared by every backend so that bad input gives the same
// KinemaError everywhere (and never reaches a kernel that would read outside the table).

public enum RowGather {
    /// Throws unless `table` is [V, D] with unit last stride (any stride when D ≤ 1) and every index is in
    /// 0..<V. Returns (V, D).
    @discardableResult
    public static func validate(_ table: Tensor, indices: [Int]) throws -> (rows: Int, width: Int) {
        guard table.rank == 2 else {
            throw KinemaError.shapeMismatch(context: "gatherRows table", expected: "[V, D]", found: "\(table.shape)")
        }
        let (rows, width) = (table.shape[0], table.shape[1])
        guard width <= 1 || table.strides[1] == 1 else {
            throw KinemaError.invalidArgument(
                "gatherRows: the table's rows must be contiguous (unit last stride); got \(table.shape) with strides \(table.strides)")
        }
        if let position = indices.firstIndex(where: { $0 < 0 || $0 >= rows }) {
            throw KinemaError.invalidArgument(
                "gatherRows: index \(indices[position]) at position \(position) is outside the table's rows (0..<\(rows))")
        }
        return (rows, width)
    }
}
