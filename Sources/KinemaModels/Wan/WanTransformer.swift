import Foundation
import KinemaCore
import KinemaNN

// The Wan2.1 diffusion transformer (matches diffusers WanTransformer3DModel and Wan's WanModel):
//   patch embed (Conv3d k = s = (1,2,2)) → tokens [B, L, D], L = F·(H/2)·(W/2) in (f, h, w) order
//   time: sinusoid → MLP → e [B, D]; e0 = proj(SiLU(e)) [B, 6, D]
//   context: text MLP [B, Lt, D]; I2V image MLP [B, Li, D]
//   blocks × N
//   head: LN(x)·(1+scale) + shift with (head.modulation + e) → Linear D → 64 → unpatchify [B, 16, F, H, W]

/// Intermediate tensors recorded during a forward pass, named as the golden fixtures name them.
public enum WanTap: String, CaseIterable, Sendable {
    case patchEmbed = "tap.patch_embed"  // [B, L, D]
    case timeEmbedding = "tap.temb"  // [B, D]
    case timeProjection = "tap.timestep_proj"  // [B, 6·D]
    case textEmbedding = "tap.text_embed"  // [B, Lt, D]
    case imageEmbedding = "tap.image_embed"  // [B, Li, D]
    case firstBlock = "tap.block0"  // [B, L, D]
    case lastBlock = "tap.block_last"  // [B, L, D]
    case head = "tap.proj_out"  // [B, L, 64]
}

/// Collects taps when passed to `forward`.
public final class WanTapRecorder {
    public private(set) var tensors: [WanTap: Tensor] = [:]
    public init() {}
    func record(_ tap: WanTap, _ tensor: Tensor, backend: any Backend) throws {
        tensors[tap] = try backend.download(tensor)
    }
}

public struct WanTransformerInputs {
    /// Noisy latents [B, in_dim, F, H, W] (I2V: noise ‖ mask ‖ image latents, 36 channels).
    public var latents: Tensor
    /// Diffusion time per sample [B], in [0, 1000].
    public var timestep: Tensor
    /// Encoded prompt [B, Lt, text_dim] (Wan pads to 512 tokens with zeros).
    public var text: Tensor
    /// CLIP image features [B, 257, image_dim] for I2V (FLF2V: [2B, 257, …] first/last), else nil.
    public var image: Tensor?

    public init(latents: Tensor, timestep: Tensor, text: Tensor, image: Tensor? = nil) {
        self.latents = latents
        self.timestep = timestep
        self.text = text
        self.image = image
    }
}

public final class WanTransformer {
    public let config: WanConfig
    public let precision: Precision
    public let backend: any Backend
    let patchEmbedding: Conv3d
    let time: WanTimeEmbedding
    let text: WanTextEmbedding
    let image: WanImageEmbedding?
    let blocks: [WanBlock]
    let headModulation: Tensor  // [1, 2, D] f32
    let head: Linear  // [out·1·2·2, D]
    /// The FFN's hidden activation [B, L, F] is produced in slabs of tokens of at most this many bytes
    /// (it is the forward's largest tensor); the result does not depend on it.
    public var ffnSlabBytes = 256 << 20

    /// Builds from canonical (original Wan) keys.
    public init(_ w: WeightScope, config c: WanConfig, precision: Precision) throws {
        try c.validate()
        let dtype = precision.computeDType
        config = c
        self.precision = precision
        backend = w.backend
        patchEmbedding = try Conv3d(
            w["patch_embedding"], inChannels: c.inDim, outChannels: c.dim, kernel: c.patchSize, stride: c.patchSize,
            dtype: .f32)
        time = try WanTimeEmbedding(w, config: c, dtype: dtype)
        text = try WanTextEmbedding(w, config: c, dtype: dtype)
        image = try c.imageDim.map { try WanImageEmbedding(w, config: c, imageDim: $0, dtype: dtype) }
        blocks = try (0..<c.numLayers).map { try WanBlock(w["blocks.\($0)"], config: c, dtype: dtype) }
        headModulation = try w.tensor("head.modulation", shape: [1, 2, c.dim], dtype: .f32)
        let patchVolume = c.patchSize.reduce(1, *)
        head = try Linear(w["head.head"], inFeatures: c.dim, outFeatures: c.outDim * patchVolume, dtype: dtype)
    }

    /// Loads a Wan DiT from any tensor source in the diffusers or original layout (wrapper prefixes such as
    /// `model.diffusion_model.` are stripped). The configuration is, in order of preference: `config`, the
    /// `configJSON` file (either layout, completed from the weights), or detected from the weights.
    public static func load(
        from source: any TensorSource, config: WanConfig? = nil, configJSON: (data: Data, origin: String)? = nil,
        backend: any Backend, precision: Precision
    ) throws -> WanTransformer {
        let store = try WeightStore(
            source: source, backend: backend, component: "Wan transformer", layouts: WanKeyLayouts.all,
            wrapperPrefixes: WanKeyLayouts.wrapperPrefixes)
        let resolved = try config ?? resolveConfig(store: store, configJSON: configJSON, origin: source.origin)
        return try store.build { try WanTransformer($0, config: resolved, precision: precision) }
    }

    /// The configuration a checkpoint describes (config.json completed by the weights' shapes, or detected
    /// from the weights alone), reading tensor headers only: what `load` would build, without building it.
    public static func config(of source: any TensorSource, configJSON: (data: Data, origin: String)? = nil, backend: any Backend) throws -> WanConfig {
        let store = try WeightStore(
            source: source, backend: backend, component: "Wan transformer", layouts: WanKeyLayouts.all,
            wrapperPrefixes: WanKeyLayouts.wrapperPrefixes)
        return try resolveConfig(store: store, configJSON: configJSON, origin: source.origin)
    }

    static func resolveConfig(store: WeightStore, configJSON: (data: Data, origin: String)?, origin: String) throws -> WanConfig {
        if let configJSON {
            let detected = try? WanConfig.detect(info: store.info, keys: store.keys)
            return try WanConfig.parse(json: configJSON.data, origin: configJSON.origin, detected: detected)
        }
        return try WanConfig.detect(info: store.info, keys: store.keys, origin: origin)
    }

    /// The RoPE tables of the last latent grid, on the backend. Building them costs millions of host
    /// cos/sin calls at video sizes and uploading them waits for the stream, so every step of a denoising
    /// loop (same grid) reuses them.
    private var ropeCache: (grid: [Int], rope: WanRoPE)?
    private let ropeLock = NSLock()

    private func rope(frames: Int, height: Int, width: Int) throws -> WanRoPE {
        let grid = [frames, height, width]
        if let cached = ropeLock.withLock({ ropeCache }), cached.grid == grid { return cached.rope }
        let tables = try WanRoPE(headDim: config.headDim, frames: frames, height: height, width: width)
        let onDevice = WanRoPE(cos: try backend.upload(tables.cos), sin: try backend.upload(tables.sin))
        ropeLock.withLock { ropeCache = (grid, onDevice) }
        return onDevice
    }

    /// One denoiser evaluation: predicted flow (velocity) [B, out_dim, F, H, W], f32.
    public func forward(_ inputs: WanTransformerInputs, taps: WanTapRecorder? = nil) throws -> Tensor {
        let b = backend
        let c = config
        let dtype = precision.computeDType
        let latents = inputs.latents
        guard latents.rank == 5, latents.shape[1] == c.inDim else {
            throw KinemaError.shapeMismatch(context: "Wan transformer latents", expected: "[B, \(c.inDim), F, H, W]", found: "\(latents.shape)")
        }
        let (batch, frames, height, width) = (latents.shape[0], latents.shape[2], latents.shape[3], latents.shape[4])
        let (pt, ph, pw) = (c.patchSize[0], c.patchSize[1], c.patchSize[2])
        guard frames % pt == 0, height % ph == 0, width % pw == 0, height > 0, width > 0, frames > 0 else {
            throw KinemaError.invalidArgument("Wan transformer: latent size \(frames)×\(height)×\(width) is not a multiple of the patch \(c.patchSize)")
        }
        guard inputs.timestep.shape == [batch] else {
            throw KinemaError.shapeMismatch(context: "timestep", expected: "[\(batch)]", found: "\(inputs.timestep.shape)")
        }
        guard inputs.text.rank == 3, inputs.text.shape[0] == batch, inputs.text.shape[2] == c.textDim else {
            throw KinemaError.shapeMismatch(context: "text context", expected: "[\(batch), L, \(c.textDim)]", found: "\(inputs.text.shape)")
        }
        let (gridF, gridH, gridW) = (frames / pt, height / ph, width / pw)
        let tokens = gridF * gridH * gridW

        // Patch embedding → [B, L, D] f32 (the residual stream).
        // patches [B, D, F', H', W'] → tokens [B, L, D]; one expression, so the f32 patch grid (as large as x)
        // is released here rather than living through every block.
        var x = try b.contiguous(
            try b.reshape(try patchEmbedding(try b.cast(try b.upload(latents), to: .f32)), [batch, c.dim, tokens]).permuted([0, 2, 1]))
        try taps?.record(.patchEmbed, x, backend: b)

        let (embedding, projection) = try time(try b.upload(inputs.timestep), backend: b)  // [B, D], [B, 6D]
        try taps?.record(.timeEmbedding, embedding, backend: b)
        try taps?.record(.timeProjection, projection, backend: b)
        let e0 = try b.reshape(projection, [batch, 6, c.dim])

        let textContext = try text(try b.cast(try b.upload(inputs.text), to: dtype), backend: b)
        try taps?.record(.textEmbedding, textContext, backend: b)
        var imageContext: Tensor?
        if let image {
            guard let features = inputs.image, features.rank == 3, features.shape[2] == c.imageDim else {
                throw KinemaError.invalidArgument(
                    "this Wan model conditions on an image: pass CLIP features [B, 257, \(c.imageDim ?? 0)]")
            }
            imageContext = try b.cast(try image(try b.upload(features), backend: b, dtype: dtype), to: dtype)
            if let imageContext { try taps?.record(.imageEmbedding, imageContext, backend: b) }
        }

        let ropeOnDevice = try rope(frames: gridF, height: gridH, width: gridW)
        for (index, block) in blocks.enumerated() {
            x = try block(consume x, e0: e0, text: textContext, image: imageContext, rope: ropeOnDevice, ffnSlabBytes: ffnSlabBytes)
            if index == 0 { try taps?.record(.firstBlock, x, backend: b) }
            if index == blocks.count - 1 { try taps?.record(.lastBlock, x, backend: b) }
        }

        // Head: modulation with e (not e0), then the patch projection.
        let parts = try b.add(headModulation, try embedding.unsqueezed(1)).chunked(2, axis: 1)  // 2 × [B, 1, D]
        let modulated = try b.modulatedLayerNorm(x, weight: nil, bias: nil, shift: parts[0], scale: parts[1], eps: c.eps, outDType: dtype)
        let projected = try head(modulated)  // [B, L, out·pt·ph·pw]
        try taps?.record(.head, projected, backend: b)

        // Unpatchify: [B, F', H', W', pt, ph, pw, C] → [B, C, F', pt, H', ph, W', pw] → [B, C, F, H, W]
        let grid = try b.reshape(try b.cast(projected, to: .f32), [batch, gridF, gridH, gridW, pt, ph, pw, c.outDim])
        let ordered = try grid.permuted([0, 7, 1, 4, 2, 5, 3, 6])
        return try b.reshape(try b.contiguous(ordered), [batch, c.outDim, frames, height, width])
    }
}

extension WanRoPE {
    init(cos: Tensor, sin: Tensor) {
        self.cos = cos
        self.sin = sin
    }
}
