import Foundation
import KinemaCore

// Hyper-parameters of a umT5 encoder (transformers UMT5Config; Wan's `umt5_xxl` in wan/modules/t5.py:
// vocab 256384, d_model 4096, d_kv 64, d_ff 10240, 24 layers, 64 heads, 32 buckets, max distance 128).

/// The feed-forward form. umT5 uses only the gated GELU (tanh approximation): wo(gelu(wi_0 x) · wi_1 x).
public enum UMT5FeedForward: String, Sendable {
    case gatedGELU = "gated-gelu"
}

public struct UMT5Config: Sendable, Equatable {
    public var vocabSize: Int
    public var dModel: Int
    /// Per-head width; the attention's inner width is numHeads · dKV (need not equal dModel).
    public var dKV: Int
    public var dFF: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numBuckets: Int
    public var maxDistance: Int
    public var eps: Float
    public var feedForward: UMT5FeedForward

    public init(
        vocabSize: Int, dModel: Int, dKV: Int, dFF: Int, numLayers: Int, numHeads: Int, numBuckets: Int = 32,
        maxDistance: Int = 128, eps: Float = 1e-6, feedForward: UMT5FeedForward = .gatedGELU
    ) {
        self.vocabSize = vocabSize
        self.dModel = dModel
        self.dKV = dKV
        self.dFF = dFF
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numBuckets = numBuckets
        self.maxDistance = maxDistance
        self.eps = eps
        self.feedForward = feedForward
    }

    /// Wan2.1's text encoder (`models_t5_umt5-xxl-enc-bf16.pth`).
    public static let xxl = UMT5Config(vocabSize: 256_384, dModel: 4096, dKV: 64, dFF: 10240, numLayers: 24, numHeads: 64)

    public var innerDim: Int { numHeads * dKV }

    public func validate(origin: String = "umT5 config") throws {
        let positive = [vocabSize, dModel, dKV, dFF, numLayers, numHeads, numBuckets, maxDistance]
        guard positive.allSatisfy({ $0 > 0 }) else {
            throw KinemaError.badFile(path: origin, location: nil, reason: "umT5 sizes must be positive: \(self)")
        }
        // Bidirectional buckets: half per direction, half of those exact; the log range must be non-empty.
        guard numBuckets >= 4, numBuckets % 2 == 0, maxDistance > numBuckets / 4 else {
            throw KinemaError.badFile(
                path: origin, location: "relative_attention_num_buckets",
                reason: "need an even bucket count ≥ 4 and max distance > buckets/4, found \(numBuckets) / \(maxDistance)")
        }
        guard eps > 0, eps.isFinite else {
            throw KinemaError.badFile(path: origin, location: "layer_norm_epsilon", reason: "must be a positive number, found \(eps)")
        }
    }

    /// Parses a transformers `config.json` (model_type "umt5"). The classic T5 ("t5", shared position
    /// bias in layer 0 only) is a different architecture and is refused.
    public static func parse(json data: Data, origin: String) throws -> UMT5Config {
        let json = try ConfigJSON(data, origin: origin)
        let dict = json.values
        let int = json.int
        let required = json.required
        if let type = dict["model_type"] {
            guard let text = type as? String, text == "umt5" else {
                throw KinemaError.unsupported("\(origin): model_type \(type) is not umt5 (classic T5 shares one position bias across layers)")
            }
        }
        let projection = dict["feed_forward_proj"] as? String ?? "gated-gelu"
        guard let feedForward = UMT5FeedForward(rawValue: projection) else {
            throw KinemaError.unsupported("\(origin): feed_forward_proj \"\(projection)\" (umT5 uses gated-gelu)")
        }
        var eps: Float = 1e-6
        if let value = dict["layer_norm_epsilon"] {
            guard let number = value as? NSNumber else {
                throw KinemaError.badFile(path: origin, location: "layer_norm_epsilon", reason: "expected a number, found \(value)")
            }
            eps = number.floatValue
        }
        let config = UMT5Config(
            vocabSize: try required("vocab_size"), dModel: try required("d_model"), dKV: try required("d_kv"),
            dFF: try required("d_ff"), numLayers: try required("num_layers"), numHeads: try required("num_heads"),
            numBuckets: try int("relative_attention_num_buckets") ?? 32,
            maxDistance: try int("relative_attention_max_distance") ?? 128, eps: eps, feedForward: feedForward)
        try config.validate(origin: origin)
        return config
    }

    /// Derives the configuration from canonical (Wan) tensor names and shapes. The maximum distance and
    /// epsilon are not visible in the weights; Wan's values (128, 1e-6) are assumed unless given.
    public static func detect(
        info: (String) -> TensorInfo?, keys: [String], maxDistance: Int = 128, eps: Float = 1e-6, origin: String = "checkpoint"
    ) throws -> UMT5Config {
        func shape(_ key: String, rank: Int) throws -> [Int] {
            guard let found = info(key) else {
                throw KinemaError.badFile(path: origin, location: key, reason: "not a umT5 encoder: this tensor is needed to detect its configuration")
            }
            guard found.shape.count == rank else {
                throw KinemaError.badFile(path: origin, location: key, reason: "expected \(rank) dims, found \(found.shape)")
            }
            return found.shape
        }
        let embeddingKey = info("token_embedding.weight") != nil ? "token_embedding.weight" : "token_embedding_tied.weight"
        let embedding = try shape(embeddingKey, rank: 2)  // [V, D]
        let bias = try shape("blocks.0.pos_embedding.embedding.weight", rank: 2)  // [buckets, H]
        let query = try shape("blocks.0.attn.q.weight", rank: 2)  // [H·dkv, D]
        let up = try shape("blocks.0.ffn.fc1.weight", rank: 2)  // [d_ff, D]
        let layers = Set(keys.compactMap { key -> Int? in
            guard key.hasPrefix("blocks.") else { return nil }
            return Int(key.dropFirst(7).prefix { $0 != "." })
        })
        guard bias[1] > 0, query[0] % bias[1] == 0 else {
            throw KinemaError.badFile(path: origin, location: "blocks.0.attn.q.weight", reason: "width \(query[0]) is not a multiple of \(bias[1]) heads")
        }
        let config = UMT5Config(
            vocabSize: embedding[0], dModel: embedding[1], dKV: query[0] / bias[1], dFF: up[0], numLayers: layers.count,
            numHeads: bias[1], numBuckets: bias[0], maxDistance: maxDistance, eps: eps)
        try config.validate(origin: origin)
        return config
    }
}
