import Foundation
import KinemaCore
import KinemaNN

// The Wan2.1 video VAE (matches diffusers AutoencoderKLWan with the WanPipeline / WanImageToVideoPipeline
// latent scaling, and Wan's WanVAE): 8× spatial and 4× temporal compression to z = 16 channels.
//
// Chunking (as upstream, and what keeps memory flat in the frame count):
//   encode  frame 0 alone, then chunks of 4 frames; T = 1 + 4k frames → 1 + k latent frames
//   decode  one latent frame at a time; the first yields 1 frame, every later one 4: T_pixel = 1 + 4(T − 1)
// Every causal conv carries its last 2 input frames between chunks (WanVAEFeatureCache), so only those
// caches and one chunk's activations are alive at any time, besides the output.
//
// Latent scaling: the VAE itself works on raw latents. The diffusion model works on normalized ones,
//   normalized = (μ − mean) · (1 / std)          (I2V pipeline, after `encode`; μ = the posterior mode)
//   raw        = normalized / (1 / std) + mean   (T2V / I2V pipelines, before `decode`)
// with the per-channel `latents_mean` / `latents_std` of the config. Both are computed in f32 with the
// reciprocal rounded to f32 first, exactly as the pipelines do; `LatentScale` selects which form the
// caller passes or wants.

/// Which latent form `encode` returns / `decode` takes.
public enum LatentScale: Sendable {
    /// (μ − mean) / std: what the Wan DiT consumes and produces.
    case normalized
    /// The VAE's own latent space (μ as the encoder produced it).
    case raw
}

public final class WanVAE {
    public let config: WanVAEConfig
    public let precision: Precision
    public let backend: any Backend
    let encoder: WanVAEEncoder
    let decoder: WanVAEDecoder
    /// `conv1` (quant_conv): 1×1×1 on the encoder output [B, 2z, …] → (μ, log σ²).
    let quant: WanCausalConv
    /// `conv2` (post_quant_conv): 1×1×1 on raw latents before the decoder.
    let postQuant: WanCausalConv
    let mean: Tensor  // [1, z, 1, 1, 1] f32
    let inverseStd: Tensor  // [1, z, 1, 1, 1] f32, 1/std rounded to f32 (as the pipelines compute it)

    /// Builds from canonical (original Wan) keys.
    public init(_ w: WeightScope, config c: WanVAEConfig, precision: Precision) throws {
        try c.validate()
        let dtype = precision.computeDType
        config = c
        self.precision = precision
        backend = w.backend
        encoder = try WanVAEEncoder(w["encoder"], config: c, dtype: dtype)
        decoder = try WanVAEDecoder(w["decoder"], config: c, dtype: dtype)
        quant = try WanCausalConv(w["conv1"], inChannels: 2 * c.zDim, outChannels: 2 * c.zDim, kernel: [1, 1, 1], padding: [0, 0, 0], dtype: dtype)
        postQuant = try WanCausalConv(w["conv2"], inChannels: c.zDim, outChannels: c.zDim, kernel: [1, 1, 1], padding: [0, 0, 0], dtype: dtype)
        mean = try w.backend.upload(try Tensor(c.latentsMean, shape: [1, c.zDim, 1, 1, 1]))
        inverseStd = try w.backend.upload(try Tensor(c.latentsStd.map { 1 / $0 }, shape: [1, c.zDim, 1, 1, 1]))
    }

    /// Loads a Wan2.1 VAE from any tensor source in the diffusers or original layout (a `vae.` or
    /// `first_stage_model.` wrapper prefix is stripped). The configuration is, in order of preference:
    /// `config`, the diffusers `configJSON`, or detected from the weights (latent statistics: Wan2.1's for
    /// z = 16).
    public static func load(
        from source: any TensorSource, config: WanVAEConfig? = nil, configJSON: (data: Data, origin: String)? = nil,
        backend: any Backend, precision: Precision
    ) throws -> WanVAE {
        let names = source.names
        let wrapper = commonWrapperPrefix(of: names, candidates: WanVAEKeyLayouts.wrapperPrefixes)
        let stripped = names.map { name in wrapper.map { String(name.dropFirst($0.count)) } ?? name }
        let store = try WeightStore(
            source: source, backend: backend, component: "Wan VAE", layouts: WanVAEKeyLayouts.layouts(for: stripped),
            wrapperPrefixes: WanVAEKeyLayouts.wrapperPrefixes)
        let resolved: WanVAEConfig
        if let config {
            resolved = config
        } else if let configJSON {
            resolved = try WanVAEConfig.parse(json: configJSON.data, origin: configJSON.origin)
        } else {
            resolved = try WanVAEConfig.detect(info: store.info, keys: store.keys, origin: source.origin)
        }
        return try store.build { try WanVAE($0, config: resolved, precision: precision) }
    }

    // MARK: - Latent scaling

    /// (μ − mean) · (1/std), f32.
    public func normalize(_ raw: Tensor) throws -> Tensor {
        let b = backend
        return try b.mul(try b.sub(try b.cast(try b.upload(raw), to: .f32), mean), inverseStd)
    }

    /// z / (1/std) + mean, f32.
    public func denormalize(_ normalized: Tensor) throws -> Tensor {
        let b = backend
        return try b.add(try b.div(try b.cast(try b.upload(normalized), to: .f32), inverseStd), mean)
    }

    // MARK: - Encode

    /// Video [B, 3, T, H, W] in [-1, 1] (T = 1 + 4k, H and W multiples of 8) → the posterior mode μ
    /// [B, z, 1 + k, H/8, W/8], f32, normalized unless `output` is `.raw`.
    public func encode(_ video: Tensor, output: LatentScale = .normalized, taps: WanVAETapRecorder? = nil) throws -> Tensor {
        let c = config
        guard video.rank == 5, video.shape[1] == c.inChannels, video.dtype.isFloatingPoint else {
            throw KinemaError.shapeMismatch(
                context: "Wan VAE encode input", expected: "float [B, \(c.inChannels), T, H, W]", found: "\(video.shape) \(video.dtype.rawValue)")
        }
        let (batch, frames, height, width) = (video.shape[0], video.shape[2], video.shape[3], video.shape[4])
        let spatial = c.spatialCompression
        guard batch > 0, frames >= 1, (frames - 1) % c.temporalCompression == 0 else {
            throw KinemaError.invalidArgument(
                "Wan VAE encode: \(frames) frames; the chunked encoder needs 1 + \(c.temporalCompression)·k frames (batch \(batch))")
        }
        guard height > 0, width > 0, height % spatial == 0, width % spatial == 0 else {
            throw KinemaError.invalidArgument("Wan VAE encode: frame size \(height)×\(width) must be a positive multiple of \(spatial)")
        }
        let b = backend
        // Channels-last [B, T, H, W, 3] inside the VAE (WanVAEBlocks.swift says why).
        let input = try channelsLast(try b.cast(try b.upload(video), to: precision.computeDType), backend: b)
        let cache = WanVAEFeatureCache()
        var means: [Tensor] = []
        var start = 0
        while start < frames {
            let length = start == 0 ? 1 : c.temporalCompression
            cache.beginChunk()
            let chunk = try input.narrowed(axis: vaeTimeAxis, start: start, length: length)
            let moments = try quant(try encoder(chunk, cache: cache, taps: taps))  // [B, t, h, w, 2z]
            try taps?.record("enc.moments", moments, backend: b)
            means.append(try b.cast(try moments.narrowed(axis: 4, start: 0, length: c.zDim), to: .f32))
            start += length
        }
        let mu = try channelsFirst(try b.concat(means, axis: vaeTimeAxis), backend: b)  // [B, z, T_lat, h, w]
        switch output {
        case .raw: return mu
        case .normalized: return try normalize(mu)
        }
    }

    // MARK: - Decode

    /// Latents [B, z, T, h, w] → video [B, 3, 1 + 4(T − 1), 8h, 8w] in [-1, 1], f32.
    public func decode(_ latents: Tensor, input: LatentScale = .normalized, taps: WanVAETapRecorder? = nil) throws -> Tensor {
        var chunks: [Tensor] = []
        try decode(latents, input: input, taps: taps) { chunks.append($0) }
        return try backend.concat(chunks, axis: 2)
    }

    /// `decode` straight into host memory: video [B, 3, F, 8h, 8w] f32 in [-1, 1] on the host, F = 1 +
    /// (T − 1) · temporal compression. Each chunk's frames are queued for copying out as soon as they are
    /// decoded (the backend's HostDownloadQueue: on CUDA the copies overlap the later chunks' decoding), so
    /// no device-side concatenation and no whole-video download at the end. Equals `download(decode(latents))`.
    public func decodeToHost(_ latents: Tensor, input: LatentScale = .normalized) throws -> Tensor {
        let b = backend
        guard latents.rank == 5, latents.shape[2] > 0 else {
            throw KinemaError.shapeMismatch(context: "Wan VAE decode input", expected: "[B, \(config.zDim), T, h, w]", found: "\(latents.shape)")
        }
        let frames = 1 + (latents.shape[2] - 1) * config.temporalCompression
        let queue = try b.makeHostDownloadQueue()
        var video: Tensor?
        var frame = 0
        do {
            try decode(latents, input: input) { chunk in
                let chunk = try b.contiguous(chunk)  // [B, 3, n, H, W] f32
                let (batch, channels, n, height, width) = (chunk.shape[0], chunk.shape[1], chunk.shape[2], chunk.shape[3], chunk.shape[4])
                let out = try video ?? Tensor.uninitialized([batch, channels, frames, height, width], dtype: .f32)
                video = out
                guard chunk.dtype == .f32, frame + n <= frames, Array(out.shape[0..<2]) == [batch, channels], Array(out.shape[3...]) == [height, width]
                else {
                    throw KinemaError.shapeMismatch(
                        context: "Wan VAE decode chunk at frame \(frame)", expected: "f32 [\(batch), \(channels), ≤ \(frames - frame), \(height), \(width)]",
                        found: "\(chunk.dtype.rawValue) \(chunk.shape)")
                }
                // One piece per (batch, channel) plane: n frames of the chunk → frames frame..<frame+n of the video.
                let planeBytes = n * height * width * 4
                let pieces = (0..<(batch * channels)).map { plane in
                    HostCopyPiece(
                        sourceOffset: plane * planeBytes, destination: out.hostPointer + ((plane * frames + frame) * height * width) * 4,
                        bytes: planeBytes)
                }
                try queue.enqueue(chunk, pieces: pieces)
                frame += n
            }
        } catch {
            withExtendedLifetime(video) { try? queue.finish() }  // queued copies write into `video`: wait for them first
            throw error
        }
        try queue.finish()
        guard let video, frame == frames else {
            throw KinemaError.shapeMismatch(context: "Wan VAE decode", expected: "\(frames) frames", found: "\(frame)")
        }
        return video
    }

    /// Streaming decode: `onFrames` receives each chunk's frames [B, 3, n, 8h, 8w] (n = 1 for the first
    /// latent frame, 4 after), f32 in [-1, 1], in order, as soon as they are decoded.
    public func decode(
        _ latents: Tensor, input: LatentScale = .normalized, taps: WanVAETapRecorder? = nil,
        onFrames: (Tensor) throws -> Void
    ) throws {
        let c = config
        guard latents.rank == 5, latents.shape[1] == c.zDim, latents.dtype.isFloatingPoint,
            latents.shape[0] > 0, latents.shape[2] > 0, latents.shape[3] > 0, latents.shape[4] > 0
        else {
            throw KinemaError.shapeMismatch(
                context: "Wan VAE decode input", expected: "float [B, \(c.zDim), T, h, w] with every size > 0",
                found: "\(latents.shape) \(latents.dtype.rawValue)")
        }
        let b = backend
        let raw: Tensor
        switch input {
        case .normalized: raw = try denormalize(latents)
        case .raw: raw = try b.cast(try b.upload(latents), to: .f32)
        }
        let dtype = precision.computeDType
        let lower = try b.upload(try Tensor([-1], shape: [1]))
        let upper = try b.upload(try Tensor([1], shape: [1]))
        // The first two latent frames hold every convolution problem of the decode (later chunks repeat the second's
        // shapes): a backend that compiles convolution plans does them all at once, in parallel, before the real pass.
        if latents.shape[2] > 1,
            b.shouldPlanConvolutions(for: "Wan VAE decode \(Array(latents.shape[0...0] + latents.shape[3...])) \(dtype.rawValue)", dtype: dtype)
        {
            // Only a speed-up: a failure here is left for the real pass to meet (and report) if it is real.
            try? b.planningConvolutions {
                let planning = WanVAEFeatureCache()
                for frame in 0..<2 {
                    planning.beginChunk()
                    let latent = try channelsLast(try b.cast(try raw.narrowed(axis: 2, start: frame, length: 1), to: dtype), backend: b)
                    _ = try decoder(try postQuant(latent), cache: planning, taps: nil)
                }
            }
        }
        let cache = WanVAEFeatureCache()
        for frame in 0..<latents.shape[2] {
            cache.beginChunk()
            // [B, z, 1, h, w] → channels-last [B, 1, h, w, z] inside the VAE, [B, 3, n, 8h, 8w] out.
            let latent = try channelsLast(try b.cast(try raw.narrowed(axis: 2, start: frame, length: 1), to: dtype), backend: b)
            let out = try b.cast(try decoder(try postQuant(latent), cache: cache, taps: taps), to: .f32)
            let clamped = try b.binary(.minimum, try b.binary(.maximum, out, lower), upper)
            try onFrames(try channelsFirst(clamped, backend: b))
        }
    }
}
