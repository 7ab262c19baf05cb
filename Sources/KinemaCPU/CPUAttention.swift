import KinemaCore
import KinemaVectorMath

// Scaled dot-product attention on the CPU, flash-attention style: softmax(Q·Kᵀ·scale)·V computed one
// (query tile × key tile) block at a time with an online softmax, so memory is O(Lq + Lk) per head and the
// Lq × Lk score matrix never exists.
//
// Scores are computed transposed, keys × queries, so that (a) the softmax runs down columns with one query
// per SIMD lane (running max, sum and exponentials all vectorize, no horizontal reductions), and (b) the
// probability block is already in the layout the micro-kernel reads for A in O += P·V (MR queries
// contiguous per key), so it is never repacked.
//
// Per head:  K̃ = K packed as GEMM A slivers (MR keys × D), Ṽ = V packed as B slivers (NR value columns × Lk),
//            both f32 — one widening/re-layout of each input, shared by every query tile.
// Per query tile (Bq queries, claimed dynamically by the worker threads):
//   Q̃ = Qᵀ packed as B slivers, pre-multiplied by scale·log2(e) so scores are in base 2
//   for each key tile (Bk keys):
//     Sᵀ = K̃[tile]·Q̃                               [Bk, Bq]   micro-kernel GEMM, depth D
//     mᵢ' = max(mᵢ, maxⱼ Sᵀⱼᵢ);  Pᵀⱼᵢ = 2^(Sᵀⱼᵢ − mᵢ')  every exponent ≤ 0: no overflow
//     lᵢ = lᵢ·2^(mᵢ − mᵢ') + Σⱼ Pᵀⱼᵢ;  Oᵢ *= 2^(mᵢ − mᵢ')
//     O += P·Ṽ[tile]                                [Bq, Dv]   micro-kernel GEMM, depth Bk, A = Pᵀ in place
//   out = O / l, rounded once to q.dtype.
// Everything accumulates in f32. The built-in micro-kernels are used even when BLAS is loaded: the blocks
// are small, already packed, and run inside worker threads (where a threaded BLAS would oversubscribe).

enum CPUAttention {
    /// Queries per work item (rounded up to a multiple of the kernel's MR and NR and of the SIMD width 16).
    static let queryTile = 96
    /// Keys per block (rounded up to the kernel's MR): Sᵀ is keyTile × queryTile floats (~96 KiB).
    static let keyTile = 256
    /// Largest total size of the packed K̃/Ṽ of the heads processed together.
    static let packedBudgetFloats = 64 << 20

    static func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws -> Tensor {
        try CPUChecks.floating(query, "attention query")
        try CPUChecks.floating(key, "attention key")
        try CPUChecks.floating(value, "attention value")
        guard query.rank == 4, key.rank == 4, value.rank == 4 else {
            throw KinemaError.shapeMismatch(
                context: "attention", expected: "q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv]",
                found: "q \(query.shape), k \(key.shape), v \(value.shape)")
        }
        let (batch, heads, lq, d) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let lk = key.shape[2], dv = value.shape[3]
        guard key.shape == [batch, heads, lk, d], value.shape[0] == batch, value.shape[1] == heads, value.shape[2] == lk else {
            throw KinemaError.shapeMismatch(
                context: "attention", expected: "k [\(batch), \(heads), Lk, \(d)] and v [\(batch), \(heads), Lk, Dv]",
                found: "k \(key.shape), v \(value.shape)")
        }
        guard scale.isFinite else { throw KinemaError.invalidArgument("attention: scale \(scale) is not finite") }
        let output = try Tensor.zeros([batch, heads, lq, dv], dtype: query.dtype)
        guard output.count > 0 else { return output }
        guard lk > 0 else {
            throw KinemaError.invalidArgument("attention: no keys (Lk = 0); the softmax over an empty set is undefined")
        }

        let kernel = Microkernel.best
        let mr = kernel.rows, nr = kernel.columns
        let queryRows = roundUp(queryTile, leastCommonMultiple(leastCommonMultiple(mr, nr), OnlineSoftmax.width))
        let keyRows = roundUp(keyTile, mr)
        let queryTiles = ceilDiv(lq, queryRows)
        let totalHeads = batch * heads
        let kFloats = roundUp(lk, mr) * d, vFloats = roundUp(dv, nr) * lk
        // Heads packed together: enough query tiles for every worker to have several, within the budget.
        let group = max(1, min(totalHeads, ceilDiv(4 * Parallel.threads, queryTiles), packedBudgetFloats / max(kFloats + vFloats, 1)))
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: max(group * (kFloats + vFloats), 1))
        defer { packed.deallocate() }
        let scoreScale = scale * 1.442_695_04  // log2(e): exponentials become exp2

        for firstHead in stride(from: 0, to: totalHeads, by: group) {
            let count = min(group, totalHeads - firstHead)
            // Pack K̃ and Ṽ of each head in the group: 2·count independent jobs.
            let packing = FirstError()
            Parallel.forEach(2 * count) { job in
                do {
                    let head = firstHead + job / 2
                    let slot = packed + (job / 2) * (kFloats + vFloats)
                    if job % 2 == 0 {
                        let k = try matrix(key, head: head, heads: heads)  // [Lk, D]
                        GemmPacking.packA(k, rows: 0, count: lk, depth: 0, count: d, tile: mr, into: slot)
                    } else {
                        let v = try matrix(value, head: head, heads: heads)  // [Lk, Dv]
                        GemmPacking.packB(v, columns: 0, count: dv, depth: 0, count: lk, tile: nr, slivers: 0..<ceilDiv(dv, nr), into: slot + kFloats)
                    }
                } catch { packing.record(error) }
            }
            try packing.rethrow()

            let failure = FirstError()
            BlockedGemm.claim(count * queryTiles, workers: Parallel.threads) { item in
                do {
                    let slot = item / queryTiles
                    let head = firstHead + slot
                    let q = try matrix(query, head: head, heads: heads)
                    let tile = Tile(kernel: kernel, queries: queryRows, keys: keyRows, depth: d, valueWidth: dv)
                    defer { tile.deallocate() }
                    let q0 = (item % queryTiles) * queryRows
                    let rows = min(queryRows, lq - q0)
                    tile.run(
                        q.rowSlice(q0..<(q0 + rows)), scoreScale: scoreScale, keys: lk,
                        kPacked: packed + slot * (kFloats + vFloats), vPacked: packed + slot * (kFloats + vFloats) + kFloats)
                    CPUOperands.store(tile.o, rows: rows, columns: dv, sourceStride: dv, into: output, start: (head * lq + q0) * dv)
                } catch { failure.record(error) }
            }
            try failure.rethrow()
        }
        return output
    }

    /// The [L, D] matrix of flat head `head` (= b·H + h) of a [B, H, L, D] tensor.
    private static func matrix(_ x: Tensor, head: Int, heads: Int) throws -> GemmOperand {
        try GemmOperand(matrixOf: x, elementOffset: (head / heads) * x.strides[0] + (head % heads) * x.strides[1])
    }

    /// Scratch and state of one query tile. All buffers are f32.
    struct Tile {
        let kernel: Microkernel
        let queries: Int, keys: Int, depth: Int, valueWidth: Int
        let qPacked: UnsafeMutablePointer<Float>  // B̃ of Qᵀ: ⌈queries/NR⌉ slivers of depth × NR
        let scores: UnsafeMutablePointer<Float>  // Sᵀ, then Pᵀ: [keys, queries]
        let o: UnsafeMutablePointer<Float>  // [queries, valueWidth] unnormalized output
        let m: UnsafeMutablePointer<Float>  // running max per query (base-2 scores)
        let l: UnsafeMutablePointer<Float>  // running sum of 2^(s − m) per query

        init(kernel: Microkernel, queries: Int, keys: Int, depth: Int, valueWidth: Int) {
            self.kernel = kernel
            self.queries = queries
            self.keys = keys
            self.depth = depth
            self.valueWidth = valueWidth
            qPacked = .allocate(capacity: max(queries * depth, 1))
            // Zeroed once: columns past the valid queries are never written by the GEMM but are read by the
            // vector softmax; zeros keep them finite.
            scores = .allocate(capacity: keys * queries)
            scores.initialize(repeating: 0, count: keys * queries)
            o = .allocate(capacity: max(queries * valueWidth, 1))
            m = .allocate(capacity: queries)
            l = .allocate(capacity: queries)
        }

        func deallocate() {
            for buffer in [qPacked, scores, o, m, l] { buffer.deallocate() }
        }

        /// Attention of the queries `q` ([count, D], count ≤ `queries`) over all `lk` keys; leaves O/l in `o`.
        func run(_ q: GemmOperand, scoreScale: Float, keys lk: Int, kPacked: UnsafePointer<Float>, vPacked: UnsafePointer<Float>) {
            let count = q.rows
            let mr = kernel.rows, nr = kernel.columns
            let softmax = kernel.softmax
            let querySlivers = ceilDiv(count, nr)
            GemmPacking.packB(
                q.transposed, columns: 0, count: count, depth: 0, count: depth, tile: nr, slivers: 0..<querySlivers, into: qPacked)
            for index in 0..<(querySlivers * nr * depth) { qPacked[index] *= scoreScale }
            o.initialize(repeating: 0, count: count * valueWidth)
            m.initialize(repeating: -.infinity, count: queries)
            l.initialize(repeating: 0, count: queries)
            let lanes = roundUp(count, OnlineSoftmax.width)  // ≤ queries: whole vectors of queries

            for j0 in stride(from: 0, to: lk, by: keys) {
                let width = min(keys, lk - j0)
                BlockedGemm.macroKernel(
                    kernel, depth: depth, a: kPacked + j0 * depth, rows: width, b: qPacked, bSliverStride: depth * nr,
                    slivers: 0..<querySlivers, columns: count, c: scores, ldc: queries, accumulate: false)
                softmax(scores, width, queries, lanes, m, l) { query, factor in
                    guard query < count else { return }
                    let row = o + query * valueWidth
                    for column in 0..<valueWidth { row[column] *= factor }
                }
                BlockedGemm.macroKernel(
                    kernel, depth: width, a: scores, aSliverStride: mr, aStepStride: queries, rows: count,
                    b: vPacked + j0 * nr, bSliverStride: lk * nr, slivers: 0..<ceilDiv(valueWidth, nr),
                    columns: valueWidth, c: o, ldc: valueWidth, accumulate: true)
            }
            for query in 0..<count {
                let inverse = 1 / l[query]
                let row = o + query * valueWidth
                for column in 0..<valueWidth { row[column] *= inverse }
            }
        }
    }
}

func leastCommonMultiple(_ a: Int, _ b: Int) -> Int {
    var (x, y) = (a, b)
    while y != 0 { (x, y) = (y, x % y) }
    return a / x * b
}
