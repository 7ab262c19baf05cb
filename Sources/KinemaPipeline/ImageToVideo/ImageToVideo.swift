import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// Image-to-video (I2V) and first-last-frame-to-video (FLF2V) with Wan2.1 models, following diffusers'
// WanImageToVideoPipeline (Wan2.1 paths; cross-checked against Wan's image2video.py /
// first_last_frame2video.py in scripts/goldens/i2v_goldens.py):
//
//   condition [1, 20, T, h, w] = concat(mask [1, 4, T, h, w], y [1, 16, T, h, w]) along channels, where
//     y    = normalized VAE latents (posterior mode) of the pixel video [image, zeros…(, last image)], F frames
//     mask = 1 over pixel frames that are given (frame 0; FLF2V also frame F − 1), 0 elsewhere; frame 0 is
//            repeated 4× so the F + 3 entries fold into T latent frames × 4 channels
//   at every step the DiT sees concat(latents, condition) (16 + 20 = 36 channels), and the CLIP image
//   tokens (penultimate layer; both images for FLF2V, which the DiT lays end to end under `emb_pos`) in its
//   image branch, for the conditional and the unconditional pass alike.
//
// The sampler loop is the text-to-video one (DenoisingSession). Out of scope: Wan2.2's I2V paths of that
// pipeline (`expand_timesteps`, two transformers with `boundary_ratio`).

/// What a Wan model generates, from its transformer config.
public enum WanTask: String, Sendable {
    case textToVideo = "t2v"
    case imageToVideo = "i2v"
    case firstLastFrameToVideo = "flf2v"

    /// T2V: 16 input channels, no image branch. I2V: 36 channels + image branch. FLF2V: I2V + `emb_pos`.
    public init(config c: WanConfig) throws {
        switch (c.inDim, c.hasImageBranch, c.imagePositionTokens != nil) {
        case (16, false, _): self = .textToVideo
        case (36, true, false): self = .imageToVideo
        case (36, true, true): self = .firstLastFrameToVideo
        default:
            throw KinemaError.unsupported(
                "Wan transformer with \(c.inDim) input channels\(c.hasImageBranch ? " and an image branch" : ""): "
                    + "only Wan2.1 text-to-video (16), image-to-video and first-last-frame-to-video (36 + CLIP) models are supported")
        }
    }

    public var description: String {
        switch self {
        case .textToVideo: return "text-to-video"
        case .imageToVideo: return "image-to-video"
        case .firstLastFrameToVideo: return "first-last-frame-to-video"
        }
    }

    /// Checks that the inputs fit the task: an error that says what to pass instead.
    public func check(hasImage: Bool, hasLastImage: Bool) throws {
        switch self {
        case .textToVideo:
            if hasImage || hasLastImage {
                throw KinemaError.unsupported("this is a text-to-video model; an input image needs a Wan2.1 I2V or FLF2V model")
            }
        case .imageToVideo:
            if !hasImage { throw KinemaError.invalidArgument("this is an image-to-video model: give the first frame (--image)") }
            if hasLastImage {
                throw KinemaError.unsupported(
                    "this image-to-video model has no first/last-frame position embedding (img_emb.emb_pos); "
                        + "a last image needs a Wan2.1 FLF2V model")
            }
        case .firstLastFrameToVideo:
            if !hasImage || !hasLastImage {
                throw KinemaError.invalidArgument("this is a first-last-frame-to-video model: give both --image and --last-image")
            }
        }
    }
}

/// Turns images (at the video size) into the DiT's image tokens: CLIP's penultimate hidden states.
public protocol WanImageEncoder: AnyObject {
    /// [N, tokens, image_dim] f32 on the pipeline's backend, one row per image, in order.
    func encode(_ images: [RGBImage]) throws -> Tensor
}

/// The frames an I2V / FLF2V generation starts from (any size: resized to the video size with Pillow's
/// bicubic filter, as diffusers' example does before calling the pipeline). The last frame is resized to the
/// same size without keeping its aspect ratio: give one shaped like the first. (diffusers' docs example and
/// Wan's first_last_frame2video.py center-crop a differently shaped last frame first; not reproduced.)
public struct ImageConditioning {
    public var first: RGBImage
    public var last: RGBImage?

    public init(first: RGBImage, last: RGBImage? = nil) {
        self.first = first
        self.last = last
    }
}

extension TextToVideoPipeline {
    /// The 4-channel mask over latent frames [1, 4, T, h, w]: latent frame 0 is all ones; with a last frame,
    /// channel 3 of the last latent frame is one (its 4th pixel frame is the given last frame).
    public static func conditionMask(latentFrames t: Int, height h: Int, width w: Int, hasLast: Bool) throws -> Tensor {
        let plane = h * w
        var values = [Float](repeating: 0, count: 4 * t * plane)
        for channel in 0..<4 {
            let base = (channel * t) * plane
            for i in 0..<plane { values[base + i] = 1 }
            if hasLast && channel == 3 && t > 1 {
                let last = (channel * t + t - 1) * plane
                for i in 0..<plane { values[last + i] = 1 }
            }
        }
        return try Tensor(values, shape: [1, 4, t, h, w])
    }

    /// The images at the video size of `settings`.
    func resized(_ images: ImageConditioning, _ settings: GenerationSettings) throws -> ImageConditioning {
        ImageConditioning(
            first: try images.first.resized(width: settings.width, height: settings.height),
            last: try images.last.map { try $0.resized(width: settings.width, height: settings.height) })
    }

    /// concat(mask, normalized VAE latents of [first, zeros…(, last)]) [1, 20, T, h, w] f32 on the device.
    /// The images must already be at the video size.
    public func condition(for images: ImageConditioning, settings: GenerationSettings) throws -> Tensor {
        let (f, height, width) = (settings.frames, settings.height, settings.width)
        for image in [images.first] + (images.last.map { [$0] } ?? []) where image.width != width || image.height != height {
            throw KinemaError.shapeMismatch(context: "conditioning image", expected: "\(width)×\(height)", found: "\(image.width)×\(image.height)")
        }
        if images.last != nil && f < 5 {
            throw KinemaError.invalidArgument("first-last-frame-to-video needs at least 5 frames, got \(f)")
        }
        // Pixel video [1, 3, F, H, W]: frame 0 the first image, frame F − 1 the last one (FLF2V), zeros between.
        let plane = height * width
        var video = [Float](repeating: 0, count: 3 * f * plane)
        func place(_ image: RGBImage, frame: Int) throws {
            let pixels = try image.tensor().floats()  // [3, H, W] in [-1, 1]
            for c in 0..<3 {
                let dst = (c * f + frame) * plane
                for i in 0..<plane { video[dst + i] = pixels[c * plane + i] }
            }
        }
        try place(images.first, frame: 0)
        if let last = images.last { try place(last, frame: f - 1) }
        let b = backend
        let latents = try vae.encode(try Tensor(video, shape: [1, 3, f, height, width]))  // [1, 16, T, h, w]
        let shape = settings.latentShape
        let mask = try b.upload(try Self.conditionMask(latentFrames: shape[2], height: shape[3], width: shape[4], hasLast: images.last != nil))
        return try b.concat([mask, try b.cast(latents, to: .f32)], axis: 1)
    }

    /// Image tokens for the DiT's image branch: [1, tokens, C] (I2V) or [2, tokens, C] (FLF2V: first, last).
    public func encodeImages(_ images: ImageConditioning) throws -> Tensor {
        guard let imageEncoder else {
            throw KinemaError.invalidArgument("this pipeline was loaded without an image encoder (CLIP); image-to-video needs one")
        }
        return try imageEncoder.encode([images.first] + (images.last.map { [$0] } ?? []))
    }

    /// Prepares an image-to-video (or first-last-frame) session: resizes the images to the video size, encodes
    /// the prompts, the images (CLIP) and the condition (VAE). `imageEmbeds`: precomputed image tokens (as
    /// diffusers' `image_embeds`), skipping the image encoder.
    public func session(
        _ settings: GenerationSettings, images: ImageConditioning, latents: Tensor? = nil, imageEmbeds: Tensor? = nil
    ) throws -> DenoisingSession {
        try settings.validate()
        try task.check(hasImage: true, hasLastImage: images.last != nil)
        let sized = try resized(images, settings)
        let condition = try condition(for: sized, settings: settings)
        let tokens = try imageEmbeds.map { try backend.upload($0) } ?? encodeImages(sized)
        let expectedImages = sized.last == nil ? 1 : 2
        guard tokens.rank == 3, tokens.shape[0] == expectedImages, tokens.shape[2] == transformer.config.imageDim else {
            throw KinemaError.shapeMismatch(
                context: "image embeddings", expected: "[\(expectedImages), tokens, \(transformer.config.imageDim ?? 0)]", found: "\(tokens.shape)")
        }
        if let positions = transformer.config.imagePositionTokens, positions != 2 * tokens.shape[1] {
            throw KinemaError.shapeMismatch(
                context: "image tokens for emb_pos", expected: "2 × \(positions / 2)", found: "2 × \(tokens.shape[1])")
        }
        return try makeSession(settings, latents: latents, condition: condition, imageTokens: tokens)
    }
}
