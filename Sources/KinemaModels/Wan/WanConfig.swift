import Foundation
import KinemaCore

// Hyper-parameters of a Wan2.1 DiT. Read from a diffusers `config.json` (WanTransformer3DModel), an original
// Wan `config.json` (WanModel), or detected from tensor names and shapes.

public struct WanConfig: Sendable, Equatable, Codable {
    public var dim: Int
    public var ffnDim: Int
    public var freqDim: Int
    public var textDim: Int
    public var inDim: Int
    public var outDim: Int
    public var numHeads: Int
    public var numLayers: Int
    public var eps: Float
    /// Width of the CLIP image features fed to `img_emb` (1280 for ViT-H/14), nil for text-only models.
    public var imageDim: Int?
    /// FLF2V models add a learned position embedding over 2 × 257 image tokens; its token count.
    public var imagePositionTokens: Int?
    public var patchSize: [Int] = [1, 2, 2]

    public var headDim: Int { dim / numHeads }
    public var hasImageBranch: Bool { imageDim != nil }

    /// Wan2.1-T2V-1.3B.
    public static let t2v1_3B = WanConfig(
        dim: 1536, ffnDim: 8960, freqDim: 256, textDim: 4096, inDim: 16, outDim: 16, numHeads: 12, numLayers: 30,
        eps: 1e-6, imageDim: nil, imagePositionTokens: nil)
    /// Wan2.1-T2V-14B.
    public static let t2v14B = WanConfig(
        dim: 5120, ffnDim: 13824, freqDim: 256, textDim: 4096, inDim: 16, outDim: 16, numHeads: 40, numLayers: 40,
        eps: 1e-6, imageDim: nil, imagePositionTokens: nil)
    /// Wan2.1-I2V-14B (480P and 720P share the architecture).
    public static let i2v14B = WanConfig(
        dim: 5120, ffnDim: 13824, freqDim: 256, textDim: 4096, inDim: 36, outDim: 16, numHeads: 40, numLayers: 40,
        eps: 1e-6, imageDim: 1280, imagePositionTokens: nil)

    public func validate() throws {
        guard dim > 0, numHeads > 0, dim % numHeads == 0 else {
            throw KinemaError.invalidArgument("Wan config: dim \(dim) is not divisible by num_heads \(numHeads)")
        }
        guard headDim % 2 == 0, headDim >= 6 else {
            throw KinemaError.invalidArgument("Wan config: head dim \(headDim) must be even and at least 6 for 3-D RoPE")
        }
        guard ffnDim > 0, freqDim > 0, freqDim % 2 == 0, textDim > 0, inDim > 0, outDim > 0, numLayers > 0 else {
            throw KinemaError.invalidArgument("Wan config: sizes must be positive (freq_dim even): \(self)")
        }
        guard patchSize == [1, 2, 2] else {
            throw KinemaError.unsupported("Wan config: patch size \(patchSize); Wan2.1 uses [1, 2, 2]")
        }
    }
}

// MARK: - config.json in either layout

extension WanConfig {
    /// Parses a diffusers or original-Wan `config.json`. Sizes that only the weights know (text width, image
    /// width) come from `detected` when the file does not say.
    public static func parse(json data: Data, origin: String, detected: WanConfig? = nil) throws -> WanConfig {
        let json = try ConfigJSON(data, origin: origin)
        let dict = json.values
        let int = json.int
        let required = json.required
        let eps = (dict["eps"] as? NSNumber)?.floatValue ?? 1e-6
        var config: WanConfig
        if dict["num_attention_heads"] != nil || dict["in_channels"] != nil {
            // diffusers WanTransformer3DModel
            let heads = try required("num_attention_heads")
            let headDim = try required("attention_head_dim")
            config = WanConfig(
                dim: heads * headDim, ffnDim: try required("ffn_dim"), freqDim: try int("freq_dim") ?? 256,
                textDim: try int("text_dim") ?? 4096, inDim: try required("in_channels"),
                outDim: try int("out_channels") ?? 16, numHeads: heads, numLayers: try required("num_layers"), eps: eps,
                imageDim: try int("image_dim"), imagePositionTokens: try int("pos_embed_seq_len"))
            if let patch = dict["patch_size"] as? [NSNumber] { config.patchSize = patch.map(\.intValue) }
        } else if dict["dim"] != nil {
            // original Wan WanModel
            let modelType = dict["model_type"] as? String ?? "t2v"
            let hasImage = modelType == "i2v" || modelType == "flf2v"
            config = WanConfig(
                dim: try required("dim"), ffnDim: try required("ffn_dim"), freqDim: try int("freq_dim") ?? 256,
                textDim: try int("text_dim") ?? detected?.textDim ?? 4096, inDim: try int("in_dim") ?? 16, outDim: try int("out_dim") ?? 16,
                numHeads: try required("num_heads"), numLayers: try required("num_layers"), eps: eps,
                imageDim: hasImage ? (detected?.imageDim ?? 1280) : nil,
                imagePositionTokens: modelType == "flf2v" ? (detected?.imagePositionTokens ?? 514) : nil)
        } else {
            throw KinemaError.badFile(path: origin, location: nil, reason: "not a Wan transformer config (no num_attention_heads or dim)")
        }
        try config.validate()
        return config
    }

    /// Derives the configuration from canonical (original Wan) tensor names and shapes. The head count is
    /// not visible in the weights: Wan2.1 always uses head dim 128, so heads = dim / 128 unless given.
    public static func detect(
        info: (String) -> TensorInfo?, keys: [String], headDim: Int = 128, origin: String = "checkpoint"
    ) throws -> WanConfig {
        func shape(_ key: String) throws -> [Int] {
            guard let found = info(key) else {
                throw KinemaError.badFile(path: origin, location: key, reason: "not a Wan transformer: this tensor is needed to detect its configuration")
            }
            return found.shape
        }
        let patch = try shape("patch_embedding.weight")  // [D, C_in, 1, 2, 2]
        guard patch.count == 5 else {
            throw KinemaError.badFile(path: origin, location: "patch_embedding.weight", reason: "expected 5 dims, found \(patch)")
        }
        let layerIndices = Set(keys.compactMap { key -> Int? in
            guard key.hasPrefix("blocks.") else { return nil }
            return Int(key.dropFirst(7).prefix { $0 != "." })
        })
        let ffn = try shape("blocks.0.ffn.0.weight")
        let text = try shape("text_embedding.0.weight")
        let time = try shape("time_embedding.0.weight")
        let head = try shape("head.head.weight")
        let image = info("img_emb.proj.1.weight")?.shape
        let position = info("img_emb.emb_pos")?.shape
        let dim = patch[0]
        var config = WanConfig(
            dim: dim, ffnDim: ffn[0], freqDim: time[1], textDim: text[1], inDim: patch[1],
            outDim: head[0] / (patch[2] * patch[3] * patch[4]), numHeads: max(1, dim / headDim),
            numLayers: layerIndices.count, eps: 1e-6, imageDim: image?[1], imagePositionTokens: position?[1])
        config.patchSize = Array(patch[2...])
        try config.validate()
        return config
    }
}
