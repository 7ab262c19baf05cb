import Foundation
import KinemaCore
import KinemaIO
import KinemaModels

// Finds a model's parts on disk. Accepted for the transformer:
// - a diffusers pipeline folder (model_index.json, transformer/config.json + weights),
// - a diffusers transformer folder or an original Wan folder (config.json + diffusion_pytorch_model*.safetensors,
//   sharded with an index or not),
// - a single .safetensors file (LightX2V / ComfyUI single-file DiT), config detected from its tensors.

public enum CheckpointLayoutName: String, Sendable {
    case diffusersPipeline = "diffusers pipeline"
    case diffusersComponent = "diffusers component folder"
    case wanOriginal = "original Wan folder"
    case singleFile = "single file"
}

public struct TransformerFiles {
    public let weights: any TensorSource
    public let configPath: String?
    public let layout: CheckpointLayoutName
}

public enum ModelFiles {
    static func exists(_ path: String, directory: Bool? = nil) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return false }
        if let directory { return isDirectory.boolValue == directory }
        return true
    }

    /// Locates the Wan transformer weights (and config, if any) under `path`.
    public static func transformer(at path: String) throws -> TransformerFiles {
        guard exists(path) else { throw KinemaError.io(path: path, reason: "no such file or directory") }
        if exists(path, directory: false) {
            let sibling = (path as NSString).deletingLastPathComponent + "/config.json"
            return TransformerFiles(
                weights: try SafeTensors.open(path), configPath: exists(sibling, directory: false) ? sibling : nil,
                layout: .singleFile)
        }
        if exists(path + "/model_index.json", directory: false) {
            let folder = path + "/transformer"
            guard exists(folder, directory: true) else {
                throw KinemaError.badFile(path: path, location: "model_index.json", reason: "pipeline folder has no transformer/ subfolder")
            }
            return TransformerFiles(
                weights: try SafeTensors.open(folder), configPath: configIfPresent(folder), layout: .diffusersPipeline)
        }
        let config = configIfPresent(path)
        let layout: CheckpointLayoutName
        if let config, let data = FileManager.default.contents(atPath: config),
            let text = String(data: data, encoding: .utf8), text.contains("\"_class_name\": \"WanModel\"") || text.contains("\"dim\"")
        {
            layout = .wanOriginal
        } else {
            layout = config == nil ? .wanOriginal : .diffusersComponent
        }
        return TransformerFiles(weights: try transformerWeights(inFolder: path), configPath: config, layout: layout)
    }

    private static func configIfPresent(_ folder: String) -> String? {
        let candidate = folder + "/config.json"
        return exists(candidate, directory: false) ? candidate : nil
    }

    /// The DiT weights of a folder that may also hold T5/VAE/CLIP files: prefer diffusion_pytorch_model*.
    private static func transformerWeights(inFolder folder: String) throws -> any TensorSource {
        let index = folder + "/diffusion_pytorch_model.safetensors.index.json"
        if exists(index, directory: false) { return try SafeTensors.open(index) }
        let single = folder + "/diffusion_pytorch_model.safetensors"
        if exists(single, directory: false) { return try SafeTensors.open(single) }
        return try SafeTensors.open(folder)
    }

    /// The config file's bytes, if the folder has one.
    public static func configJSON(_ files: TransformerFiles) throws -> (data: Data, origin: String)? {
        guard let path = files.configPath else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KinemaError.io(path: path, reason: "cannot read")
        }
        return (data, path)
    }
}
