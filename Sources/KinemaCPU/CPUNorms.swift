import Foundation
import KinemaCore

// Row-wise ops over the last axis: softmax, LayerNorm, RMSNorm.
//
// Each row [D] is loaded into f32 scratch, its statistics computed, and the normalized row rounded once
// into the contiguous output. Statistics (softmax's sum, LayerNorm's mean and variance, RMSNorm's mean
// square) are accumulated in f64 and then held in f32 like PyTorch's CPU kernels hold theirs; the f64
// accumulation keeps long rows (D = 5120) of large values (|x| ~ 1e4) accurate without Welford's divides.
// LayerNorm is two-pass: variance = mean((x − mean)²), never mean(x²) − mean², which cancels
// catastrophically when |mean| ≫ std.

enum CPUNorms {
    /// Softmax over the last axis, stabilized by subtracting the row max (so exp never overflows and the
    /// largest term is exactly 1). A row containing NaN gives NaN; a row of all −inf gives NaN, as PyTorch.
    static func softmax(_ x: Tensor) throws -> Tensor {
        try CPUChecks.floating(x, "softmax")
        let rows = try RowSource(x, "softmax")
        return try forEachRow(rows, shape: x.shape, dtype: x.dtype) { v, n in
            var m = -Float.infinity
            for i in 0..<n where v[i] > m || v[i].isNaN {
                m = v[i]
                if m.isNaN { break }
            }
            for i in 0..<n { v[i] = Foundation.exp(v[i] - m) }
            let inverse = Float(1 / sumF64(v, n))
            for i in 0..<n { v[i] *= inverse }
        }
    }

    /// (x − mean) / sqrt(var + eps) · weight + bias over the last axis, biased variance (as PyTorch).
    static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        try CPUChecks.floating(x, "layerNorm")
        let rows = try RowSource(x, "layerNorm")
        let gamma = try parameter(weight, length: rows.length, "layerNorm weight")
        let beta = try parameter(bias, length: rows.length, "layerNorm bias")
        return try forEachRow(rows, shape: x.shape, dtype: x.dtype) { v, n in
            layerNormalize(v, n, eps: eps)
            if let gamma { gamma.withUnsafeBufferPointer { w in for j in 0..<n { v[j] *= w[j] } } }
            if let beta { beta.withUnsafeBufferPointer { b in for j in 0..<n { v[j] += b[j] } } }
        }
    }

    /// v[0..<n] ↦ (v − mean) / sqrt(var + eps) in place (the statistics of `layerNorm`).
    static func layerNormalize(_ v: UnsafeMutablePointer<Float>, _ n: Int, eps: Float) {
        let mean = sumF64(v, n) / Double(n)
        var s0 = 0.0, s1 = 0.0
        var i = 0
        while i + 2 <= n {
            let d0 = Double(v[i]) - mean, d1 = Double(v[i + 1]) - mean
            s0 += d0 * d0
            s1 += d1 * d1
            i += 2
        }
        if i < n { let d = Double(v[i]) - mean; s0 += d * d }
        let variance = (s0 + s1) / Double(n)
        // Centre and scale in f64: rounding the mean to f32 first costs ~1e-5 relative on rows whose
        // mean is large against their spread (mean 100, spread 0.1), as torch's f32 kernel shows.
        let rstd = 1 / (variance + Double(eps)).squareRoot()
        for j in 0..<n { v[j] = Float((Double(v[j]) - mean) * rstd) }
    }

    /// x / sqrt(mean(x²) + eps) · weight over the last axis.
    static func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        try CPUChecks.floating(x, "rmsNorm")
        let rows = try RowSource(x, "rmsNorm")
        let gamma = try parameter(weight, length: rows.length, "rmsNorm weight")
        return try forEachRow(rows, shape: x.shape, dtype: x.dtype) { v, n in
            rmsNormalize(v, n, eps: eps)
            if let gamma { gamma.withUnsafeBufferPointer { w in for j in 0..<n { v[j] *= w[j] } } }
        }
    }

    /// v[0..<n] ↦ v / sqrt(mean(v²) + eps) in place (the statistics of `rmsNorm`).
    static func rmsNormalize(_ v: UnsafeMutablePointer<Float>, _ n: Int, eps: Float) {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= n {
            let a = Double(v[i]), b = Double(v[i + 1]), c = Double(v[i + 2]), d = Double(v[i + 3])
            s0 += a * a
            s1 += b * b
            s2 += c * c
            s3 += d * d
            i += 4
        }
        while i < n { let a = Double(v[i]); s0 += a * a; i += 1 }
        let meanSquare = ((s0 + s1) + (s2 + s3)) / Double(n)
        let scale = Float(1 / (meanSquare + Double(eps)).squareRoot())
        for j in 0..<n { v[j] *= scale }
    }

    // MARK: - Shared row machinery

    /// Runs `body(row, D)` in place on every row in f32 and stores the rows into a new contiguous tensor.
    private static func forEachRow(
        _ rows: RowSource, shape: [Int], dtype: DType, _ body: (UnsafeMutablePointer<Float>, Int) -> Void
    ) throws -> Tensor {
        let out = try Tensor.uninitialized(shape, dtype: dtype)
        let destination = out.hostPointer
        let length = rows.length
        Parallel.forRanges(rows.rows, grain: max(1, parallelGrain / max(length, 1))) { range in
            withScratch(length) { scratch in
                rows.forEachRow(range) { row, elementOffset in
                    rows.load(rowAt: elementOffset, into: scratch)
                    body(scratch, length)
                    ElementRun.store(scratch, count: length, to: destination, offset: row * length, dtype: dtype)
                }
            }
        }
        return out
    }

    /// A [D] weight or bias as contiguous f32 (any float dtype, any stride), or nil.
    static func parameter(_ p: Tensor?, length: Int, _ context: String) throws -> [Float]? {
        guard let p else { return nil }
        try CPUChecks.vector(p, length: length, context)
        let source = try StridedSource(p)
        return [Float](unsafeUninitializedCapacity: length) { buffer, initialized in
            if let address = buffer.baseAddress { source.gather(0..<length, into: address) }
            initialized = length
        }
    }

    /// Σ v[0..<n] in f64 with four partial sums (independent dependency chains).
    @inline(__always)
    static func sumF64(_ v: UnsafePointer<Float>, _ n: Int) -> Double {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= n {
            s0 += Double(v[i])
            s1 += Double(v[i + 1])
            s2 += Double(v[i + 2])
            s3 += Double(v[i + 3])
            i += 4
        }
        while i < n { s0 += Double(v[i]); i += 1 }
        return (s0 + s1) + (s2 + s3)
    }
}
