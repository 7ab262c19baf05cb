import Foundation
import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaModels

// The image side of a generation request (`kinema generate --image … [--last-image …]`), checked before
// any weights are read: the task the model performs (from its transformer config: tensor headers only), the
// image files (decoded), the CLIP files, and the video size from the first image's aspect ratio.

extension WanModelFolder {
    /// The transformer's configuration, from config.json and tensor headers (no weights are loaded).
    public func transformerConfig() throws -> WanConfig {
        try WanTransformer.config(of: transformer.weights, configJSON: try ModelFiles.configJSON(transformer), backend: CPUBackend.shared)
    }

    /// What this folder's model generates.
    public func task() throws -> WanTask { try WanTask(config: try transformerConfig()) }
}

public enum ImageInputs {
    /// Reads `imagePath` (and `lastImagePath`) for `folder`'s model and sizes the video: with an image,
    /// `settings.width × settings.height` is the target area and the video takes the image's aspect ratio
    /// (`rule`, sides multiples of 16). Returns nil for text-to-video. Throws before any model work when the
    /// request does not fit the model (an image for a T2V model, none for an I2V model, a last image for a
    /// model without first/last-frame embeddings, a missing CLIP encoder, unreadable images).
    public static func prepare(
        folder: WanModelFolder, imagePath: String?, lastImagePath: String?, settings: inout GenerationSettings,
        rule: WanVideoSizeRule = .diffusers
    ) throws -> ImageConditioning? {
        if lastImagePath != nil && imagePath == nil {
            throw KinemaError.invalidArgument("--last-image needs --image (the first frame)")
        }
        let task = try folder.task()
        try task.check(hasImage: imagePath != nil, hasLastImage: lastImagePath != nil)
        guard let imagePath else { return nil }
        // The target area's sides are bounded here, so width × height cannot overflow.
        try settings.validate()
        if lastImagePath != nil && settings.frames < 5 {
            throw KinemaError.invalidArgument(
                "first-last-frame-to-video needs at least 5 frames (the last image is the last of them), got \(settings.frames)")
        }
        if folder.imageEncoderWeights == nil {
            let expected = folder.layout == .diffusers ? "image_encoder/model.safetensors" : WanModelFolder.originalCLIPFile
            throw KinemaError.io(path: folder.path, reason: "this \(task.description) model folder has no CLIP image encoder (looked for \(expected))")
        }
        _ = try folder.imageEncoderSetup()
        let first = try ImageDecoder.decode(path: imagePath)
        let last = try lastImagePath.map { try ImageDecoder.decode(path: $0) }
        let size = try WanVideoSize.target(
            imageWidth: first.width, imageHeight: first.height, area: settings.width * settings.height, rule: rule)
        (settings.width, settings.height) = (size.width, size.height)
        try settings.validate()
        return ImageConditioning(first: first, last: last)
    }
}
