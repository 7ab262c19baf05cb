import KinemaCore
import KinemaNN

// Spatial (and temporal) resampling between VAE stages (matches diffusers WanResample / Wan's Resample):
//   upsample2d    nearest-exact ×2 in H, W, then Conv2d 3×3 (dim → dim/2)             (`resample.1`)
//   upsample3d    upsample2d preceded by `time_conv`, a causal (3,1,1) conv dim → 2·dim whose two halves
//                 become two output frames per input frame — except in the first chunk, which keeps its
//                 single frame (so T_pixel = 1 + 4·(T_lat − 1))
//   downsample2d  ZeroPad2d(0,1,0,1) (right and bottom only), then Conv2d 3×3 stride 2
//   downsample3d  downsample2d followed by `time_conv`, a (3,1,1) conv with stride 2 in time and no
//                 padding, fed with the previous chunk's last frame in front (the first chunk passes
//                 through unchanged)

enum WanResampleMode: Sendable, Equatable {
    case upsample2d, upsample3d, downsample2d, downsample3d

    var isUpsample: Bool { self == .upsample2d || self == .upsample3d }
    var resamplesTime: Bool { self == .upsample3d || self == .downsample3d }
}

struct WanVAEResample {
    let mode: WanResampleMode
    let spatial: WanCausalConv  // kT = 1
    let time: WanCausalConv?
    /// The upsampling modes' nearest ×2 + `spatial` as four 2×2 convolutions in bf16 / f16 (nil: f32, whose
    /// results must stay within rounding of the reference's summation order; KINEMA_VAE_SUBPIXEL=0; downsampling).
    let subPixel: WanSubPixelUpsample?
    let backend: any Backend

    init(_ w: WeightScope, dim: Int, mode: WanResampleMode, dtype: DType) throws {
        self.mode = mode
        switch mode {
        case .upsample2d, .upsample3d:
            spatial = try WanCausalConv(frameConv: w["resample.1"], inChannels: dim, outChannels: dim / 2, stride: 1, padding: 1, dtype: dtype)
        case .downsample2d, .downsample3d:
            spatial = try WanCausalConv(frameConv: w["resample.1"], inChannels: dim, outChannels: dim, stride: 2, padding: 0, dtype: dtype)
        }
        switch mode {
        case .upsample3d:
            time = try WanCausalConv(w["time_conv"], inChannels: dim, outChannels: 2 * dim, kernel: [3, 1, 1], padding: [1, 0, 0], dtype: dtype)
        case .downsample3d:
            time = try WanCausalConv(
                w["time_conv"], inChannels: dim, outChannels: dim, kernel: [3, 1, 1], stride: [2, 1, 1], padding: [0, 0, 0], dtype: dtype)
        case .upsample2d, .downsample2d:
            time = nil
        }
        subPixel = mode.isUpsample && dtype != .f32 && RuntimeOptions.current.vaeSubPixel
            ? try WanSubPixelUpsample(weight: spatial.weight, bias: spatial.bias, backend: w.backend) : nil
        backend = w.backend
    }

    /// nearest ×2 in H and W, then the 3×3 conv.
    private func upsampled(_ x: Tensor) throws -> Tensor {
        if let subPixel { return try subPixel(x) }
        return try spatial(try nearestDouble(x))
    }

    /// x [B, T, H, W, C] → upsample: [B, T or 2T, 2H, 2W, C/2]; downsample: [B, T', H/2, W/2, C].
    /// The 3-D modes use one cache slot.
    func callAsFunction(_ x: Tensor, cache: WanVAEFeatureCache) throws -> Tensor {
        let b = backend
        switch mode {
        case .upsample2d:
            return try upsampled(x)
        case .upsample3d:
            return try upsampled(try doubleFrames(x, cache: cache))
        case .downsample2d:
            return try spatial(try padRightBottom(x))
        case .downsample3d:
            let y = try spatial(try padRightBottom(x))
            guard let time else { return y }
            let slot = cache.nextSlot()
            guard case .frames(let previous) = cache[slot] else {
                // First chunk: remembered whole, passed through without temporal downsampling.
                cache[slot] = .frames(try detached(y, backend: b))
                return y
            }
            let last = try detached(try lastFrames(y, 1), backend: b)
            let out = try time(try b.concat([try lastFrames(previous, 1), y], axis: vaeTimeAxis))
            cache[slot] = .frames(last)
            return out
        }
    }

    /// upsample3d's `time_conv`: [B, T, H, W, C] → [B, 2T, H, W, C], output frame 2t from channels [0, C)
    /// and 2t+1 from [C, 2C) of the conv at t. Not applied in the first chunk (see the cache's
    /// `.skippedFirstChunk`).
    private func doubleFrames(_ x: Tensor, cache: WanVAEFeatureCache) throws -> Tensor {
        guard let time else { return x }
        let b = backend
        let slot = cache.nextSlot()
        let history: Tensor?
        var keep = try lastFrames(x, WanVAEFeatureCache.cacheFrames)
        switch cache[slot] {
        case .empty:
            cache[slot] = .skippedFirstChunk
            return x
        case .skippedFirstChunk:
            // The history of the second chunk is zeros (the first chunk's frame is not used).
            history = nil
            if keep.shape[vaeTimeAxis] < WanVAEFeatureCache.cacheFrames {
                keep = try b.concat([try b.zeros(try lastFrames(keep, 1).shape, dtype: keep.dtype), keep], axis: vaeTimeAxis)
            }
        case .frames(let previous):
            history = previous
            if keep.shape[vaeTimeAxis] < WanVAEFeatureCache.cacheFrames {
                keep = try b.concat([try lastFrames(previous, 1), keep], axis: vaeTimeAxis)
            }
        }
        let doubled = try time(x, history: history)  // [B, T, H, W, 2C]
        cache[slot] = .frames(try detached(keep, backend: b))
        let (batch, frames, height, width, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        // [B, T, H, W, 2, C] → [B, T, 2, H, W, C] → [B, 2T, H, W, C]
        let split = try b.reshape(doubled, [batch, frames, height, width, 2, c]).permuted([0, 1, 4, 2, 3, 5])
        return try b.reshape(try b.contiguous(split), [batch, 2 * frames, height, width, c])
    }

    /// Nearest ×2 in H and W. For an integer factor 2, nearest-exact picks source ⌊(i + ½)/2⌋ = ⌊i/2⌋,
    /// i.e. plain pixel repetition.
    private func nearestDouble(_ x: Tensor) throws -> Tensor {
        let (batch, frames, height, width, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        // [B, T, H, 1, W, 1, C] broadcast to [B, T, H, 2, W, 2, C]: each pixel's C channels copied 4 times.
        let repeated = try x.unsqueezed(3).unsqueezed(5).expanded(to: [batch, frames, height, 2, width, 2, c])
        return try backend.reshape(try backend.contiguous(repeated), [batch, frames, 2 * height, 2 * width, c])
    }

    /// ZeroPad2d((0, 1, 0, 1)): one zero column on the right, one zero row at the bottom.
    private func padRightBottom(_ x: Tensor) throws -> Tensor {
        let b = backend
        var shape = x.shape  // [B, T, H, W, C]
        shape[3] = 1
        let wide = try b.concat([x, try b.zeros(shape, dtype: x.dtype)], axis: 3)
        shape = wide.shape
        shape[2] = 1
        return try b.concat([wide, try b.zeros(shape, dtype: x.dtype)], axis: 2)
    }
}
