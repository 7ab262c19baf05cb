import KinemaCore

// Rotary position embedding on interleaved pairs, as Wan applies it: the head dimension D is D/2 complex
// numbers (x[2i] + i·x[2i+1]), each multiplied by e^{iθ} = cos θ + i·sin θ for its position l and pair i.
//
//   x [B, L, H, D], cos/sin [L, D/2]  →  [B, L, H, D]
//   (x[2i], x[2i+1]) ↦ (x[2i]·cos − x[2i+1]·sin, x[2i]·sin + x[2i+1]·cos)
//
// Computed in f32 with separately rounded products (no FMA), as PyTorch's real-valued formulation is.
// Wan's original code rotates in complex128; the difference is below bf16 resolution and within f32 noise.

enum CPURope {
    static func apply(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor {
        try CPUChecks.floating(x, "rope")
        guard x.rank == 4 else {
            throw KinemaError.shapeMismatch(context: "rope x", expected: "[B, L, H, D]", found: "\(x.shape)")
        }
        let (length, heads, dim) = (x.shape[1], x.shape[2], x.shape[3])
        guard dim % 2 == 0 else {
            throw KinemaError.invalidArgument("rope: head dimension \(dim) of \(x.shape) is odd; it must hold (re, im) pairs")
        }
        let half = dim / 2
        for (name, table) in [("cos", cos), ("sin", sin)] {
            try CPUChecks.floating(table, "rope \(name)")
            guard table.shape == [length, half] else {
                throw KinemaError.shapeMismatch(context: "rope \(name) for x \(x.shape)", expected: "[\(length), \(half)]", found: "\(table.shape)")
            }
        }
        let cosines = try table(cos)
        let sines = try table(sin)
        let rows = try RowSource(x, "rope")
        let out = try Tensor.uninitialized(x.shape, dtype: x.dtype)
        let destination = out.hostPointer
        let dtype = x.dtype
        // Rows of x are (b, l, h) in row-major order, so row r sits at position l = (r / H) mod L.
        Parallel.forRanges(rows.rows, grain: max(1, parallelGrain / max(dim, 1))) { range in
            withScratch(2 * dim) { scratch in
                let input = scratch
                let result = scratch + dim
                cosines.withUnsafeBufferPointer { cosTable in
                    sines.withUnsafeBufferPointer { sinTable in
                        guard let cosBase = cosTable.baseAddress, let sinBase = sinTable.baseAddress else { return }
                        rows.forEachRow(range) { row, elementOffset in
                            rows.load(rowAt: elementOffset, into: input)
                            let position = (row / heads) % length
                            let c = cosBase + position * half
                            let s = sinBase + position * half
                            for i in 0..<half {
                                let re = input[2 * i], im = input[2 * i + 1]
                                result[2 * i] = re * c[i] - im * s[i]
                                result[2 * i + 1] = re * s[i] + im * c[i]
                            }
                            ElementRun.store(result, count: dim, to: destination, offset: row * dim, dtype: dtype)
                        }
                    }
                }
            }
        }
        return out
    }

    /// A [L, D/2] table as contiguous f32, whatever its dtype and strides.
    private static func table(_ t: Tensor) throws -> [Float] {
        let source = try StridedSource(t)
        return [Float](unsafeUninitializedCapacity: source.count) { buffer, initialized in
            if let address = buffer.baseAddress {
                Parallel.forRanges(source.count, grain: parallelGrain) { range in
                    source.gather(range, into: address + range.lowerBound)
                }
            }
            initialized = source.count
        }
    }
}
