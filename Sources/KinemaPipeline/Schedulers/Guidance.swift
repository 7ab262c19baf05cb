import Foundation
import KinemaCore
import KinemaCPU

/// Classifier-free guidance as diffusers `WanPipeline` and LightX2V apply it to the two velocity
/// predictions: `uncond + scale·(cond − uncond)`, in float32 with that operation order
/// (difference, then scale, then add). Distilled models (step-distill) run without it.
public struct ClassifierFreeGuidance: Sendable, Equatable {
    /// Guidance scale; 1 returns `cond` up to rounding. Wan2.1 T2V uses 5–6, I2V 5.
    public var scale: Float

    public init(scale: Float) throws {
        guard scale.isFinite else {
            throw KinemaError.invalidArgument("guidance scale must be finite, got \(scale)")
        }
        self.scale = scale
    }

    /// Whether a negative (unconditional) forward is needed at all. diffusers' WanPipeline skips it
    /// when the scale is ≤ 1 (`do_classifier_free_guidance = guidance_scale > 1.0`).
    public var needsUnconditional: Bool { scale > 1 }

    /// Combines the conditional and unconditional predictions (same shape, host tensors of any float
    /// dtype) into a new float32 host tensor.
    public func combine(cond: Tensor, uncond: Tensor) throws -> Tensor {
        guard cond.shape == uncond.shape else {
            throw KinemaError.shapeMismatch(
                context: "classifier-free guidance: cond vs uncond", expected: "\(cond.shape)", found: "\(uncond.shape)")
        }
        for (role, tensor) in [("cond", cond), ("uncond", uncond)] {
            guard tensor.device == .cpu else {
                throw KinemaError.deviceMismatch(context: "classifier-free guidance \(role)", expected: .cpu, found: tensor.device)
            }
            guard tensor.dtype.isFloatingPoint else {
                throw KinemaError.dtypeMismatch(
                    context: "classifier-free guidance \(role)", expected: "a floating-point dtype", found: tensor.dtype)
            }
        }
        let c = try cond.floats()
        let u = try uncond.floats()
        var out = [Float](repeating: 0, count: c.count)
        for k in 0..<c.count { out[k] = u[k] + scale * (c[k] - u[k]) }
        return try Tensor(out, shape: cond.shape, dtype: .f32)
    }
}

extension ClassifierFreeGuidance {
    /// The same combination on any backend's device: both predictions are cast to float32 first, then
    /// (cond − uncond)·scale + uncond with the backend's elementwise ops. (diffusers' WanPipeline combines
    /// in the transformer's dtype, bf16 by default; float32 keeps the guided velocity, which the sampler
    /// state consumes in float32, free of an extra bf16 rounding.)
    public func combine(cond: Tensor, uncond: Tensor, backend: any Backend) throws -> Tensor {
        guard cond.shape == uncond.shape else {
            throw KinemaError.shapeMismatch(
                context: "classifier-free guidance: cond vs uncond", expected: "\(cond.shape)", found: "\(uncond.shape)")
        }
        let c = try backend.cast(cond, to: .f32)
        let u = try backend.cast(uncond, to: .f32)
        // scale·(c − u) rounded once (LatentArithmetic.scaled: shift −0 keeps a −0 product, as the host loop does).
        let scaled = try LatentArithmetic(backend: backend).scaled(try backend.sub(c, u), by: scale)
        return try backend.add(u, scaled)
    }
}

/// Runs a sampler to the end. The caller supplies the (guided) velocity for a latent at a timestep;
/// this owns the step order and the progress reporting, so pipelines only map their inputs.
public enum Denoising {
    /// - Parameters:
    ///   - sampler: a fresh sampler (`stepIndex == 0`); it is advanced to the end.
    ///   - latents: the initial noise, float32, on `backend`'s device.
    ///   - backend: runs the sampler arithmetic (host tensors and the CPU backend by default); the velocity
    ///     closure must return tensors on its device.
    ///   - progress: called after each step with (steps done, total).
    ///   - velocity: the model output for (latents, model timestep).
    public static func run<Sampler: FlowSampler>(
        _ sampler: inout Sampler, latents: Tensor, backend: any Backend = CPUBackend.shared,
        progress: ((Int, Int) -> Void)? = nil, velocity: (Tensor, Float) throws -> Tensor
    ) throws -> Tensor {
        guard sampler.stepIndex == 0 else {
            throw KinemaError.invalidArgument("Denoising.run needs a fresh sampler, this one is at step \(sampler.stepIndex)")
        }
        var x = latents
        let total = sampler.timesteps.count
        while let t = sampler.currentTimestep {
            x = try sampler.step(modelOutput: try velocity(x, t), sample: x, backend: backend)
            progress?(sampler.stepIndex, total)
        }
        return x
    }
}

/// Prompt defaults shared by the Wan pipelines.
public enum WanPrompts {
    /// Wan's default negative prompt: `sample_neg_prompt` in the official Wan2.1 repository's
    /// `wan/configs/shared_config.py` (also what LightX2V and the Wan examples pass). It lists, in
    /// Chinese, artefacts to steer away from: oversaturated colours, overexposure, static frames, blur,
    /// subtitles, low quality, JPEG artefacts, malformed hands/faces/limbs, cluttered backgrounds, people
    /// walking backwards, etc.
    public static let defaultNegativePrompt =
        "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
}
