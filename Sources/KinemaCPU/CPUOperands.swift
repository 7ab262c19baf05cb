import KinemaCore

// Shared plumbing for the GEMM-based ops (matmul, linear, attention, conv3d) on top of CPUStrided.swift's
// helpers: batch offsets, gathers to contiguous f32, and rounding f32 results into the output dtype.

enum CPUOperands {
    /// Element offsets (relative to the view's first element) of every index of `shape`, in row-major order,
    /// for a tensor with `strides` (0 for broadcast axes).
    static func offsets(shape: [Int], strides: [Int]) -> [Int] {
        let count = shape.reduce(1, *)
        var result = [Int](repeating: 0, count: count)
        guard count > 1 else { return result }
        var index = [Int](repeating: 0, count: shape.count)
        var position = 0
        for flat in 1..<count {
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                position += strides[axis]
                if index[axis] < shape[axis] { break }
                position -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
            result[flat] = position
        }
        return result
    }

    /// A contiguous f32 copy of `x` (any float dtype, any strides, rank ≥ 1). Caller deallocates.
    static func gatherFloats(_ x: Tensor, _ context: String) throws -> UnsafeMutablePointer<Float> {
        let source = try RowSource(x, context)
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(x.count, 1))
        let length = source.length
        Parallel.forRanges(source.rows, grain: max(1, parallelGrain / max(length, 1))) { rows in
            source.forEachRow(rows) { row, offset in source.load(rowAt: offset, into: out + row * length) }
        }
        return out
    }

    /// The values of a 1-D parameter (bias) as f32, checked to have `count` elements.
    static func vector(_ x: Tensor, count: Int, _ context: String) throws -> [Float] {
        try CPUChecks.vector(x, length: count, context)
        return try x.floats()
    }

    /// Rounds `rows` rows of `columns` f32 values (row stride `sourceStride`) into the contiguous tensor
    /// `output` from element `start`, rows `outputStride` elements apart (default: packed), once.
    static func store(
        _ source: UnsafePointer<Float>, rows: Int, columns: Int, sourceStride: Int, into output: Tensor, start: Int,
        outputStride: Int? = nil
    ) {
        let stride = outputStride ?? columns
        for row in 0..<rows {
            ElementRun.store(
                source + row * sourceStride, count: columns, to: output.hostPointer, offset: start + row * stride,
                dtype: output.dtype)
        }
    }
}

extension GemmOperand {
    /// Rows `range` of this matrix.
    func rowSlice(_ range: Range<Int>) -> GemmOperand {
        var result = self
        result.base = base + range.lowerBound * rowStride * dtype.byteSize
        result.rows = range.count
        return result
    }
}
