import Foundation
import KinemaCore
import KinemaNN

// The umT5 text encoder (matches transformers UMT5EncoderModel and Wan's wan/modules/t5.py T5Encoder):
//   x = embed(ids)                                        [B, L, D]  (f32 residual stream)
//   per block:  x += attn(rms(x)) with its own relative position bias and the padding mask
//               x += wo(gelu_tanh(wi_0 · rms(x)) ⊙ wi_1 · rms(x))
//   out = rms(x)                                          final T5LayerNorm
// T5LayerNorm is RMS-only (no mean, no bias), f32 statistics, eps 1e-6. No linear layer has a bias.

/// Intermediate tensors recorded during a forward pass, named as the golden fixtures name them.
public enum UMT5Tap: String, CaseIterable, Sendable {
    case embedding = "tap.embed"  // [B, L, D]
    case firstBlock = "tap.block0"  // [B, L, D]
}

public final class UMT5TapRecorder {
    public private(set) var tensors: [UMT5Tap: Tensor] = [:]
    public init() {}
    func record(_ tap: UMT5Tap, _ tensor: Tensor, backend: any Backend) throws {
        tensors[tap] = try backend.download(tensor)
    }
}

/// Gated-GELU feed-forward (transformers UMT5DenseGatedActDense; Wan T5FeedForward).
struct UMT5FeedForwardLayer {
    let gate, up, down: Linear
    let backend: any Backend

    init(_ w: WeightScope, config c: UMT5Config, dtype: DType) throws {
        gate = try Linear(w["gate.0"], inFeatures: c.dModel, outFeatures: c.dFF, bias: false, dtype: dtype)
        up = try Linear(w["fc1"], inFeatures: c.dModel, outFeatures: c.dFF, bias: false, dtype: dtype)
        down = try Linear(w["fc2"], inFeatures: c.dFF, outFeatures: c.dModel, bias: false, dtype: dtype)
        backend = w.backend
    }

    /// x [B, L, D] (compute dtype) → [B, L, D]
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let hidden = try backend.mul(try backend.gelu(try gate(x), approximate: .tanh), try up(x))  // [B, L, d_ff]
        return try down(hidden)
    }
}

/// One encoder block (transformers UMT5Block; Wan T5SelfAttention).
struct UMT5Block {
    let norm1, norm2: RMSNorm
    let attention: UMT5Attention
    let feedForward: UMT5FeedForwardLayer
    let dtype: DType
    let backend: any Backend

    init(_ w: WeightScope, config c: UMT5Config, dtype: DType) throws {
        norm1 = try RMSNorm(w["norm1"], dim: c.dModel, eps: c.eps)
        attention = try UMT5Attention(w["attn"], positionBias: w["pos_embedding.embedding"], config: c, dtype: dtype)
        norm2 = try RMSNorm(w["norm2"], dim: c.dModel, eps: c.eps)
        feedForward = try UMT5FeedForwardLayer(w["ffn"], config: c, dtype: dtype)
        self.dtype = dtype
        backend = w.backend
    }

    /// x [B, L, D] f32; buckets: umt5BucketOneHot [numBuckets, L·L] f32; mask bias [B, 1, 1, L] f32 or nil
    /// → [B, L, D] f32
    func callAsFunction(_ x: Tensor, buckets: Tensor, mask: Tensor?) throws -> Tensor {
        let b = backend
        let bias = try attention.bias(buckets: buckets, length: x.shape[1], mask: mask)
        let attended = try attention(try b.cast(try norm1(x), to: dtype), bias: bias)
        let y = try b.add(x, attended)  // f32 + compute dtype → f32
        return try b.add(y, try feedForward(try b.cast(try norm2(y), to: dtype)))
    }
}

public final class UMT5Encoder {
    public let config: UMT5Config
    public let precision: Precision
    public let backend: any Backend
    /// [V, D] in the compute dtype; rows are gathered by id.
    let embedding: Tensor
    let blocks: [UMT5Block]
    let norm: RMSNorm
    /// The bucket one-hots of the last lengths encoded, on the backend.
    private let bucketOneHots = UMT5BucketOneHotCache(capacity: 2)

    /// Builds from canonical (Wan) keys.
    public init(_ w: WeightScope, config c: UMT5Config, precision: Precision) throws {
        try c.validate()
        let dtype = precision.computeDType
        config = c
        self.precision = precision
        backend = w.backend
        let embeddingKey = w.contains("token_embedding.weight") ? "token_embedding" : "token_embedding_tied"
        embedding = try w[embeddingKey].tensor("weight", shape: [c.vocabSize, c.dModel], dtype: dtype)
        blocks = try (0..<c.numLayers).map { try UMT5Block(w["blocks.\($0)"], config: c, dtype: dtype) }
        norm = try RMSNorm(w["norm"], dim: c.dModel, eps: c.eps)
    }

    /// Loads from any tensor source in the transformers or Wan layout. The configuration is, in order of
    /// preference: `config`, a transformers `config.json`, or detected from the weights.
    public static func load(
        from source: any TensorSource, config: UMT5Config? = nil, configJSON: (data: Data, origin: String)? = nil,
        backend: any Backend, precision: Precision
    ) throws -> UMT5Encoder {
        let store = try WeightStore(
            source: source, backend: backend, component: "umT5 encoder", layouts: UMT5KeyLayouts.all,
            wrapperPrefixes: UMT5KeyLayouts.wrapperPrefixes, ignoring: UMT5KeyLayouts.ignored)
        let resolved: UMT5Config
        if let config {
            resolved = config
        } else if let configJSON {
            resolved = try UMT5Config.parse(json: configJSON.data, origin: configJSON.origin)
        } else {
            resolved = try UMT5Config.detect(info: store.info, keys: store.keys, origin: source.origin)
        }
        return try store.build { try UMT5Encoder($0, config: resolved, precision: precision) }
    }

    /// Encodes a batch: ids [B, L] (any integer dtype, host), mask [B, L] (1 = token, 0 = padding; nil =
    /// all tokens) → last hidden states [B, L, D] f32. Padded positions are computed too (they attend to
    /// the real tokens only), as transformers does.
    public func forward(ids: Tensor, mask: Tensor? = nil, taps: UMT5TapRecorder? = nil) throws -> Tensor {
        guard ids.rank == 2, !ids.dtype.isFloatingPoint else {
            throw KinemaError.shapeMismatch(context: "umT5 input ids", expected: "[B, L] integers", found: "\(ids.shape) \(ids.dtype.rawValue)")
        }
        let (batch, length) = (ids.shape[0], ids.shape[1])
        guard batch > 0, length > 0 else {
            throw KinemaError.invalidArgument("umT5 input ids: empty batch or sequence \(ids.shape)")
        }
        let b = backend
        let tokens = try ids.integers()
        var maskBias: Tensor?
        if let mask {
            guard mask.shape == ids.shape else {
                throw KinemaError.shapeMismatch(context: "umT5 attention mask", expected: "\(ids.shape)", found: "\(mask.shape)")
            }
            // transformers adds (1 − mask) · finfo(f32).min; exp of it underflows to exactly 0.
            let values = try mask.integers().map { $0 > 0 ? Float(0) : -Float.greatestFiniteMagnitude }
            maskBias = try b.upload(try Tensor(values, shape: [batch, 1, 1, length], dtype: .f32))
        }

        // Checked here too (gatherRows would also refuse) to name the token's position in the batch.
        let rows = try tokens.enumerated().map { index, id -> Int in
            guard id >= 0, id < Int64(config.vocabSize) else {
                throw KinemaError.invalidArgument(
                    "umT5 input ids: token \(id) at [\(index / length), \(index % length)] is outside the vocabulary (0..<\(config.vocabSize))")
            }
            return Int(id)
        }
        let embedded = try b.gatherRows(embedding, indices: rows)  // [B·L, D] compute dtype
        var x = try b.cast(try b.reshape(embedded, [batch, length, config.dModel]), to: .f32)
        try taps?.record(.embedding, x, backend: b)
        let buckets = try bucketOneHots.oneHot(length: length) {
            try b.upload(try umt5BucketOneHot(length: length, numBuckets: config.numBuckets, maxDistance: config.maxDistance))
        }
        for (index, block) in blocks.enumerated() {
            x = try block(x, buckets: buckets, mask: maskBias)
            if index == 0 { try taps?.record(.firstBlock, x, backend: b) }
        }
        return try norm(x)
    }

    /// A prompt embedding as Wan conditions on it (diffusers WanPipeline._get_t5_prompt_embeds, Wan's
    /// T5EncoderModel): encode `ids` (padded to the model's text length, 512 for Wan) with `mask`, keep
    /// the first `sum(mask > 0)` rows, and zero the rest → [1, ids.count, D] f32 on the backend (callers
    /// download it if they need it on the host; the pipeline keeps it on the device).
    ///
    /// When the mask is a prefix of ones (what the tokenizer produces) only the real tokens are run:
    /// their outputs do not depend on the padding (masked keys get weight exp(−3.4e38) = 0 exactly), and
    /// this skips the FFN work on up to 512 − n padded rows. Any other mask runs the full padded sequence,
    /// as diffusers does.
    public func encodePrompt(ids: [Int], mask: [Int]) throws -> Tensor {
        guard ids.count == mask.count, !ids.isEmpty else {
            throw KinemaError.shapeMismatch(context: "umT5 prompt", expected: "ids and mask of one non-zero length", found: "\(ids.count) ids, \(mask.count) mask")
        }
        let total = ids.count
        let realCount = mask.filter { $0 > 0 }.count
        let isPrefix = mask.prefix(realCount).allSatisfy { $0 > 0 }
        let b = backend
        guard realCount > 0 else { return try b.zeros([1, total, config.dModel], dtype: .f32) }
        let encoded: Tensor
        if isPrefix {
            let realIDs = try Tensor(integers: ids.prefix(realCount).map(Int64.init), shape: [1, realCount])
            encoded = try forward(ids: realIDs)
        } else {
            let allIDs = try Tensor(integers: ids.map(Int64.init), shape: [1, total])
            let allMask = try Tensor(integers: mask.map(Int64.init), shape: [1, total])
            encoded = try forward(ids: allIDs, mask: allMask).narrowed(axis: 1, start: 0, length: realCount)
        }
        guard realCount < total else { return encoded }
        let padding = try b.zeros([1, total - realCount, config.dModel], dtype: .f32)
        return try b.concat([encoded, padding], axis: 1)
    }
}
