import Foundation
import KinemaCore

// matmul and linear on the CPU: thin shape logic around CPUGemm. Arithmetic is f32 whatever the storage
// dtypes (bf16/f16 operands are widened while packing); results are rounded once into the output dtype.

enum CPUMatmul {
    /// Rows of f32 output buffered at a time when the output dtype is not f32 (keeps the scratch bounded:
    /// a [32760, 8960] bf16 result is produced in ~32 MiB slices, not one 1.2 GB f32 buffer).
    static let scratchFloats = 8 << 20
    /// Per-matrix flop count below which a batched matmul runs its matrices in parallel (each on one
    /// thread) instead of one after another (each multi-threaded).
    static let smallProductFlops = 1 << 24

    /// [..., M, K] · [..., K, N] → [..., M, N] with NumPy broadcasting of the batch axes; result dtype a.dtype.
    static func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try CPUChecks.floating(a, "matmul lhs")
        try CPUChecks.floating(b, "matmul rhs")
        guard a.rank >= 2, b.rank >= 2 else {
            throw KinemaError.shapeMismatch(context: "matmul", expected: "operands of rank ≥ 2", found: "\(a.shape) · \(b.shape)")
        }
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1]
        guard b.shape[b.rank - 2] == k else {
            throw KinemaError.shapeMismatch(context: "matmul", expected: "[..., M, \(k)] · [..., \(k), N]", found: "\(a.shape) · \(b.shape)")
        }
        let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
        let batch = try broadcastShape(aBatch, bBatch, a.shape, b.shape)
        let output = try Tensor.zeros(batch + [m, n], dtype: a.dtype)
        let batchCount = batch.reduce(1, *)
        guard batchCount > 0, m > 0, n > 0 else { return output }

        let aOffsets = CPUOperands.offsets(shape: batch, strides: broadcastStrides(a, batch: batch))
        let bOffsets = CPUOperands.offsets(shape: batch, strides: broadcastStrides(b, batch: batch))
        let engine = CPUGemm.engine  // read on this thread: a task-local override is not seen by workers
        let product = { (index: Int, threads: Int) throws in
            let lhs = try GemmOperand(matrixOf: a, elementOffset: aOffsets[index])
            let rhs = try GemmOperand(matrixOf: b, elementOffset: bOffsets[index])
            try multiply(lhs, rhs, bias: nil, into: output, start: index * m * n, engine: engine, threads: threads)
        }
        if batchCount > 1 && engine == .builtin && 2 * m * n * k < smallProductFlops {
            let failure = FirstError()
            Parallel.forEach(batchCount) { index in
                do { try product(index, 1) } catch { failure.record(error) }
            }
            try failure.rethrow()
        } else {
            for index in 0..<batchCount { try product(index, Parallel.threads) }
        }
        return output
    }

    /// x [..., in] · weightᵀ + bias with weight [out, in], bias [out]; result [..., out] in x.dtype.
    /// The weight is read in its own dtype and layout (a bf16 [8960, 1536] weight is widened panel by panel
    /// while packing, never copied whole to f32).
    static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: LinearActivation = .none) throws -> Tensor {
        try CPUChecks.floating(x, "linear input")
        try CPUChecks.floating(weight, "linear weight")
        guard x.rank >= 1, weight.rank == 2, weight.shape[1] == x.shape[x.rank - 1] else {
            throw KinemaError.shapeMismatch(
                context: "linear", expected: "x [..., in] with weight [out, in]", found: "x \(x.shape), weight \(weight.shape)")
        }
        let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
        let leading = Array(x.shape.dropLast())
        let rows = leading.reduce(1, *)
        let biasValues = try bias.map { try CPUOperands.vector($0, count: outFeatures, "linear bias") }
        let output = try Tensor.zeros(leading + [outFeatures], dtype: x.dtype)
        guard rows > 0, outFeatures > 0 else { return output }

        // x as one [rows, in] matrix: a view when its leading axes merge, otherwise an f32 copy.
        var gathered: UnsafeMutablePointer<Float>?
        defer { gathered?.deallocate() }
        let lhs: GemmOperand
        if let view = try x.viewed(as: [rows, inFeatures]) {
            lhs = try GemmOperand(matrixOf: view)
        } else {
            let copy = try CPUOperands.gatherFloats(x, "linear input")
            gathered = copy
            lhs = try GemmOperand(copy, rows: rows, columns: inFeatures)
        }
        let rhs = try GemmOperand(matrixOf: weight).transposed  // [in, out]
        try multiply(
            lhs, rhs, bias: biasValues, into: output, start: 0, engine: CPUGemm.engine, threads: Parallel.threads, activation: activation)
        return output
    }

    /// C = activation(A·B (+ bias per column)) written into `output` (contiguous) from element `start`,
    /// M×N elements, rounded once. f32 outputs are written in place; other dtypes go through an f32
    /// scratch of bounded size.
    static func multiply(
        _ a: GemmOperand, _ b: GemmOperand, bias: [Float]?, into output: Tensor, start: Int, engine: GemmEngine,
        threads: Int, activation: LinearActivation = .none
    ) throws {
        func activate(_ c: UnsafeMutablePointer<Float>, count: Int) {
            guard activation == .geluTanh else { return }
            Parallel.forRanges(count, grain: parallelGrain) { range in
                CPUElementwise.apply(.geluTanh, c + range.lowerBound, range.count)
            }
        }
        let m = a.rows, n = b.columns
        func prefill(_ c: UnsafeMutablePointer<Float>, rows: Int) {
            guard let bias else { return }
            bias.withUnsafeBufferPointer { values in
                guard let source = values.baseAddress else { return }
                for row in 0..<rows { (c + row * n).update(from: source, count: n) }
            }
        }
        let update: GemmUpdate = bias == nil ? .overwrite : .accumulate
        if output.dtype == .f32 {
            let c = output.hostPointer.assumingMemoryBound(to: Float.self) + start
            prefill(c, rows: m)
            try CPUGemm.multiply(a, b, into: c, ldc: n, update: update, engine: engine, threads: threads)
            activate(c, count: m * n)
            return
        }
        let chunkRows = max(1, min(m, scratchFloats / max(n, 1)))
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: chunkRows * n)
        defer { scratch.deallocate() }
        for r0 in stride(from: 0, to: m, by: chunkRows) {
            let rows = min(chunkRows, m - r0)
            prefill(scratch, rows: rows)
            try CPUGemm.multiply(a.rowSlice(r0..<(r0 + rows)), b, into: scratch, ldc: n, update: update, engine: engine, threads: threads)
            activate(scratch, count: rows * n)
            CPUOperands.store(scratch, rows: rows, columns: n, sourceStride: n, into: output, start: start + r0 * n)
        }
    }

    private static func broadcastShape(_ x: [Int], _ y: [Int], _ aShape: [Int], _ bShape: [Int]) throws -> [Int] {
        let rank = max(x.count, y.count)
        var result = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let p = axis - (rank - x.count) >= 0 ? x[axis - (rank - x.count)] : 1
            let q = axis - (rank - y.count) >= 0 ? y[axis - (rank - y.count)] : 1
            guard p == q || p == 1 || q == 1 else {
                throw KinemaError.shapeMismatch(
                    context: "matmul batch axes", expected: "broadcastable batch shapes", found: "\(aShape) · \(bShape)")
            }
            result[axis] = p == 1 ? q : p
        }
        return result
    }

    /// Strides of `x`'s batch axes aligned to `batch` (leading/size-1 axes broadcast with stride 0).
    private static func broadcastStrides(_ x: Tensor, batch: [Int]) -> [Int] {
        let own = x.rank - 2
        return (0..<batch.count).map { axis in
            let source = axis - (batch.count - own)
            guard source >= 0, x.shape[source] != 1 else { return 0 }
            return x.strides[source]
        }
    }
}

/// Keeps the first error thrown by any worker (workers run on GCD threads and cannot throw across it).
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?

    func record(_ error: any Error) {
        lock.lock()
        if self.error == nil { self.error = error }
        lock.unlock()
    }

    func rethrow() throws {
        lock.lock()
        defer { lock.unlock() }
        if let error { throw error }
    }
}
