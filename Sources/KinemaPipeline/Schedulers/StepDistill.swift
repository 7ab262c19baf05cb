import Foundation
import KinemaCore

/// Matches LightX2V `WanStepDistillScheduler` (`lightx2v/models/schedulers/wan/step_distill/scheduler.py`,
/// as summarised in shared/reference/lightx2v.md §4.8): the sampler of the 4-step CFG-distilled Wan models.
///
/// σ grid: linspace(1, 0, 1001)[:-1] (1000 entries, float32), shifted σ' = s·σ/(1 + (s − 1)·σ). Step n
/// uses grid index 1000 − t_n for t_n in `denoising_step_list`; the model timestep is σ'·1000 as a float
/// (not truncated). Update: x0 = x − σ_n·v, then x ← x0 + σ_{n+1}·v, and the last step returns x0 — a
/// deterministic Euler flow step with no re-noising. No classifier-free guidance is applied by callers.
public struct StepDistillSampler: FlowSampler {
    public let kind = SamplerKind.stepDistill
    public let timesteps: [Float]
    public let sigmas: [Float]
    public let denoisingSteps: [Int]
    public private(set) var stepIndex = 0

    /// LightX2V's default `denoising_step_list`.
    public static let defaultStepList = [1000, 750, 500, 250]

    public init(denoisingSteps: [Int] = StepDistillSampler.defaultStepList, shift: Double) throws {
        try SamplerSupport.checkShift(shift, "step-distill")
        let train = SamplerSupport.trainTimesteps
        guard !denoisingSteps.isEmpty else {
            throw KinemaError.invalidArgument("step-distill: denoising_step_list is empty")
        }
        for (position, t) in denoisingSteps.enumerated() {
            // Index 1000 − t must address the 1000-entry grid.
            guard t >= 1, t <= train else {
                throw KinemaError.invalidArgument(
                    "step-distill: denoising_step_list[\(position)] = \(t) is outside 1...\(train)")
            }
            if position > 0, t >= denoisingSteps[position - 1] {
                throw KinemaError.invalidArgument(
                    "step-distill: denoising_step_list must be strictly decreasing, got \(denoisingSteps)")
            }
        }
        self.denoisingSteps = denoisingSteps
        let shift32 = Float(shift)
        let shiftMinusOne32 = Float(shift - 1)
        // torch.linspace(1, 0, 1001) in float32: the grid value at index j is 1 − j/1000 to within an ulp.
        func grid(_ index: Int) -> Float {
            let sigma = Float(1 - Double(index) / Double(train))
            return shift32 * sigma / (1 + shiftMinusOne32 * sigma)
        }
        let stepSigmas = denoisingSteps.map { grid(train - $0) }
        sigmas = stepSigmas + [0]
        timesteps = stepSigmas.map { $0 * Float(train) }
    }

    public mutating func step(modelOutput: Tensor, sample: Tensor, backend: any Backend) throws -> Tensor {
        let (v, x) = try SamplerSupport.operands(
            "step-distill", stepIndex: stepIndex, stepCount: timesteps.count, modelOutput: modelOutput, sample: sample,
            backend: backend)
        let math = LatentArithmetic(backend: backend)
        let isLast = stepIndex == timesteps.count - 1
        let x0 = try math.x0Prediction(sample: x, velocity: v, sigma: sigmas[stepIndex])
        // x0 + σ_{n+1}·v, or x0 itself at the last step.
        let out = isLast ? x0 : try math.sum(x0, try math.scaled(v, by: sigmas[stepIndex + 1]))
        stepIndex += 1
        return out
    }
}
