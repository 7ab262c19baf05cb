import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// A Wan text-to-video (or image-to-video) model folder on disk, in either published layout:
//
//   diffusers (Wan-AI/Wan2.1-T2V-1.3B-Diffusers):        original (Wan-AI/Wan2.1-T2V-1.3B):
//     model_index.json                                    config.json
//     transformer/  config.json + weights                 diffusion_pytorch_model*.safetensors (+ index)
//     text_encoder/ config.json + weights                 models_t5_umt5-xxl-enc-bf16.pth
//     tokenizer/    tokenizer.json / spiece.model         google/umt5-xxl/ (tokenizer files)
//     vae/          config.json + weights                 Wan2.1_VAE.pth
//     scheduler/    scheduler_config.json
//   image-to-video models (Wan2.1-I2V / FLF2V) add a CLIP vision encoder:
//     image_encoder/ config.json + weights                models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
//     image_processor/ preprocessor_config.json
//
// A LightX2V single-file DiT can replace the transformer with `transformerOverride`.

public enum WanFolderLayout: String, Sendable {
    case diffusers
    case original
}

public struct WanModelFolder {
    public let path: String
    public let layout: WanFolderLayout
    public let transformer: TransformerFiles
    public let textEncoderWeights: String
    public let textEncoderConfig: String?
    public let tokenizer: String
    public let vaeWeights: String
    public let vaeConfig: String?
    /// `flow_shift` from diffusers' scheduler_config.json, when present.
    public let schedulerShift: Double?
    /// The CLIP vision encoder of I2V / FLF2V models (nil when the folder has none: text-to-video).
    public var imageEncoderWeights: String? = nil
    public var imageEncoderConfig: String? = nil
    /// diffusers' image_processor/preprocessor_config.json (CLIPImageProcessor settings).
    public var imageProcessorConfig: String? = nil
    /// `kinema_defaults.json` beside model_index.json: the folder's own generation defaults in LightX2V's
    /// config keys (the bundled demo model sets its size, steps and guidance this way), applied before
    /// --config and the command-line flags.
    public var defaultsConfig: String? = nil

    /// Finds every component of the model under `path`, failing with the list of what is missing.
    public static func locate(_ path: String, transformerOverride: String? = nil) throws -> WanModelFolder {
        guard ModelFiles.exists(path, directory: true) else {
            throw KinemaError.io(path: path, reason: "not a model folder (expected a diffusers pipeline folder or an original Wan folder)")
        }
        func file(_ relative: String) -> String? {
            let candidate = path + "/" + relative
            return ModelFiles.exists(candidate) ? candidate : nil
        }
        func require(_ candidates: [String], _ what: String) throws -> String {
            for candidate in candidates { if let found = file(candidate) { return found } }
            throw KinemaError.io(path: path, reason: "\(what) not found (looked for \(candidates.joined(separator: ", ")))")
        }
        let transformer = try ModelFiles.transformer(at: transformerOverride ?? path)
        if file("model_index.json") != nil {
            var shift: Double?
            if let config = file("scheduler/scheduler_config.json"), let data = FileManager.default.contents(atPath: config),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            {
                shift = (object["flow_shift"] as? NSNumber)?.doubleValue
            }
            var folder = WanModelFolder(
                path: path, layout: .diffusers, transformer: transformer,
                textEncoderWeights: try require(["text_encoder/model.safetensors.index.json", "text_encoder/model.safetensors", "text_encoder"], "text encoder"),
                textEncoderConfig: file("text_encoder/config.json"),
                tokenizer: try require(["tokenizer/tokenizer.json", "tokenizer/spiece.model", "tokenizer"], "tokenizer"),
                vaeWeights: try require(["vae/diffusion_pytorch_model.safetensors", "vae"], "VAE"),
                vaeConfig: file("vae/config.json"), schedulerShift: shift, defaultsConfig: file("kinema_defaults.json"))
            folder.imageEncoderWeights = ["image_encoder/model.safetensors.index.json", "image_encoder/model.safetensors"].lazy.compactMap(file).first
            folder.imageEncoderConfig = file("image_encoder/config.json")
            folder.imageProcessorConfig = file("image_processor/preprocessor_config.json")
            return folder
        }
        var folder = WanModelFolder(
            path: path, layout: .original, transformer: transformer,
            textEncoderWeights: try require(["models_t5_umt5-xxl-enc-bf16.pth", "models_t5_umt5-xxl-enc-fp32.pth"], "umT5 text encoder"),
            textEncoderConfig: nil,
            tokenizer: try require(["google/umt5-xxl/tokenizer.json", "google/umt5-xxl/spiece.model", "google/umt5-xxl"], "umT5 tokenizer"),
            vaeWeights: try require(["Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"], "Wan VAE"),
            vaeConfig: nil, schedulerShift: nil)
        folder.imageEncoderWeights = file(WanModelFolder.originalCLIPFile)
        return folder
    }

    /// Wan2.1's CLIP checkpoint (open-clip XLM-RoBERTa-large ViT-H/14, fp16; only its `visual.` tower is used).
    public static let originalCLIPFile = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"

    static func json(_ path: String?) throws -> (data: Data, origin: String)? {
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw KinemaError.io(path: path, reason: "cannot read") }
        return (data, path)
    }

    public func loadTokenizer() throws -> UnigramTokenizer { try UnigramTokenizer.load(tokenizer) }

    public func loadTextEncoder(backend: any Backend, precision: Precision) throws -> UMT5Encoder {
        try UMT5Encoder.load(
            from: try Checkpoints.open(textEncoderWeights), configJSON: try WanModelFolder.json(textEncoderConfig), backend: backend,
            precision: precision)
    }

    public func loadTransformer(backend: any Backend, precision: Precision) throws -> WanTransformer {
        try WanTransformer.load(
            from: transformer.weights, configJSON: try ModelFiles.configJSON(transformer), backend: backend, precision: precision)
    }

    public func loadVAE(backend: any Backend, precision: Precision) throws -> WanVAE {
        try WanVAE.load(from: try Checkpoints.open(vaeWeights), configJSON: try WanModelFolder.json(vaeConfig), backend: backend, precision: precision)
    }
}
