import Foundation
import KinemaCore

/// Matches diffusers `DPMSolverMultistepScheduler` (0.42.1) configured for Wan as diffusers' Wan docs
/// do: prediction_type "flow_prediction", use_flow_sigmas, flow_shift s, algorithm_type "dpmsolver++",
/// solver_order 2, solver_type "midpoint", lower_order_final, final_sigmas_type "zero".
///
/// Order schedule: step 0 is first order (no history), the last step is first order (σ_N = 0, which
/// makes the update return x0), every other step is the second-order multistep (2M) update.
///
/// σ table: float64 numpy `α = linspace(1, 1/1000, N+1)`, σ = shift(1 − α), reversed, last (0) dropped,
/// then stored as float32; timesteps truncate σ·1000 to integers. Unlike UniPC there is no σ0 = 1 guard:
/// σ0 = shift(0.999) < 1. Coefficients are float32 scalars as torch computes them.
public struct DPMSolverPP2MSampler: FlowSampler {
    public let kind = SamplerKind.dpmpp
    public let timesteps: [Float]
    public let sigmas: [Float]
    public private(set) var stepIndex = 0

    /// x0 prediction of the previous step (diffusers' model_outputs[-2] at the next step), f32 on the
    /// device of the backend stepping this sampler; released after the last step.
    private var previousX0: Tensor?

    public init(steps: Int, shift: Double) throws {
        try SamplerSupport.checkSteps(steps, "DPM++ 2M")
        try SamplerSupport.checkShift(shift, "DPM++ 2M")
        let train = Double(SamplerSupport.trainTimesteps)
        let alphas = SamplerSupport.linspace(1, 1 / train, steps + 1)
        let descending = alphas.map { SamplerSupport.shifted(1 - $0, shift) }.reversed().dropLast()
        let sigmas64 = Array(descending)
        timesteps = sigmas64.map { Float(Int64($0 * train)) }
        sigmas = sigmas64.map { Float($0) } + [0]
    }

    @inline(__always)
    private static func lambda(_ sigma: Float) -> Float {
        Foundation.log(1 - sigma) - Foundation.log(sigma)
    }

    public mutating func step(modelOutput: Tensor, sample: Tensor, backend: any Backend) throws -> Tensor {
        let (v, x) = try SamplerSupport.operands(
            "DPM++ 2M", stepIndex: stepIndex, stepCount: timesteps.count, modelOutput: modelOutput, sample: sample,
            backend: backend)
        try SamplerSupport.checkHistory("DPM++ 2M", [previousX0], backend: backend)
        let math = LatentArithmetic(backend: backend)
        let i = stepIndex
        let m0 = try math.x0Prediction(sample: x, velocity: v, sigma: sigmas[i])

        let (sigmaT, sigmaS0) = (sigmas[i + 1], sigmas[i])
        let alphaT = 1 - sigmaT
        let lambdaS0 = Self.lambda(sigmaS0)
        let h = Self.lambda(sigmaT) - lambdaS0
        let sampleScale = sigmaT / sigmaS0
        let x0Scale = alphaT * (Foundation.exp(-h) - 1)
        // First-order part, shared by both updates: sampleScale·x − x0Scale·m0.
        let firstOrder = try math.scaledDifference(sampleScale, x, x0Scale, m0)

        let out: Tensor
        let lowerOrderFinal = i == timesteps.count - 1 // final_sigmas_type "zero" forces first order
        if i > 0, !lowerOrderFinal, let m1 = previousX0 {
            let h0 = lambdaS0 - Self.lambda(sigmas[i - 1])
            let r0 = h0 / h
            let inverseR0 = 1 / r0
            let halfScale = 0.5 * x0Scale
            // D1 = (1/r0)·(m0 − m1); x ← firstOrder − (0.5·x0Scale)·D1.
            let d1 = try math.scaled(try math.difference(m0, m1), by: inverseR0)
            out = try math.difference(firstOrder, try math.scaled(d1, by: halfScale))
        } else {
            out = firstOrder
        }
        stepIndex += 1
        // The history is only read by a later step: drop it once there is none.
        previousX0 = isFinished ? nil : m0
        return out
    }
}
