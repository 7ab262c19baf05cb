import KinemaCore

// The fused passes of the Wan block, as reference implementations. Each does the same f32 arithmetic,
// in the same order, as the unfused composition of CPU ops it replaces, and rounds once at the end; so
// with f32 activations the fused and unfused results are identical, and in bf16 the fused one skips the
// intermediate roundings.

enum CPUFused {
    /// (LN(x)·weight + bias)·(1 + scale) + shift → outDType. x [B, L, D]; shift/scale [B|1, 1, D].
    static func modulatedLayerNorm(
        _ x: Tensor, weight: Tensor?, bias: Tensor?, shift: Tensor?, scale: Tensor?, eps: Float, outDType: DType
    ) throws -> Tensor {
        let op = "modulatedLayerNorm"
        try CPUChecks.floating(x, op)
        try checkFloatOutput(outDType, op)
        guard x.rank == 3, x.shape[2] > 0 else {
            throw KinemaError.shapeMismatch(context: op, expected: "x [B, L, D] with D > 0", found: "\(x.shape)")
        }
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let gamma = try CPUNorms.parameter(weight, length: width, "\(op) weight")
        let beta = try CPUNorms.parameter(bias, length: width, "\(op) bias")
        let shiftRows = try modulation(shift, batch: batch, width: width, "\(op) shift")
        let scaleRows = try modulation(scale, batch: batch, width: width, "\(op) scale")
        let rows = try RowSource(x, op)
        let out = try Tensor.uninitialized(x.shape, dtype: outDType)
        let destination = out.hostPointer
        Parallel.forRanges(rows.rows, grain: max(1, parallelGrain / width)) { range in
            withScratch(width) { v in
                rows.forEachRow(range) { row, elementOffset in
                    rows.load(rowAt: elementOffset, into: v)
                    CPUNorms.layerNormalize(v, width, eps: eps)
                    if let gamma { for j in 0..<width { v[j] *= gamma[j] } }
                    if let beta { for j in 0..<width { v[j] += beta[j] } }
                    let sample = row / max(length, 1)
                    // 1 + scale is rounded to f32 first, as `affine(scale, 1, 1)` then `mul` do.
                    if let scaleRows {
                        let base = scaleRows.stride * sample
                        for j in 0..<width { v[j] *= scaleRows.values[base + j] + 1 }
                    }
                    if let shiftRows {
                        let base = shiftRows.stride * sample
                        for j in 0..<width { v[j] += shiftRows.values[base + j] }
                    }
                    ElementRun.store(v, count: width, to: destination, offset: row * width, dtype: outDType)
                }
            }
        }
        return out
    }

    /// x + y·gate (or x + y) in f32, the product rounded to f32 first; result in x's dtype.
    static func gatedResidual(_ x: Tensor, _ y: Tensor, gate: Tensor?) throws -> Tensor {
        let op = "gatedResidual"
        try CPUChecks.floating(x, op)
        try CPUChecks.floating(y, "\(op) y")
        guard x.rank == 3, y.shape == x.shape else {
            throw KinemaError.shapeMismatch(context: op, expected: "x [B, L, D] and y of the same shape", found: "x \(x.shape), y \(y.shape)")
        }
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let gates = try modulation(gate, batch: batch, width: width, "\(op) gate")
        let out = try Tensor.uninitialized(x.shape, dtype: x.dtype)
        guard width > 0 else { return out }
        let (xs, ys) = (try RowSource(x, op), try RowSource(y, op))
        let destination = out.hostPointer
        Parallel.forRanges(xs.rows, grain: max(1, parallelGrain / width)) { range in
            withScratch(2 * width) { scratch in
                let (a, b) = (scratch, scratch + width)
                var offsetsY: [Int] = []
                offsetsY.reserveCapacity(range.count)
                ys.forEachRow(range) { _, offset in offsetsY.append(offset) }
                xs.forEachRow(range) { row, offset in
                    xs.load(rowAt: offset, into: a)
                    ys.load(rowAt: offsetsY[row - range.lowerBound], into: b)
                    if let gates {
                        let base = gates.stride * (row / max(length, 1))
                        for j in 0..<width { b[j] = b[j] * gates.values[base + j] }
                    }
                    for j in 0..<width { a[j] = a[j] + b[j] }
                    ElementRun.store(a, count: width, to: destination, offset: row * width, dtype: x.dtype)
                }
            }
        }
        return out
    }

    /// RMSNorm over the full width, then interleaved RoPE per head; result in x's dtype.
    static func rmsNormRope(_ x: Tensor, weight: Tensor?, eps: Float, cos: Tensor, sin: Tensor, heads: Int) throws -> Tensor {
        let op = "rmsNormRope"
        try CPUChecks.floating(x, op)
        guard x.rank == 3, heads > 0, x.shape[2] > 0, x.shape[2] % (2 * heads) == 0 else {
            throw KinemaError.shapeMismatch(
                context: op, expected: "x [B, L, H·d] with \(heads) heads of even size d", found: "\(x.shape)")
        }
        let (length, width) = (x.shape[1], x.shape[2])
        let half = width / heads / 2
        let gamma = try CPUNorms.parameter(weight, length: width, "\(op) weight")
        var tables: [[Float]] = []
        for (name, table) in [("cos", cos), ("sin", sin)] {
            try CPUChecks.floating(table, "\(op) \(name)")
            guard table.shape == [length, half] else {
                throw KinemaError.shapeMismatch(context: "\(op) \(name) for x \(x.shape)", expected: "[\(length), \(half)]", found: "\(table.shape)")
            }
            tables.append(try table.floats())
        }
        let (cosines, sines) = (tables[0], tables[1])
        let rows = try RowSource(x, op)
        let out = try Tensor.uninitialized(x.shape, dtype: x.dtype)
        let destination = out.hostPointer
        Parallel.forRanges(rows.rows, grain: max(1, parallelGrain / width)) { range in
            withScratch(2 * width) { scratch in
                let (v, result) = (scratch, scratch + width)
                rows.forEachRow(range) { row, elementOffset in
                    rows.load(rowAt: elementOffset, into: v)
                    CPUNorms.rmsNormalize(v, width, eps: eps)
                    if let gamma { for j in 0..<width { v[j] *= gamma[j] } }
                    let table = (row % length) * half
                    for pair in 0..<(width / 2) {
                        let (c, s) = (cosines[table + pair % half], sines[table + pair % half])
                        let (re, im) = (v[2 * pair], v[2 * pair + 1])
                        result[2 * pair] = re * c - im * s
                        result[2 * pair + 1] = re * s + im * c
                    }
                    ElementRun.store(result, count: width, to: destination, offset: row * width, dtype: x.dtype)
                }
            }
        }
        return out
    }

    // MARK: - Helpers

    /// A [B, 1, D] or [1, 1, D] modulation tensor as f32 rows, with the row stride to use per sample
    /// (0 when broadcast over the batch).
    private static func modulation(_ t: Tensor?, batch: Int, width: Int, _ context: String) throws -> (values: [Float], stride: Int)? {
        guard let t else { return nil }
        try CPUChecks.floating(t, context)
        guard t.rank == 3, t.shape[0] == batch || t.shape[0] == 1, t.shape[1] == 1, t.shape[2] == width else {
            throw KinemaError.shapeMismatch(context: context, expected: "[\(batch), 1, \(width)] or [1, 1, \(width)]", found: "\(t.shape)")
        }
        return (try t.floats(), t.shape[0] == 1 ? 0 : width)
    }

    private static func checkFloatOutput(_ dtype: DType, _ context: String) throws {
        guard dtype.isFloatingPoint else {
            throw KinemaError.dtypeMismatch(context: "\(context) output", expected: "a floating-point dtype", found: dtype)
        }
    }
}
