import Foundation
import KinemaCore

// Hyper-parameters of the CLIP vision tower Wan2.1 image-to-video conditions on (open-clip
// "xlm-roberta-large-vit-huge-14", visual branch). Read from a transformers `CLIPVisionConfig` JSON (the
// `image_encoder/config.json` of a diffusers Wan I2V folder, or a full `CLIPConfig` with a nested
// `vision_config`), or taken from the built-in ViT-H/14 preset for Wan's original `.pth`, which has no config.

/// The MLP activation. Wan's ViT-H/14 uses exact (erf) GELU: Wan's clip.py builds it with
/// `activation='gelu'` (nn.GELU()), and the diffusers image_encoder config says `"hidden_act": "gelu"`.
/// transformers' CLIPVisionConfig defaults to quick-GELU (OpenAI's original CLIP), so a config.json that
/// omits `hidden_act` means quick-GELU.
public enum CLIPActivation: String, Sendable, Equatable {
    case gelu
    /// x · sigmoid(1.702 · x)
    case quickGelu = "quick_gelu"
}

public struct CLIPVisionConfig: Equatable, Sendable {
    public var imageSize: Int
    public var patchSize: Int
    public var numChannels: Int
    /// Transformer width (1280 for ViT-H/14).
    public var hiddenSize: Int
    /// MLP hidden width (5120).
    public var intermediateSize: Int
    /// Blocks in the checkpoint (32). The encoder runs all but the last (see CLIPVisionEncoder).
    public var numLayers: Int
    public var numHeads: Int
    public var eps: Float
    public var activation: CLIPActivation

    public init(
        imageSize: Int, patchSize: Int, numChannels: Int = 3, hiddenSize: Int, intermediateSize: Int, numLayers: Int,
        numHeads: Int, eps: Float = 1e-5, activation: CLIPActivation = .gelu
    ) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.numChannels = numChannels
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.eps = eps
        self.activation = activation
    }

    /// open-clip XLM-RoBERTa-large ViT-H/14 as Wan2.1 builds it (`clip_xlm_roberta_vit_h_14`): 224 px,
    /// patch 14, width 1280, 32 blocks of 16 heads, MLP ratio 4, exact GELU, LayerNorm eps 1e-5.
    public static let vitH14 = CLIPVisionConfig(
        imageSize: 224, patchSize: 14, hiddenSize: 1280, intermediateSize: 5120, numLayers: 32, numHeads: 16)

    public var headDim: Int { hiddenSize / max(numHeads, 1) }
    /// Patches per side.
    public var gridSize: Int { imageSize / max(patchSize, 1) }
    /// Class token + patches (257 for ViT-H/14 at 224 px).
    public var sequenceLength: Int { 1 + gridSize * gridSize }

    func validate(origin: String = "CLIP vision config") throws {
        let sizes = [imageSize, patchSize, numChannels, hiddenSize, intermediateSize, numLayers, numHeads]
        // The upper bounds keep shape products (tokens², width × MLP width) far from Int overflow.
        guard sizes.allSatisfy({ $0 > 0 && $0 <= 1 << 20 }), imageSize <= 1 << 15 else {
            throw KinemaError.invalidArgument("\(origin): every size must be from 1 to 2^20, image_size at most 32768 (\(self))")
        }
        guard imageSize % patchSize == 0 else {
            throw KinemaError.invalidArgument("\(origin): image size \(imageSize) is not a multiple of patch size \(patchSize)")
        }
        guard hiddenSize % numHeads == 0 else {
            throw KinemaError.invalidArgument("\(origin): width \(hiddenSize) is not a multiple of \(numHeads) heads")
        }
        guard numLayers >= 2 else {
            throw KinemaError.invalidArgument("\(origin): \(numLayers) layer(s); the penultimate hidden states need at least 2")
        }
        guard eps.isFinite, eps > 0 else {
            throw KinemaError.invalidArgument("\(origin): layer_norm_eps \(eps) must be positive")
        }
    }

    /// Parses a transformers `CLIPVisionConfig` (model_type `clip_vision_model`) or a `CLIPConfig` (model_type
    /// `clip`, read from its `vision_config`). Absent keys take transformers' CLIPVisionConfig defaults
    /// (which are ViT-B/32's, hence quick-GELU), except the sizes that define the architecture, which are required.
    public init(json data: Data, origin: String = "config.json") throws {
        let top = try ConfigJSON(data, origin: origin)
        var json = top
        if let modelType = top["model_type"] as? String, modelType == "clip" {
            guard let vision = top["vision_config"] as? [String: Any] else {
                throw KinemaError.badFile(path: origin, location: "vision_config", reason: "a CLIPConfig without a vision_config")
            }
            json = ConfigJSON(values: vision, origin: origin + " (vision_config)")
        } else if let modelType = top["model_type"] as? String, modelType != "clip_vision_model" {
            throw KinemaError.unsupported("\(origin): model_type \"\(modelType)\" is not a CLIP vision model")
        }
        let activationName = json["hidden_act"] as? String ?? "quick_gelu"
        guard let activation = CLIPActivation(rawValue: activationName) else {
            throw KinemaError.unsupported("\(origin): hidden_act \"\(activationName)\" (supported: gelu, quick_gelu)")
        }
        var eps: Float = 1e-5
        if let value = json["layer_norm_eps"] {
            guard let number = value as? NSNumber else {
                throw KinemaError.badFile(path: origin, location: "layer_norm_eps", reason: "expected a number, found \(value)")
            }
            eps = number.floatValue
        }
        self.init(
            imageSize: try json.required("image_size"), patchSize: try json.required("patch_size"),
            numChannels: try json.int("num_channels") ?? 3, hiddenSize: try json.required("hidden_size"),
            intermediateSize: try json.required("intermediate_size"), numLayers: try json.required("num_hidden_layers"),
            numHeads: try json.required("num_attention_heads"), eps: eps, activation: activation)
        try validate(origin: origin)
    }
}
