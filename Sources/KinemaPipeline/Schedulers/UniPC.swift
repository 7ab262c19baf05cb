import Foundation
import KinemaCore

/// Matches diffusers `UniPCMultistepScheduler` (0.42.1) as the Wan2.1 diffusers checkpoints configure it
/// — and, with `schedule: .wan`, the official Wan `FlowUniPCMultistepScheduler`, which runs the same
/// update on a slightly different σ grid (see `FlowSigmaSchedule`). Configuration:
/// `scheduler/scheduler_config.json`: prediction_type "flow_prediction", use_flow_sigmas, flow_shift s,
/// solver_order 2, solver_type "bh2", predict_x0, lower_order_final, final_sigmas_type "zero",
/// timestep_spacing "linspace", no disabled correctors, no thresholding, num_train_timesteps 1000.
///
/// Each step: convert v to x0 = x − σ·v; run the UniC corrector on the sample the previous predictor
/// produced (from step 1 on, with the previous step's order); run the UniP predictor towards σ_{i+1}.
/// Orders warm up 1, 2, 2, … and the last step is order 1 (lower_order_final), where σ_{i+1} = 0 makes
/// the update return x0 exactly.
///
/// Numerics mirror diffusers: the σ table is built in float64 (numpy) and stored as float32; every
/// scalar coefficient (λ = log α − log σ, h, expm1, B(h), ρ) is computed in float32 as torch computes it
/// on 0-dim float32 tensors; the 2×2 corrector system is solved in float64 and rounded (torch uses LAPACK
/// sgesv; the two agree to an ulp). λ differences of adjacent 50-step σs lose ~5 of float32's 24 bits to
/// cancellation — upstream has the same loss, so matching its float32 order is what keeps us close.
public struct UniPCSampler: FlowSampler {
    public let kind = SamplerKind.unipc
    public let timesteps: [Float]
    public let sigmas: [Float]
    public private(set) var stepIndex = 0

    // History, f32 tensors on the device of the backend stepping this sampler; released after the last step.
    /// Converted model outputs (x0 predictions) of the last two steps; `last` is the newest.
    private var previousX0: Tensor?
    private var lastX0: Tensor?
    /// The sample before the last predictor ran (`last_sample`), needed by the next corrector.
    private var lastSample: Tensor?
    /// Predictor order used at the previous step (the next corrector's order).
    private var lastOrder = 0
    /// Steps completed, capped at the solver order (`lower_order_nums`).
    private var lowerOrderCount = 0

    static let solverOrder = 2

    public let schedule: FlowSigmaSchedule

    public init(steps: Int, shift: Double, schedule: FlowSigmaSchedule = .diffusers) throws {
        try SamplerSupport.checkSteps(steps, "UniPC")
        try SamplerSupport.checkShift(shift, "UniPC")
        self.schedule = schedule
        let train = Double(SamplerSupport.trainTimesteps)
        var sigmas64: [Double]
        switch schedule {
        case .diffusers:
            // linspace(1, 1/1000, N+1)[:-1], shifted, σ0 nudged below 1 so log(1 − σ0) is finite.
            sigmas64 = SamplerSupport.linspace(1, 1 / train, steps + 1).dropLast().map { SamplerSupport.shifted($0, shift) }
            if abs(sigmas64[0] - 1) < 1e-6 { sigmas64[0] -= 1e-6 }
        case .wan:
            // Wan's table is float32 1 − linspace(1, 1/1000, 1000)[::-1]; its ends are float32(0.999) and 0.
            // σ0 = shift(0.999) < 1 always, so no guard is needed.
            let sigmaMax = Double(Float(1 - 1 / train))
            sigmas64 = SamplerSupport.linspace(sigmaMax, 0, steps + 1).dropLast().map { SamplerSupport.shifted($0, shift) }
        }
        // `astype(int64)` truncates toward zero.
        timesteps = sigmas64.map { Float(Int64($0 * train)) }
        sigmas = sigmas64.map { Float($0) } + [0]
    }

    /// λ(σ) = log α − log σ with α = 1 − σ (flow sigmas), in float32 like torch. λ(0) = +∞.
    @inline(__always)
    private static func lambda(_ sigma: Float) -> Float {
        Foundation.log(1 - sigma) - Foundation.log(sigma)
    }

    /// The B(h) quantities both updates share, for hh = −h (predict_x0). `b1`, `b2` are diffusers'
    /// b[0], b[1] (b[1] only meaningful for order 2).
    private struct Phi {
        let hPhi1: Float
        let bh: Float
        let b1: Float
        let b2: Float

        init(h: Float) {
            let hh = -h
            hPhi1 = Foundation.expm1(hh) // h·φ1(h) = e^h − 1
            bh = Foundation.expm1(hh) // bh2: B(h) = e^h − 1
            var hPhiK = hPhi1 / hh - 1
            b1 = hPhiK * 1 / bh
            hPhiK = hPhiK / hh - 1 / 2
            b2 = hPhiK * 2 / bh
        }
    }

    public mutating func step(modelOutput: Tensor, sample: Tensor, backend: any Backend) throws -> Tensor {
        let (v, x) = try SamplerSupport.operands(
            "UniPC", stepIndex: stepIndex, stepCount: timesteps.count, modelOutput: modelOutput, sample: sample, backend: backend)
        try SamplerSupport.checkHistory("UniPC", [previousX0, lastX0, lastSample], backend: backend)
        let math = LatentArithmetic(backend: backend)
        let i = stepIndex

        // convert_model_output: x0 = x − σ_i·v.
        let x0 = try math.x0Prediction(sample: x, velocity: v, sigma: sigmas[i])

        var current = x
        if i > 0, let previousSample = lastSample, let m0 = lastX0 {
            current = try corrector(modelT: x0, m0: m0, m1: previousX0, last: previousSample, order: lastOrder, math)
        }

        // The history shifts by one: step i−1's x0 becomes m1 for the predictor and the next corrector.
        let shiftedPrevious = lastX0
        let order = min(min(Self.solverOrder, timesteps.count - i), lowerOrderCount + 1)
        let next = try predictor(sample: current, m0: x0, m1: shiftedPrevious, order: order, math)

        // Every op succeeded: commit the new state (a step that throws leaves the sampler unchanged).
        lastOrder = order
        if lowerOrderCount < Self.solverOrder { lowerOrderCount += 1 }
        stepIndex += 1
        if isFinished {
            (previousX0, lastX0, lastSample) = (nil, nil, nil)
        } else {
            (previousX0, lastX0, lastSample) = (shiftedPrevious, x0, current)
        }
        return next
    }

    /// multistep_uni_p_bh_update from σ_i to σ_{i+1}. `m1` is the x0 prediction of step i−1 (order 2).
    private func predictor(sample x: Tensor, m0: Tensor, m1: Tensor?, order: Int, _ math: LatentArithmetic) throws -> Tensor {
        let i = stepIndex
        let (sigmaT, sigmaS0) = (sigmas[i + 1], sigmas[i])
        let (alphaT, lambdaT, lambdaS0) = (1 - sigmaT, Self.lambda(sigmaT), Self.lambda(sigmaS0))
        let h = lambdaT - lambdaS0
        let phi = Phi(h: h)
        let sampleScale = sigmaT / sigmaS0
        let x0Scale = alphaT * phi.hPhi1
        let residualScale = alphaT * phi.bh
        let base = try math.scaledDifference(sampleScale, x, x0Scale, m0)
        guard order == 2, let m1 else { return base }
        // rk from σ_{i−1}; D1 = (m1 − m0)/rk; ρ_p = 0.5 (diffusers' order-2 shortcut);
        // x ← base − residualScale·(ρ_p·D1).
        let rk = (Self.lambda(sigmas[i - 1]) - lambdaS0) / h
        let rho: Float = 0.5
        let d1 = try math.divided(try math.difference(m1, m0), by: rk)
        return try math.difference(base, try math.scaled(try math.scaled(d1, by: rho), by: residualScale))
    }

    /// multistep_uni_c_bh_update: recomputes the sample at σ_i from `last` (the sample at σ_{i−1} that the
    /// previous predictor started from) using the new x0 prediction `modelT`; the predictor's own result
    /// is replaced, not blended (diffusers passes it as `this_sample` only for its device and dtype).
    /// `m0` is step i−1's x0, `m1` step i−2's.
    private func corrector(
        modelT: Tensor, m0: Tensor, m1: Tensor?, last x: Tensor, order: Int, _ math: LatentArithmetic
    ) throws -> Tensor {
        let i = stepIndex
        let (sigmaT, sigmaS0) = (sigmas[i], sigmas[i - 1])
        let (alphaT, lambdaT, lambdaS0) = (1 - sigmaT, Self.lambda(sigmaT), Self.lambda(sigmaS0))
        let h = lambdaT - lambdaS0
        let phi = Phi(h: h)
        let sampleScale = sigmaT / sigmaS0
        let x0Scale = alphaT * phi.hPhi1
        let residualScale = alphaT * phi.bh
        let base = try math.scaledDifference(sampleScale, x, x0Scale, m0)
        let newDirection = try math.difference(modelT, m0) // D1_t = modelT − m0
        let correction: Tensor
        if order == 2, let m1 {
            let rk = (Self.lambda(sigmas[i - 2]) - lambdaS0) / h
            // Solve [[1, 1], [rk, 1]]·ρ = [b1, b2] (R rows are rks^0 and rks^1 with rks = [rk, 1]).
            let (r, b1, b2) = (Double(rk), Double(phi.b1), Double(phi.b2))
            let determinant = 1 - r
            let rho0 = Float((b1 - b2) / determinant)
            let rho1 = Float((b2 - r * b1) / determinant)
            // ρ0·D1 + ρ1·D1_t with D1 = (m1 − m0)/rk.
            let d1 = try math.divided(try math.difference(m1, m0), by: rk)
            correction = try math.sum(try math.scaled(d1, by: rho0), try math.scaled(newDirection, by: rho1))
        } else {
            // Order 1: ρ_c = 0.5, no history term.
            let rho: Float = 0.5
            correction = try math.scaled(newDirection, by: rho)
        }
        // x ← base − residualScale·correction.
        return try math.difference(base, try math.scaled(correction, by: residualScale))
    }
}
