import KinemaCore
import KinemaNN

// The Wan2.1 VAE encoder and decoder stacks (matches diffusers WanEncoder3d / WanDecoder3d with
// is_residual = False, and Wan's Encoder3d / Decoder3d). Both run one chunk of frames at a time against a
// `WanVAEFeatureCache`; the chunking itself lives in WanVAE.swift.
//
//   encoder  conv1 3→base · downsamples (per stage: R residual blocks, then downsample2d/3d except in
//            the last stage) · middle [res, attn, res] · head [RMS, SiLU, conv → 2z]
//   decoder  conv1 z→4·base · middle · upsamples (per stage: R+1 residual blocks, then upsample3d/2d
//            except in the last stage; stages after the first take half the previous width, as the
//            upsample convs halve it) · head [RMS, SiLU, conv → 3]

/// Records stage outputs chunk by chunk (fixture names: `enc.conv_in`, `enc.down_blocks`, `enc.mid_block`,
/// `enc.out`, `enc.moments`, `dec.conv_in`, `dec.mid_block`, `dec.up_blocks.<i>`, `dec.out`).
public final class WanVAETapRecorder {
    public private(set) var chunks: [String: [Tensor]] = [:]
    public init() {}

    /// `tensor` is a channels-last activation [B, T, H, W, C]; kept as [B, C, T, H, W], the fixtures' layout.
    func record(_ name: String, _ tensor: Tensor, backend: any Backend) throws {
        chunks[name, default: []].append(try backend.download(try channelsFirst(tensor, backend: backend)))
    }

    /// A tap's chunks joined along time (axis 2), as the fixtures store them.
    public func tensor(_ name: String, backend: any Backend) throws -> Tensor? {
        guard let parts = chunks[name] else { return nil }
        return try backend.download(try backend.concat(parts, axis: 2))
    }
}

/// [B, T, H, W, C] → [B, C, T, H, W] contiguous (the layout of the VAE's inputs, outputs and fixtures).
func channelsFirst(_ x: Tensor, backend: any Backend) throws -> Tensor {
    try backend.contiguous(try x.permuted([0, 4, 1, 2, 3]))
}

/// [B, C, T, H, W] → [B, T, H, W, C] contiguous (the VAE's working layout).
func channelsLast(_ x: Tensor, backend: any Backend) throws -> Tensor {
    try backend.contiguous(try x.permuted([0, 2, 3, 4, 1]))
}

/// [res, attn, res] (WanMidBlock / `middle.{0,1,2}`): two residual blocks, four cache slots.
struct WanVAEMiddle {
    let first: WanVAEResidualBlock
    let attention: WanVAEAttentionBlock
    let second: WanVAEResidualBlock

    init(_ w: WeightScope, dim: Int, dtype: DType) throws {
        first = try WanVAEResidualBlock(w["0"], inDim: dim, outDim: dim, dtype: dtype)
        attention = try WanVAEAttentionBlock(w["1"], dim: dim, dtype: dtype)
        second = try WanVAEResidualBlock(w["2"], inDim: dim, outDim: dim, dtype: dtype)
    }

    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache) throws -> Tensor {
        try second(try attention(try first(x, cache: cache)), cache: cache)
    }
}

/// One entry of the flat `downsamples` / `upsamples` lists.
enum WanVAELayer {
    case residual(WanVAEResidualBlock)
    case resample(WanVAEResample)

    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache) throws -> Tensor {
        switch self {
        case .residual(let block): return try block(x, cache: cache)
        case .resample(let resample): return try resample(x, cache: cache)
        }
    }
}

/// RMS · SiLU · causal conv 3³ (`head.0`, `head.2`).
struct WanVAEHead {
    let norm: WanChannelRMSNorm
    let conv: WanCausalConv

    init(_ w: WeightScope, inDim: Int, outDim: Int, dtype: DType) throws {
        norm = try WanChannelRMSNorm(w["0"], channels: inDim, shape: .video)
        conv = try WanCausalConv(w["2"], inChannels: inDim, outChannels: outDim, kernel: [3, 3, 3], padding: [1, 1, 1], dtype: dtype)
    }

    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache) throws -> Tensor {
        try conv(normalizing: x, with: norm, cache: cache)
    }
}

struct WanVAEEncoder {
    let stem: WanCausalConv
    let layers: [WanVAELayer]
    let middle: WanVAEMiddle
    let head: WanVAEHead
    let backend: any Backend

    init(_ w: WeightScope, config c: WanVAEConfig, dtype: DType) throws {
        let dims = c.encoderDims
        stem = try WanCausalConv(w["conv1"], inChannels: c.inChannels, outChannels: dims[0], kernel: [3, 3, 3], padding: [1, 1, 1], dtype: dtype)
        var layers: [WanVAELayer] = []
        for stage in 0..<c.stageCount {
            var inDim = dims[stage]
            let outDim = dims[stage + 1]
            for _ in 0..<c.numResBlocks {
                layers.append(.residual(try WanVAEResidualBlock(w["downsamples.\(layers.count)"], inDim: inDim, outDim: outDim, dtype: dtype)))
                inDim = outDim
            }
            if stage != c.stageCount - 1 {
                let mode: WanResampleMode = c.temporalDownsample[stage] ? .downsample3d : .downsample2d
                layers.append(.resample(try WanVAEResample(w["downsamples.\(layers.count)"], dim: outDim, mode: mode, dtype: dtype)))
            }
        }
        self.layers = layers
        let width = dims[c.stageCount]
        middle = try WanVAEMiddle(w["middle"], dim: width, dtype: dtype)
        head = try WanVAEHead(w["head"], inDim: width, outDim: 2 * c.zDim, dtype: dtype)
        backend = w.backend
    }

    /// One chunk of video [B, T, H, W, 3] (T = 1 first, then 4) → [B, T_lat, H/8, W/8, 2z].
    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache, taps: WanVAETapRecorder?) throws -> Tensor {
        var h = try stem(x, cache: cache)
        try taps?.record("enc.conv_in", h, backend: backend)
        for layer in layers { h = try layer(h, cache: cache) }
        try taps?.record("enc.down_blocks", h, backend: backend)
        h = try middle(h, cache: cache)
        try taps?.record("enc.mid_block", h, backend: backend)
        h = try head(h, cache: cache)
        try taps?.record("enc.out", h, backend: backend)
        return h
    }
}

struct WanVAEDecoder {
    let stem: WanCausalConv
    let middle: WanVAEMiddle
    /// Per stage, its slice of the flat `upsamples` list (the tap points are stage ends).
    let stages: [[WanVAELayer]]
    let head: WanVAEHead
    let backend: any Backend

    init(_ w: WeightScope, config c: WanVAEConfig, dtype: DType) throws {
        let dims = c.decoderDims
        stem = try WanCausalConv(w["conv1"], inChannels: c.zDim, outChannels: dims[0], kernel: [3, 3, 3], padding: [1, 1, 1], dtype: dtype)
        middle = try WanVAEMiddle(w["middle"], dim: dims[0], dtype: dtype)
        var stages: [[WanVAELayer]] = []
        var index = 0
        for stage in 0..<c.stageCount {
            var inDim = stage > 0 ? dims[stage] / 2 : dims[stage]
            let outDim = dims[stage + 1]
            var layers: [WanVAELayer] = []
            for _ in 0...c.numResBlocks {
                layers.append(.residual(try WanVAEResidualBlock(w["upsamples.\(index)"], inDim: inDim, outDim: outDim, dtype: dtype)))
                index += 1
                inDim = outDim
            }
            if stage != c.stageCount - 1 {
                let mode: WanResampleMode = c.temporalUpsample[stage] ? .upsample3d : .upsample2d
                layers.append(.resample(try WanVAEResample(w["upsamples.\(index)"], dim: outDim, mode: mode, dtype: dtype)))
                index += 1
            }
            stages.append(layers)
        }
        self.stages = stages
        head = try WanVAEHead(w["head"], inDim: dims[c.stageCount], outDim: c.outChannels, dtype: dtype)
        backend = w.backend
    }

    /// One latent frame [B, 1, h, w, z] (after conv2) → [B, 1 or 4, 8h, 8w, 3], unclamped.
    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache, taps: WanVAETapRecorder?) throws -> Tensor {
        var h = try stem(x, cache: cache)
        try taps?.record("dec.conv_in", h, backend: backend)
        h = try middle(h, cache: cache)
        try taps?.record("dec.mid_block", h, backend: backend)
        for (index, layers) in stages.enumerated() {
            for layer in layers { h = try layer(h, cache: cache) }
            try taps?.record("dec.up_blocks.\(index)", h, backend: backend)
        }
        h = try head(h, cache: cache)
        try taps?.record("dec.out", h, backend: backend)
        return h
    }
}
