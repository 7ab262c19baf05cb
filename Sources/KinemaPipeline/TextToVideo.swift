import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// Text-to-video with a Wan2.1 model (matches diffusers WanPipeline; image-to-video sessions of the same
// pipeline are in ImageToVideo/): tokenize and encode the prompt and the
// negative prompt with umT5 (padded to 512 tokens), draw the initial noise, run the sampler with
// classifier-free guidance, decode with the VAE. The denoising loop is a session the caller steps through,
// so progress bars, cancellation and previews live outside the pipeline.

public struct GenerationSettings: Sendable, Equatable {
    public var prompt: String
    /// nil: Wan's default negative prompt.
    public var negativePrompt: String?
    /// Pixel frames, 4k + 1 (81 = 5 s at 16 fps).
    public var frames: Int = 81
    public var height: Int = 480
    public var width: Int = 832
    public var sampler: SamplerConfiguration = SamplerConfiguration(kind: .unipc, steps: 50, shift: 5)
    /// Classifier-free guidance scale; ≤ 1 runs the model once per step without the negative prompt.
    public var guidance: Float = 5
    public var seed: UInt64 = 0

    public init(prompt: String) { self.prompt = prompt }

    /// Latent grid: 16 channels, (frames − 1)/4 + 1 frames, height/8 × width/8.
    public var latentShape: [Int] { [1, 16, (frames - 1) / 4 + 1, height / 8, width / 8] }

    /// Upper bounds that keep every size product (pixels, latents, tokens, attention) far from Int overflow;
    /// far above what Wan2.1 was trained for (81 frames, 1280×720).
    public static let maximumFrames = 4097
    public static let maximumSide = 8192

    /// Checks the settings without touching any model file.
    public func validate() throws {
        guard frames >= 1, frames <= Self.maximumFrames, (frames - 1) % 4 == 0 else {
            throw KinemaError.invalidArgument("frames must be 4k + 1 (1, 5, …, 81) and at most \(Self.maximumFrames), got \(frames)")
        }
        guard height >= 16, width >= 16, height % 16 == 0, width % 16 == 0, height <= Self.maximumSide, width <= Self.maximumSide else {
            throw KinemaError.invalidArgument(
                "height and width must be multiples of 16 from 16 to \(Self.maximumSide), got \(height)×\(width)")
        }
        guard guidance.isFinite, guidance >= 0 else {
            throw KinemaError.invalidArgument("guidance must be a finite number ≥ 0, got \(guidance)")
        }
        _ = try sampler.makeSampler()
    }
}

/// Seeded initial noise: standard normal f32 from SplitMix64 + Box–Muller, in row-major order of the latent
/// shape. (Not torch's generator: pass `latents` explicitly to reproduce another implementation's start.)
public func initialNoise(shape: [Int], seed: UInt64) throws -> Tensor {
    try Tensor(SplitMix64.normals(seed: seed, count: shape.reduce(1, *), threads: RuntimeOptions.current.threads), shape: shape)
}

/// The loaded parts of a Wan text-to-video (or image-to-video) model.
public final class TextToVideoPipeline {
    public let tokenizer: any PromptTokenizer
    public let textEncoder: UMT5Encoder
    public let transformer: WanTransformer
    public let vae: WanVAE
    public let backend: any Backend
    /// The text length the DiT was trained with (512 for Wan2.1).
    public var textLength = 512

    /// CLIP image encoder of I2V / FLF2V models (nil for text-to-video).
    public let imageEncoder: (any WanImageEncoder)?
    /// What the transformer generates: text-to-video, image-to-video or first-last-frame-to-video.
    public let task: WanTask

    public init(
        tokenizer: any PromptTokenizer, textEncoder: UMT5Encoder, transformer: WanTransformer, vae: WanVAE,
        imageEncoder: (any WanImageEncoder)? = nil, backend: any Backend
    ) throws {
        guard textEncoder.config.dModel == transformer.config.textDim else {
            throw KinemaError.invalidArgument(
                "text encoder width \(textEncoder.config.dModel) does not match the transformer's text input \(transformer.config.textDim)")
        }
        task = try WanTask(config: transformer.config)
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.transformer = transformer
        self.vae = vae
        self.imageEncoder = task == .textToVideo ? nil : imageEncoder
        self.backend = backend
    }

    /// Loads every component of the folder. `imageEncoder: false` skips CLIP for I2V models (sessions then need
    /// precomputed image tokens).
    public static func load(_ folder: WanModelFolder, backend: any Backend, precision: Precision, imageEncoder: Bool = true) throws -> TextToVideoPipeline {
        let transformer = try folder.loadTransformer(backend: backend, precision: precision)
        let needsImages = try WanTask(config: transformer.config) != .textToVideo && imageEncoder
        return try TextToVideoPipeline(
            tokenizer: try folder.loadTokenizer(), textEncoder: try folder.loadTextEncoder(backend: backend, precision: precision),
            transformer: transformer, vae: try folder.loadVAE(backend: backend, precision: precision),
            imageEncoder: needsImages ? try folder.loadImageEncoder(backend: backend, precision: precision) : nil, backend: backend)
    }

    /// umT5 embedding of a prompt (cleaned as WanPipeline does), padded to `textLength` tokens with zeros:
    /// [1, 512, D] f32 on the device.
    public func encode(prompt: String) throws -> Tensor {
        let (ids, mask) = try tokenizer.promptIDs(WanPrompts.clean(prompt), maxLength: textLength)
        return try backend.upload(try textEncoder.encodePrompt(ids: ids, mask: mask))
    }

    /// Prepares a text-to-video denoising session: encodes the prompts and sets up the noise and the sampler.
    /// `latents`: the initial noise [1, 16, T, h, w] (nil: drawn from `settings.seed`).
    public func session(_ settings: GenerationSettings, latents: Tensor? = nil) throws -> DenoisingSession {
        try settings.validate()
        try task.check(hasImage: false, hasLastImage: false)
        return try makeSession(settings, latents: latents, condition: nil, imageTokens: nil)
    }

    /// The session of any task: `condition` [1, 20, T, h, w] and `imageTokens` on the device for I2V / FLF2V.
    func makeSession(_ settings: GenerationSettings, latents: Tensor?, condition: Tensor?, imageTokens: Tensor?) throws -> DenoisingSession {
        if let latents, latents.shape != settings.latentShape {
            throw KinemaError.shapeMismatch(context: "initial latents", expected: "\(settings.latentShape)", found: "\(latents.shape)")
        }
        let guidance = try ClassifierFreeGuidance(scale: settings.guidance)
        // The prompts first: on a GPU their encoder runs while the host draws the noise (≈ 5 ms on 16 cores at
        // 480p × 81 frames, against umT5-XXL's ≈ 20 ms).
        let positive = try encode(prompt: settings.prompt)
        let negative = guidance.needsUnconditional ? try encode(prompt: settings.negativePrompt ?? WanPrompts.defaultNegativePrompt) : nil
        let start = try latents ?? initialNoise(shape: settings.latentShape, seed: settings.seed)
        return DenoisingSession(
            pipeline: self, sampler: try settings.sampler.makeSampler(), guidance: guidance, positive: positive, negative: negative,
            latents: try backend.cast(try backend.upload(start), to: .f32), condition: condition, imageTokens: imageTokens)
    }
}

/// One generation in progress. `step()` runs one sampler step (one or two transformer evaluations);
/// `decode()` turns the final latents into a video. The latents and the sampler's history stay on the
/// backend's device for the whole run: a step moves no latents between host and device.
public final class DenoisingSession {
    public let pipeline: TextToVideoPipeline
    public private(set) var sampler: any FlowSampler
    public let guidance: ClassifierFreeGuidance
    let positive: Tensor
    let negative: Tensor?
    /// Current latents [1, 16, T, h, w], f32 on the backend's device.
    private(set) var deviceLatents: Tensor
    /// The current latents as an f32 host tensor. Each read downloads them from the device (4 bytes per
    /// element: 8.4 MB at Wan 1.3B's 480p shape on a GPU; free on the CPU backend), so read them for previews
    /// or checks, not in the step loop.
    public var latents: Tensor {
        get throws { try pipeline.backend.download(deviceLatents) }
    }
    /// I2V / FLF2V: mask + image latents [1, 20, T, h, w] appended to the latents' channels at every step, and
    /// the CLIP image tokens [N, tokens, C] (the same for the conditional and unconditional passes).
    public let condition: Tensor?
    public let imageTokens: Tensor?

    init(
        pipeline: TextToVideoPipeline, sampler: any FlowSampler, guidance: ClassifierFreeGuidance, positive: Tensor, negative: Tensor?,
        latents: Tensor, condition: Tensor? = nil, imageTokens: Tensor? = nil
    ) {
        self.pipeline = pipeline
        self.sampler = sampler
        self.guidance = guidance
        self.positive = positive
        self.negative = negative
        self.deviceLatents = latents
        self.condition = condition
        self.imageTokens = imageTokens
    }

    public var totalSteps: Int { sampler.timesteps.count }
    public var completedSteps: Int { sampler.stepIndex }
    public var isFinished: Bool { sampler.isFinished }

    /// Runs the next step and returns its model timestep, or nil when finished.
    @discardableResult
    public func step() throws -> Float? {
        guard let t = sampler.currentTimestep else { return nil }
        let b = pipeline.backend
        let timestep = try Tensor([t], shape: [1])
        var x = deviceLatents
        if let condition { x = try b.concat([x, condition], axis: 1) }
        let conditional = try pipeline.transformer.forward(WanTransformerInputs(latents: x, timestep: timestep, text: positive, image: imageTokens))
        var velocity = conditional
        if let negative {
            let unconditional = try pipeline.transformer.forward(
                WanTransformerInputs(latents: x, timestep: timestep, text: negative, image: imageTokens))
            velocity = try guidance.combine(cond: conditional, uncond: unconditional, backend: b)
        }
        deviceLatents = try sampler.step(modelOutput: velocity, sample: deviceLatents, backend: b)
        return t
    }

    /// Decodes the current latents: video [1, 3, F, H, W] in [-1, 1], on the host.
    public func decode() throws -> Tensor {
        try pipeline.vae.decodeToHost(deviceLatents)
    }
}

