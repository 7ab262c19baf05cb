import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// Text-to-video with a Wan2.1 model (matches diffusers WanPipeline): tokenize and encode the prompt and the
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

    /// Checks the settings without touching any model file.
    public func validate() throws {
        guard frames >= 1, (frames - 1) % 4 == 0 else {
            throw KinemaError.invalidArgument("frames must be 4k + 1 (1, 5, …, 81), got \(frames)")
        }
        guard height >= 16, width >= 16, height % 16 == 0, width % 16 == 0 else {
            throw KinemaError.invalidArgument("height and width must be positive multiples of 16, got \(height)×\(width)")
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
    var generator = SplitMix64(seed: seed)
    return try Tensor(generator.normals(shape.reduce(1, *)), shape: shape)
}

/// The loaded parts of a Wan text-to-video model.
public final class TextToVideoPipeline {
    public let tokenizer: UnigramTokenizer
    public let textEncoder: UMT5Encoder
    public let transformer: WanTransformer
    public let vae: WanVAE
    public let backend: any Backend
    /// The text length the DiT was trained with (512 for Wan2.1).
    public var textLength = 512

    public init(tokenizer: UnigramTokenizer, textEncoder: UMT5Encoder, transformer: WanTransformer, vae: WanVAE, backend: any Backend) throws {
        guard textEncoder.config.dModel == transformer.config.textDim else {
            throw KinemaError.invalidArgument(
                "text encoder width \(textEncoder.config.dModel) does not match the transformer's text input \(transformer.config.textDim)")
        }
        guard transformer.config.inDim == 16, !transformer.config.hasImageBranch else {
            throw KinemaError.unsupported(
                "this transformer is an image-to-video model (in_dim \(transformer.config.inDim)); text-to-video needs a 16-channel T2V model")
        }
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.transformer = transformer
        self.vae = vae
        self.backend = backend
    }

    public static func load(_ folder: WanModelFolder, backend: any Backend, precision: Precision) throws -> TextToVideoPipeline {
        try TextToVideoPipeline(
            tokenizer: try folder.loadTokenizer(), textEncoder: try folder.loadTextEncoder(backend: backend, precision: precision),
            transformer: try folder.loadTransformer(backend: backend, precision: precision),
            vae: try folder.loadVAE(backend: backend, precision: precision), backend: backend)
    }

    /// umT5 embedding of a prompt (cleaned as WanPipeline does), padded to `textLength` tokens with zeros:
    /// [1, 512, D] f32 on the device.
    public func encode(prompt: String) throws -> Tensor {
        let (ids, mask) = try tokenizer.encode(WanPrompts.clean(prompt), maxLength: textLength)
        return try backend.upload(try textEncoder.encodePrompt(ids: ids, mask: mask))
    }

    /// Prepares a denoising session: encodes the prompts and sets up the noise and the sampler.
    /// `latents`: the initial noise [1, 16, T, h, w] (nil: drawn from `settings.seed`).
    public func session(_ settings: GenerationSettings, latents: Tensor? = nil) throws -> DenoisingSession {
        try settings.validate()
        let start = try latents ?? initialNoise(shape: settings.latentShape, seed: settings.seed)
        guard start.shape == settings.latentShape else {
            throw KinemaError.shapeMismatch(context: "initial latents", expected: "\(settings.latentShape)", found: "\(start.shape)")
        }
        let guidance = try ClassifierFreeGuidance(scale: settings.guidance)
        let positive = try encode(prompt: settings.prompt)
        let negative = guidance.needsUnconditional ? try encode(prompt: settings.negativePrompt ?? WanPrompts.defaultNegativePrompt) : nil
        return DenoisingSession(
            pipeline: self, sampler: try settings.sampler.makeSampler(), guidance: guidance, positive: positive, negative: negative,
            latents: try Tensor(try backend.download(start).floats(), shape: start.shape))
    }
}

/// One generation in progress. `step()` runs one sampler step (one or two transformer evaluations);
/// `decode()` turns the final latents into a video.
public final class DenoisingSession {
    public let pipeline: TextToVideoPipeline
    public private(set) var sampler: any FlowSampler
    public let guidance: ClassifierFreeGuidance
    let positive: Tensor
    let negative: Tensor?
    /// Current latents, f32 on the host (the samplers' state is small and kept in f32).
    public private(set) var latents: Tensor

    init(pipeline: TextToVideoPipeline, sampler: any FlowSampler, guidance: ClassifierFreeGuidance, positive: Tensor, negative: Tensor?, latents: Tensor) {
        self.pipeline = pipeline
        self.sampler = sampler
        self.guidance = guidance
        self.positive = positive
        self.negative = negative
        self.latents = latents
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
        let x = try b.upload(latents)
        let conditional = try pipeline.transformer.forward(WanTransformerInputs(latents: x, timestep: timestep, text: positive))
        var velocity = conditional
        if let negative {
            let unconditional = try pipeline.transformer.forward(WanTransformerInputs(latents: x, timestep: timestep, text: negative))
            velocity = try guidance.combine(cond: conditional, uncond: unconditional, backend: b)
        }
        latents = try sampler.step(modelOutput: try b.download(velocity), sample: latents)
        return t
    }

    /// Decodes the current latents: video [1, 3, F, H, W] in [-1, 1], on the host.
    public func decode() throws -> Tensor {
        let b = pipeline.backend
        return try b.download(try pipeline.vae.decode(try b.upload(latents)))
    }
}

