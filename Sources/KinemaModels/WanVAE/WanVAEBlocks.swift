import KinemaCore
import KinemaNN

// Building blocks of the Wan2.1 VAE (matches diffusers autoencoder_kl_wan.py: WanCausalConv3d, WanRMS_norm,
// WanResidualBlock, WanAttentionBlock; Wan's vae.py: CausalConv3d, RMS_norm, ResidualBlock, AttentionBlock).
// Activations are channels-last, [B, T, H, W, C], inside the VAE (upstream is [B, C, T, H, W]; WanVAE.swift
// converts at the edges): cuDNN's tensor-core convolutions are native to that layout (1.3–1.9× faster than
// NCDHW on the H100, no workspace), the channel norm is a plain row norm, and a range of frames is one
// contiguous block. Time is processed in chunks; every causal 3-tap convolution keeps the last CACHE_T = 2
// frames of its input between chunks in a `WanVAEFeatureCache` slot, so a chunk sees exactly the frames a
// whole-video causal convolution would (left zero padding at the very start).

/// Per-call state of chunked encoding or decoding: one slot per cached convolution, visited in the same
/// order in every chunk (diffusers' `feat_cache` list with its running `feat_idx`).
final class WanVAEFeatureCache {
    enum Slot {
        /// Not visited yet (the first chunk).
        case empty
        /// upsample3d's marker after the first chunk ("Rep" upstream): that chunk skipped `time_conv`, and the
        /// next one starts its history from zeros, not from the first chunk's frames.
        case skippedFirstChunk
        /// The last frames of this layer's input (≤ CACHE_T), in their own storage (see `detached`).
        case frames(Tensor)
    }

    static let cacheFrames = 2
    private var slots: [Slot] = []
    private var cursor = 0

    /// Starts a chunk: slots are visited again from the first.
    func beginChunk() { cursor = 0 }

    /// The next slot index in visiting order (a new slot on the first chunk).
    func nextSlot() -> Int {
        if cursor == slots.count { slots.append(.empty) }
        cursor += 1
        return cursor - 1
    }

    subscript(_ index: Int) -> Slot {
        get { slots[index] }
        set { slots[index] = newValue }
    }
}

/// A tensor that owns its storage: a cached view of a few frames must not pin the whole chunk's
/// activation buffer until the next chunk (that would hold one extra chunk of every layer alive).
/// `contiguous` alone returns contiguous views as they are, so a tail slice is copied explicitly.
func detached(_ x: Tensor, backend: any Backend) throws -> Tensor {
    if x.isContiguous, x.offset == 0, x.byteCount == x.storage.byteCount { return x }
    return try backend.concat([x], axis: 0)
}

/// The time axis of the VAE's channels-last activations [B, T, H, W, C].
let vaeTimeAxis = 1

/// The last `count` frames (axis 1 of [B, T, H, W, C]) of x, or all of them when it has fewer.
func lastFrames(_ x: Tensor, _ count: Int) throws -> Tensor {
    let frames = x.shape[vaeTimeAxis]
    return try x.narrowed(axis: vaeTimeAxis, start: max(0, frames - count), length: min(count, frames))
}

/// Causal 3-D convolution: zero padding symmetric in H and W, left-only (2·p_t frames) in time, where
/// cached frames of the previous chunk stand in for the zeros (matches WanCausalConv3d / CausalConv3d).
/// Also serves the per-frame 2-D convolutions (`resample.1`, kernel [1, 3, 3], weight stored 4-D).
struct WanCausalConv {
    let weight: Tensor  // [Cout, kT, kH, kW, Cin] (channels-last filter), compute dtype
    let bias: Tensor  // [Cout] f32
    let stride: [Int]
    let spatialPadding: Int
    /// Frames of history the kernel needs in front of each chunk (kT − 1 for the 3-tap convs, 0 otherwise).
    let temporalPadding: Int
    let backend: any Backend

    /// A Conv3d `weight` [Cout, Cin] + kernel with temporal padding 2·padding[0] on the left.
    init(
        _ w: WeightScope, inChannels: Int, outChannels: Int, kernel: [Int], stride: [Int] = [1, 1, 1],
        padding: [Int], dtype: DType
    ) throws {
        let stored = try w.tensor("weight", shape: [outChannels, inChannels] + kernel, dtype: dtype)
        weight = try Self.channelsLastFilter(stored, backend: w.backend)
        bias = try w.tensor("bias", shape: [outChannels], dtype: .f32)
        self.stride = stride
        spatialPadding = padding[1]
        temporalPadding = 2 * padding[0]
        backend = w.backend
    }

    /// [Cout, Cin, kT, kH, kW] as stored → [Cout, kT, kH, kW, Cin] contiguous (once, at load).
    static func channelsLastFilter(_ stored: Tensor, backend: any Backend) throws -> Tensor {
        try backend.contiguous(try stored.permuted([0, 2, 3, 4, 1]))
    }

    /// A Conv2d 3×3 (weight [Cout, Cin, 3, 3]) applied to every frame, as a kT = 1 Conv3d.
    init(frameConv w: WeightScope, inChannels: Int, outChannels: Int, stride: Int, padding: Int, dtype: DType) throws {
        let planar = try w.tensor("weight", shape: [outChannels, inChannels, 3, 3], dtype: dtype)
        weight = try Self.channelsLastFilter(try planar.unsqueezed(2), backend: w.backend)
        bias = try w.tensor("bias", shape: [outChannels], dtype: .f32)
        self.stride = [1, stride, stride]
        spatialPadding = padding
        temporalPadding = 0
        backend = w.backend
    }

    /// x [B, T, H, W, Cin]; `history` holds up to `temporalPadding` frames preceding x (nil: none), the
    /// rest of the left padding is zeros; `residual` [B, T', H', W', Cout] is added to the output (fused
    /// into the convolution where the backend can). → [B, T', H', W', Cout].
    func callAsFunction(_ x: Tensor, history: Tensor? = nil, residual: Tensor? = nil) throws -> Tensor {
        var input = x
        if temporalPadding > 0 {
            var parts: [Tensor] = []
            let kept = try history.map { try lastFrames($0, temporalPadding) }
            let zeros = temporalPadding - (kept?.shape[vaeTimeAxis] ?? 0)
            if zeros > 0 {
                var shape = x.shape
                shape[vaeTimeAxis] = zeros
                parts.append(try backend.zeros(shape, dtype: x.dtype))
            }
            if let kept { parts.append(kept) }
            parts.append(x)
            input = try backend.concat(parts, axis: vaeTimeAxis)
        }
        return try backend.conv3dChannelsLast(
            input, weight: weight, bias: bias, residual: residual, stride: stride, padding: [0, spatialPadding, spatialPadding])
    }

    /// The cached form used by every 3-tap conv in chunked mode: the slot's frames are the history, and the
    /// slot is refilled with the last CACHE_T frames of x — padded with the previous chunk's last frame
    /// when x has a single frame, so the slot always spans the two most recent frames once it can.
    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache, residual: Tensor? = nil) throws -> Tensor {
        let slot = cache.nextSlot()
        var previous: Tensor?
        if case .frames(let frames) = cache[slot] { previous = frames }
        var keep = try lastFrames(x, WanVAEFeatureCache.cacheFrames)
        if keep.shape[vaeTimeAxis] < WanVAEFeatureCache.cacheFrames, let previous {
            keep = try backend.concat([try lastFrames(previous, 1), keep], axis: vaeTimeAxis)
        }
        let y = try self(x, history: previous, residual: residual)
        cache[slot] = .frames(try detached(keep, backend: backend))
        return y
    }
}

extension WanCausalConv {
    /// conv(SiLU(norm(x))) in chunked mode, for the 3-tap convolutions that follow a norm (residual blocks,
    /// heads): the normalized frames are written straight after the cached ones in one buffer
    /// (`rmsNorm(silu:after:)`), so the concatenation the plain cached call makes is not needed. Same slot
    /// rules: the slot keeps the last 2 frames of the convolution's input — with a single-frame chunk, the
    /// previous chunk's last frame and this one (a zero frame in front on the first chunk, which is what the
    /// padding of the next chunk would supply anyway).
    func callAsFunction(
        normalizing x: Tensor, with norm: WanChannelRMSNorm, cache: WanVAEFeatureCache, residual: Tensor? = nil
    ) throws -> Tensor {
        guard temporalPadding == WanVAEFeatureCache.cacheFrames else {
            return try self(try norm.normalizedSiLU(x), cache: cache, residual: residual)
        }
        let slot = cache.nextSlot()
        var parts: [Tensor] = []
        var kept = 0
        if case .frames(let previous) = cache[slot] {
            let frames = try lastFrames(previous, temporalPadding)
            kept = frames.shape[vaeTimeAxis]
            parts.append(frames)
        }
        if kept < temporalPadding {
            var shape = x.shape
            shape[vaeTimeAxis] = temporalPadding - kept
            parts.insert(try backend.zeros(shape, dtype: x.dtype), at: 0)
        }
        let prefix = parts.count == 1 ? parts[0] : try backend.concat(parts, axis: vaeTimeAxis)  // ≤ 2 frames
        let input = try backend.rmsNorm(x, weight: norm.gamma, eps: norm.eps, silu: true, after: prefix)
        cache[slot] = .frames(try detached(try lastFrames(input, WanVAEFeatureCache.cacheFrames), backend: backend))
        return try backend.conv3dChannelsLast(
            input, weight: weight, bias: bias, residual: residual, stride: stride, padding: [0, spatialPadding, spatialPadding])
    }
}

/// Which parameter shape a norm's `gamma` has on disk: [C, 1, 1, 1] for video-shaped (residual / head)
/// norms, [C, 1, 1] for the per-frame attention norm. The values are the same either way.
enum WanGammaShape {
    case video, image
}

/// RMS norm over the channel axis: F.normalize(x, dim=1)·√C·γ (matches WanRMS_norm / RMS_norm; no bias in
/// Wan2.1). Computed as `rmsNorm` over the channels-last rows, since x/‖x‖·√C = x/√(mean x²).
/// Numerical note: F.normalize divides by max(‖x‖, 1e-12); we add eps = 1e-24 / C to mean(x²) instead,
/// which is the same floor (‖x‖² ≥ 1e-24) applied additively — identical wherever ‖x‖ ≫ 1e-12 and still
/// 0 (not NaN) for an all-zero pixel. Statistics in f32/f64 whatever the activation dtype (diffusers
/// normalizes bf16 inputs in f32 too).
struct WanChannelRMSNorm {
    let gamma: Tensor  // [C] f32
    let eps: Float
    let backend: any Backend

    init(_ w: WeightScope, channels: Int, shape: WanGammaShape) throws {
        let stored = try w.tensor("gamma", shape: shape == .video ? [channels, 1, 1, 1] : [channels, 1, 1], dtype: .f32)
        gamma = try w.backend.reshape(stored, [channels])
        eps = 1e-24 / Float(channels)
        backend = w.backend
    }

    /// x [..., C] → normalized, contiguous.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        try backend.rmsNorm(x, weight: gamma, eps: eps, silu: false)
    }

    /// x [..., C] → norm followed by SiLU, contiguous (the pair always appears together in the residual
    /// blocks and heads): one fused pass where the backend has it.
    func normalizedSiLU(_ x: Tensor) throws -> Tensor {
        try backend.rmsNorm(x, weight: gamma, eps: eps, silu: true)
    }
}

/// [RMS, SiLU, CausalConv 3³, RMS, SiLU, Dropout, CausalConv 3³] + shortcut (1×1×1 conv when the width
/// changes). Matches WanResidualBlock (diffusers) / ResidualBlock (`residual.{0,2,3,6}`, `shortcut`).
struct WanVAEResidualBlock {
    let norm1: WanChannelRMSNorm
    let conv1: WanCausalConv
    let norm2: WanChannelRMSNorm
    let conv2: WanCausalConv
    let shortcut: WanCausalConv?
    let backend: any Backend

    init(_ w: WeightScope, inDim: Int, outDim: Int, dtype: DType) throws {
        norm1 = try WanChannelRMSNorm(w["residual.0"], channels: inDim, shape: .video)
        conv1 = try WanCausalConv(w["residual.2"], inChannels: inDim, outChannels: outDim, kernel: [3, 3, 3], padding: [1, 1, 1], dtype: dtype)
        norm2 = try WanChannelRMSNorm(w["residual.3"], channels: outDim, shape: .video)
        conv2 = try WanCausalConv(w["residual.6"], inChannels: outDim, outChannels: outDim, kernel: [3, 3, 3], padding: [1, 1, 1], dtype: dtype)
        shortcut = inDim == outDim ? nil
            : try WanCausalConv(w["shortcut"], inChannels: inDim, outChannels: outDim, kernel: [1, 1, 1], padding: [0, 0, 0], dtype: dtype)
        backend = w.backend
    }

    /// x [B, T, H, W, inDim] → [B, T, H, W, outDim]; two cache slots (conv1, conv2). The shortcut add is
    /// part of conv2 (fused where the backend can).
    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache) throws -> Tensor {
        let identity = try shortcut.map { try $0(x) } ?? x
        let h = try conv1(normalizing: x, with: norm1, cache: cache)
        return try conv2(normalizing: h, with: norm2, cache: cache, residual: identity)
    }
}

/// Single-head self-attention over the H·W pixels of each frame separately (no cache: frames do not
/// interact). Matches WanAttentionBlock / AttentionBlock (`norm.gamma`, `to_qkv` and `proj` 1×1 Conv2d).
struct WanVAEAttentionBlock {
    let norm: WanChannelRMSNorm
    let toQKV: PointwiseConv  // [3C, C]
    let proj: PointwiseConv  // [C, C]
    let channels: Int
    let backend: any Backend

    init(_ w: WeightScope, dim: Int, dtype: DType) throws {
        norm = try WanChannelRMSNorm(w["norm"], channels: dim, shape: .image)
        toQKV = try PointwiseConv(w["to_qkv"], inDim: dim, outDim: 3 * dim, dtype: dtype)
        proj = try PointwiseConv(w["proj"], inDim: dim, outDim: dim, dtype: dtype)
        channels = dim
        backend = w.backend
    }

    /// A 1×1 Conv2d (weight [out, in, 1, 1]) applied as a linear map to channels-last pixels.
    struct PointwiseConv {
        let weight: Tensor  // [out, in]
        let bias: Tensor  // [out] f32
        let backend: any Backend

        init(_ w: WeightScope, inDim: Int, outDim: Int, dtype: DType) throws {
            let kernel = try w.tensor("weight", shape: [outDim, inDim, 1, 1], dtype: dtype)
            weight = try w.backend.reshape(kernel, [outDim, inDim])
            bias = try w.tensor("bias", shape: [outDim], dtype: .f32)
            backend = w.backend
        }

        /// x [..., in] → [..., out].
        func callAsFunction(_ x: Tensor) throws -> Tensor { try backend.linear(x, weight: weight, bias: bias) }
    }

    /// x [B, T, H, W, C] → same shape (x + attention).
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let b = backend
        let (batch, frames, height, width, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let pixels = height * width
        let normed = try b.reshape(try norm(x), [batch * frames, pixels, c])  // [BT, HW, C]
        let qkv = try toQKV(normed)  // [BT, HW, 3C], channel order q | k | v
        func part(_ index: Int) throws -> Tensor {
            try qkv.narrowed(axis: 2, start: index * c, length: c).unsqueezed(1)  // [BT, 1, HW, C]
        }
        let attended = try b.attention(
            query: try part(0), key: try part(1), value: try part(2), scale: 1 / Float(c).squareRoot())
        let projected = try proj(try b.reshape(attended, [batch * frames, pixels, c]))  // [BT, HW, C]
        return try b.add(try b.reshape(projected, [batch, frames, height, width, c]), x)
    }
}
