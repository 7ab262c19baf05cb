import Foundation
import KinemaCore

/// Matches diffusers `FlowMatchEulerDiscreteScheduler` (0.42.1) with a static `shift`, no dynamic
/// shifting, no Karras/exponential/beta sigmas, deterministic: x ← x + (σ_{i+1} − σ_i)·v.
///
/// The σ table reproduces a diffusers quirk faithfully: the constructor shifts its 1000-entry table, so
/// σ_min = shift(0.001) (float32); `set_timesteps` then spaces timesteps linearly between σ_max·1000 and
/// σ_min·1000 in float64 and shifts them *again*. Hence σ_last before the appended 0 is
/// shift(shift(0.001)), not shift(0.001). Timesteps are σ·1000 computed in float32 (not integers).
public struct FlowEulerSampler: FlowSampler {
    public let kind = SamplerKind.euler
    public let timesteps: [Float]
    public let sigmas: [Float]
    public private(set) var stepIndex = 0

    public init(steps: Int, shift: Double) throws {
        try SamplerSupport.checkSteps(steps, "Euler")
        try SamplerSupport.checkShift(shift, "Euler")
        let train = SamplerSupport.trainTimesteps
        // Constructor, in float32 torch: σ = t/1000 for t = 1…1000, shifted.
        let shift32 = Float(shift)
        let shiftMinusOne32 = Float(shift - 1)
        func shifted32(_ s: Float) -> Float { shift32 * s / (1 + shiftMinusOne32 * s) }
        let sigmaMax = Double(shifted32(Float(train) / Float(train)))
        let sigmaMin = Double(shifted32(Float(1) / Float(train)))
        // set_timesteps, in float64 numpy, then float32.
        let spaced = SamplerSupport.linspace(sigmaMax * Double(train), sigmaMin * Double(train), steps)
        let sigmas32 = spaced.map { Float(SamplerSupport.shifted($0 / Double(train), shift)) }
        timesteps = sigmas32.map { $0 * Float(train) }
        sigmas = sigmas32 + [0]
    }

    public mutating func step(modelOutput: Tensor, sample: Tensor, backend: any Backend) throws -> Tensor {
        let (v, x) = try SamplerSupport.operands(
            "Euler", stepIndex: stepIndex, stepCount: timesteps.count, modelOutput: modelOutput, sample: sample, backend: backend)
        let math = LatentArithmetic(backend: backend)
        let dt = sigmas[stepIndex + 1] - sigmas[stepIndex]
        let out = try math.sum(x, try math.scaled(v, by: dt)) // x + dt·v
        stepIndex += 1
        return out
    }
}
