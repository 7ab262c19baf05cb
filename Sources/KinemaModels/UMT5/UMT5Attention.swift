import Foundation
import KinemaCore
import KinemaNN

// umT5 self-attention (matches transformers UMT5Attention, encoder side, and Wan's T5Attention with its
// per-block T5RelativeEmbedding):
//   scores = q·kᵀ (NO 1/√d scaling: T5 folds it into the initialisation) + relative position bias + mask
//   out    = o(softmax(scores) · v)
// Every layer owns its bias table [numBuckets, H] (umT5; classic T5 shares layer 0's).
//
// Why not Backend.attention: it takes no bias or mask, and T5 needs both. Prompts are at most 512 tokens,
// so the scores [B, H, L, L] are materialized (XXL: 64 · 512² · 4 B = 64 MiB per sample) and computed
// with matmul + softmax. Scores and softmax stay in f32 even in bf16 mode: without the 1/√d scaling the
// logits are large, and rounding them to bf16 would move the softmax visibly.

/// Bidirectional relative-position bucket of `memory − query` (transformers
/// UMT5Attention._relative_position_bucket with is_decoder = False; Wan's
/// T5RelativeEmbedding._relative_position_bucket with bidirectional = True).
///
/// Half the buckets serve positive offsets. Within a half, offsets below `exact` = half/2 get their own
/// bucket; larger ones are binned logarithmically up to `maxDistance`, then clamp to the last bucket.
/// Numerical hazard: the log bin is `trunc(log(n / exact) / log(maxDistance / exact) · (half − exact))`
/// evaluated by torch in f32 (the Python-double divisor becomes an f32 scalar), and values that are
/// whole numbers in exact arithmetic (n = 16 → 2.0) can land a hair below in f32. The same f32 sequence is
/// evaluated here, and a golden test checks every offset a 512-token prompt can produce against torch.
public func umt5RelativePositionBucket(_ relative: Int, numBuckets: Int, maxDistance: Int) -> Int {
    let half = numBuckets / 2
    var bucket = relative > 0 ? half : 0
    let distance = relative.magnitude
    let exact = half / 2
    if distance < UInt(exact) { return bucket + Int(distance) }
    let divisor = Float(log(Double(maxDistance) / Double(exact)))
    let scaled = logf(Float(distance) / Float(exact)) / divisor * Float(half - exact)
    // `scaled` is finite and ≥ 0 here (distance ≥ exact ≥ 1); clamp before converting so a huge offset
    // cannot overflow the integer conversion.
    let large = exact + Int(min(scaled, Float(half)))
    bucket += min(large, half - 1)
    return bucket
}

/// The relative-position buckets of a length-L sequence as a one-hot matrix [numBuckets, L·L] f32 (host):
/// column i·L + j holds a single 1, in row bucket(j − i). A layer's bias is then one small GEMM on the
/// device, tableᵀ [H, numBuckets] · one-hot → [H, L·L], exact (every sum is one table entry plus zeros);
/// building the [H, L, L] bias on the host instead cost ≈ 0.15 s per layer at L = 512 (H100 run,
/// 2026-11-27: a 3.7 s encode with 35 ms in kernels). Shared by every layer, and cached on the device
/// per length by the encoder (UMT5BucketOneHotCache).
func umt5BucketOneHot(length: Int, numBuckets: Int, maxDistance: Int) throws -> Tensor {
    // Buckets depend only on j − i: one per offset in −(L−1)…(L−1).
    let buckets = (0..<(2 * length - 1)).map {
        umt5RelativePositionBucket($0 - (length - 1), numBuckets: numBuckets, maxDistance: maxDistance)
    }
    let columns = length * length
    var values = [Float](repeating: 0, count: numBuckets * columns)
    values.withUnsafeMutableBufferPointer { out in
        for query in 0..<length {
            for key in 0..<length {
                out[buckets[key - query + length - 1] * columns + query * length + key] = 1
            }
        }
    }
    return try Tensor(values, shape: [numBuckets, columns], dtype: .f32)
}

/// Device copies of `umt5BucketOneHot` for the most recently encoded lengths, so that encoding again at
/// a length seen lately skips building the one-hot on the host and uploading it (32 MiB f32 at L = 512,
/// plus a stream synchronization). Two entries cover a prompt and its negative prompt; older lengths are
/// dropped. Safe to call from several threads (one lock; a miss builds under it).
final class UMT5BucketOneHotCache: @unchecked Sendable {
    private let capacity: Int
    private let lock = NSLock()
    /// Least recently used first.
    private var entries: [(length: Int, oneHot: Tensor)] = []

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// The cached one-hot for `length`, or `build()`'s result (then cached).
    func oneHot(length: Int, build: () throws -> Tensor) throws -> Tensor {
        try lock.withLock {
            if let index = entries.firstIndex(where: { $0.length == length }) {
                let hit = entries.remove(at: index)
                entries.append(hit)
                return hit.oneHot
            }
            let built = try build()
            entries.append((length, built))
            if entries.count > capacity { entries.removeFirst() }
            return built
        }
    }
}

struct UMT5Attention {
    let q, k, v, o: Linear
    /// Relative position bias table, transposed: [H, numBuckets] f32 on the backend.
    let biasTable: Tensor
    let config: UMT5Config
    let backend: any Backend

    init(_ w: WeightScope, positionBias: WeightScope, config c: UMT5Config, dtype: DType) throws {
        q = try Linear(w["q"], inFeatures: c.dModel, outFeatures: c.innerDim, bias: false, dtype: dtype)
        k = try Linear(w["k"], inFeatures: c.dModel, outFeatures: c.innerDim, bias: false, dtype: dtype)
        v = try Linear(w["v"], inFeatures: c.dModel, outFeatures: c.innerDim, bias: false, dtype: dtype)
        o = try Linear(w["o"], inFeatures: c.innerDim, outFeatures: c.dModel, bias: false, dtype: dtype)
        let table = try positionBias.tensor("weight", shape: [c.numBuckets, c.numHeads], dtype: .f32)
        biasTable = try w.backend.contiguous(table.transposed(0, 1))
        config = c
        backend = w.backend
    }

    /// The layer's bias [1, H, L, L] plus the padding mask [B, 1, 1, L] → [B, H, L, L] f32 on the device.
    /// `buckets`: umt5BucketOneHot of this length, on the backend.
    func bias(buckets: Tensor, length: Int, mask: Tensor?) throws -> Tensor {
        let position = try backend.reshape(try backend.matmul(biasTable, buckets), [1, config.numHeads, length, length])
        guard let mask else { return position }
        return try backend.add(position, mask)
    }

    /// x [B, L, D] (compute dtype), bias [B or 1, H, L, L] f32 → [B, L, D]
    func callAsFunction(_ x: Tensor, bias: Tensor) throws -> Tensor {
        let b = backend
        let (batch, length) = (x.shape[0], x.shape[1])
        let heads = config.numHeads
        func split(_ t: Tensor) throws -> Tensor {  // [B, L, H·d] → [B, H, L, d]
            try b.reshape(t, [batch, length, heads, config.dKV]).permuted([0, 2, 1, 3])
        }
        let query = try b.cast(try split(try q(x)), to: .f32)
        let key = try b.cast(try split(try k(x)), to: .f32)
        let value = try split(try v(x))
        let scores = try b.add(try b.matmul(query, try key.transposed(2, 3)), bias)  // [B, H, L, L] f32
        let probabilities = try b.cast(try b.softmax(scores), to: x.dtype)
        let attended = try b.matmul(probabilities, value)  // [B, H, L, d]
        let merged = try b.reshape(try attended.permuted([0, 2, 1, 3]), [batch, length, config.innerDim])
        return try o(merged)
    }
}
