import KinemaCore

// Shared plumbing for the GEMM-based ops (matmul, linear, attention, conv3d): input checks that turn bad
// calls into KinemaErrors, strided gathers to f32, and rounding f32 results into the output dtype.

enum CPUOperands {
    /// Throws unless `x` is a host tensor of a floating-point dtype.
    static func requireFloat(_ x: Tensor, _ context: String) throws {
        guard x.device == .cpu else {
            throw KinemaError.deviceMismatch(context: context, expected: .cpu, found: x.device)
        }
        guard x.dtype.isFloatingPoint else {
            throw KinemaError.dtypeMismatch(context: context, expected: "f32, bf16 or f16", found: x.dtype)
        }
    }

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

    /// A contiguous f32 copy of `x` (any float dtype, any strides). Caller deallocates.
    static func gatherFloats(_ x: Tensor) -> UnsafeMutablePointer<Float> {
        let count = x.count
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        guard count > 0 else { return out }
        let inner = x.rank == 0 ? 1 : x.shape[x.rank - 1]
        let innerStride = x.rank == 0 ? 1 : x.strides[x.rank - 1]
        let outer = offsets(shape: Array(x.shape.dropLast()), strides: Array(x.strides.dropLast()))
        let base = UnsafeRawPointer(x.storage.base)
        Parallel.forRanges(outer.count, grain: max(1, 16384 / max(inner, 1))) { rows in
            for row in rows {
                StridedFloats.load(
                    base, dtype: x.dtype, start: x.offset + outer[row], stride: innerStride, count: inner,
                    into: out + row * inner, outStride: 1)
            }
        }
        return out
    }

    /// The values of a 1-D parameter (bias) as f32, checked to have `count` elements.
    static func vector(_ x: Tensor, count: Int, _ context: String) throws -> [Float] {
        try requireFloat(x, context)
        guard x.rank == 1, x.shape[0] == count else {
            throw KinemaError.shapeMismatch(context: context, expected: "[\(count)]", found: "\(x.shape)")
        }
        return try x.floats()
    }

    /// Rounds `rows` rows of `columns` f32 values (row stride `sourceStride`) into the contiguous tensor
    /// `output` from element `start`, rows `outputStride` elements apart (default: packed), once.
    static func store(
        _ source: UnsafePointer<Float>, rows: Int, columns: Int, sourceStride: Int, into output: Tensor, start: Int,
        outputStride: Int? = nil
    ) throws {
        let base = output.hostPointer
        let size = output.dtype.byteSize
        let stride = outputStride ?? columns
        for row in 0..<rows {
            try HostElements.store(
                UnsafeBufferPointer(start: source + row * sourceStride, count: columns),
                into: base + (start + row * stride) * size, dtype: output.dtype)
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
