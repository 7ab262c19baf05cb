import Foundation
import KinemaCore
import KinemaCPU

// The sampler interface shared by every Wan flow-matching sampler, the kind enum the CLI and the server
// map onto, and the validation the samplers share.
//
// Conventions (all samplers):
// - The model predicts a flow velocity v = noise − x0 ("flow_prediction"); σ runs from ≈1 (noise) to 0.
// - `timesteps[i]` is the value the DiT receives at step i (σ'·1000, truncated to an integer by the
//   diffusers multistep schedulers, a float for Euler and step-distill) — exactly what upstream passes.
// - `sigmas` has `timesteps.count + 1` entries; the last is 0 (diffusers' final_sigmas_type "zero").
// - Scheduler state (sigmas, history, latents) is float32, as upstream keeps it under autocast. Scalar
//   coefficients are computed on the host; the elementwise update runs as backend ops on the device the
//   latents live on (LatentArithmetic), and the history tensors stay there. On the CPU backend the update
//   is bit-identical to a host float32 loop in the same operation order. Tensors on another device than
//   the backend's are rejected with a typed error rather than copied silently.

/// Which sampler to run. The raw values are the names the CLI and the HTTP API accept.
public enum SamplerKind: String, CaseIterable, Sendable {
    /// diffusers `UniPCMultistepScheduler` (flow sigmas, bh2, order 2): Wan's default sampler.
    case unipc
    /// diffusers `DPMSolverMultistepScheduler` (flow sigmas, dpmsolver++, midpoint, order 2).
    case dpmpp
    /// diffusers `FlowMatchEulerDiscreteScheduler` with a static shift.
    case euler
    /// LightX2V `WanStepDistillScheduler`: deterministic Euler on a fixed `denoising_step_list`.
    case stepDistill
}

/// Which σ grid the UniPC sampler spaces its steps on. The update math is the same in both: the official
/// Wan `FlowUniPCMultistepScheduler` is a copy of diffusers' UniPC (v0.31) adapted to flow sigmas.
public enum FlowSigmaSchedule: String, Sendable, CaseIterable {
    /// diffusers `UniPCMultistepScheduler(use_flow_sigmas=True)`: σ = linspace(1, 1/1000, N+1)[:-1],
    /// shifted, σ0 nudged to 1 − 1e-6. What diffusers' WanPipeline runs.
    case diffusers
    /// Official Wan2.1 `wan/utils/fm_solvers_unipc.py` (and LightX2V's WanScheduler, lightx2v.md §4.7):
    /// σ = linspace(0.999, 0, N+1)[:-1] (0.999 as float32), shifted. What `generate.py` runs.
    case wan
}

/// A flow-matching sampler: call `step` once per entry of `timesteps`, feeding the model output (the
/// guided velocity) computed at `timesteps[stepIndex]` on the current sample.
public protocol FlowSampler: Sendable {
    var kind: SamplerKind { get }
    /// Model timesteps, one per step, in the order they are used.
    var timesteps: [Float] { get }
    /// σ per step plus the final σ (0): `timesteps.count + 1` entries.
    var sigmas: [Float] { get }
    /// Steps taken so far; `step` may be called while `stepIndex < timesteps.count`.
    var stepIndex: Int { get }
    /// Advances the sample by one step with `backend`'s ops. `modelOutput` and `sample` must have the same
    /// shape, a float dtype, and live on `backend`'s device, as must the history of earlier steps (step a
    /// sampler with one backend throughout). The result is a new contiguous float32 tensor of that shape on
    /// that device. A step that throws leaves the sampler as it was.
    mutating func step(modelOutput: Tensor, sample: Tensor, backend: any Backend) throws -> Tensor
}

extension FlowSampler {
    /// `step` on host tensors, computed by the CPU backend.
    public mutating func step(modelOutput: Tensor, sample: Tensor) throws -> Tensor {
        try step(modelOutput: modelOutput, sample: sample, backend: CPUBackend.shared)
    }

    /// Whether every step has been taken.
    public var isFinished: Bool { stepIndex >= timesteps.count }
    /// The timestep the model must be evaluated at next.
    public var currentTimestep: Float? { isFinished ? nil : timesteps[stepIndex] }
}

/// Everything that selects and sizes a sampler.
public struct SamplerConfiguration: Sendable, Equatable {
    public var kind: SamplerKind
    /// Number of steps; ignored by `.stepDistill`, whose step count is `denoisingSteps.count`.
    public var steps: Int
    /// Flow shift s in σ' = s·σ / (1 + (s − 1)·σ). Wan2.1: 5 for T2V 480p/720p examples, 3 for I2V 480p.
    public var shift: Double
    /// `.stepDistill` only: LightX2V's `denoising_step_list`, descending, each in 1...1000.
    public var denoisingSteps: [Int]?
    /// `.unipc` only: diffusers' σ grid (default) or the official Wan one.
    public var sigmaSchedule: FlowSigmaSchedule

    public init(
        kind: SamplerKind, steps: Int, shift: Double, denoisingSteps: [Int]? = nil,
        sigmaSchedule: FlowSigmaSchedule = .diffusers
    ) {
        self.kind = kind
        self.steps = steps
        self.shift = shift
        self.denoisingSteps = denoisingSteps
        self.sigmaSchedule = sigmaSchedule
    }

    /// LightX2V's 4-step distilled defaults: [1000, 750, 500, 250], shift 5.
    public static let lightX2VFourStep = SamplerConfiguration(
        kind: .stepDistill, steps: 4, shift: 5, denoisingSteps: StepDistillSampler.defaultStepList)

    /// Builds the sampler this configuration names.
    public func makeSampler() throws -> any FlowSampler {
        switch kind {
        case .unipc: return try UniPCSampler(steps: steps, shift: shift, schedule: sigmaSchedule)
        case .dpmpp: return try DPMSolverPP2MSampler(steps: steps, shift: shift)
        case .euler: return try FlowEulerSampler(steps: steps, shift: shift)
        case .stepDistill:
            return try StepDistillSampler(denoisingSteps: denoisingSteps ?? StepDistillSampler.defaultStepList, shift: shift)
        }
    }
}

/// Shared validation and σ-table arithmetic for the samplers.
enum SamplerSupport {
    /// Upstream schedulers train on 1000 discrete timesteps; every Wan checkpoint uses 1000.
    static let trainTimesteps = 1000

    static func checkSteps(_ steps: Int, _ name: String) throws {
        guard steps >= 1, steps <= 10_000 else {
            throw KinemaError.invalidArgument("\(name): steps must be in 1...10000, got \(steps)")
        }
    }

    static func checkShift(_ shift: Double, _ name: String) throws {
        // s ≤ 0 makes the shifted σ leave [0, 1] (or divide by zero at σ = 1/(1−s)).
        guard shift.isFinite, shift > 0 else {
            throw KinemaError.invalidArgument("\(name): shift must be a finite positive number, got \(shift)")
        }
    }

    /// σ' = s·σ / (1 + (s − 1)·σ), evaluated in the operation order diffusers uses.
    @inline(__always)
    static func shifted(_ sigma: Double, _ shift: Double) -> Double {
        shift * sigma / (1 + (shift - 1) * sigma)
    }

    /// numpy.linspace(start, stop, count) in float64: `i·step + start`, last element exactly `stop`.
    static func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (stop - start) / Double(count - 1)
        var values = (0..<count).map { Double($0) * step + start }
        values[count - 1] = stop
        return values
    }

    /// Checks a step's inputs against each other and the backend and returns them as float32 tensors on
    /// the backend's device (a cast that is free when they already are; bf16/f16 widen exactly).
    static func operands(
        _ name: String, stepIndex: Int, stepCount: Int, modelOutput: Tensor, sample: Tensor, backend: any Backend
    ) throws -> (model: Tensor, sample: Tensor) {
        guard stepIndex < stepCount else {
            throw KinemaError.invalidArgument("\(name): all \(stepCount) steps have been taken; no further step is defined")
        }
        guard modelOutput.shape == sample.shape else {
            throw KinemaError.shapeMismatch(
                context: "\(name) step \(stepIndex): model output vs sample", expected: "\(sample.shape)",
                found: "\(modelOutput.shape)")
        }
        for (role, tensor) in [("model output", modelOutput), ("sample", sample)] {
            guard tensor.device == backend.device else {
                throw KinemaError.deviceMismatch(context: "\(name) \(role)", expected: backend.device, found: tensor.device)
            }
            guard tensor.dtype.isFloatingPoint else {
                throw KinemaError.dtypeMismatch(context: "\(name) \(role)", expected: "a floating-point dtype", found: tensor.dtype)
            }
        }
        return (try backend.cast(modelOutput, to: .f32), try backend.cast(sample, to: .f32))
    }

    /// The history a multistep sampler kept from earlier steps must be on the backend stepping it now.
    static func checkHistory(_ name: String, _ history: [Tensor?], backend: any Backend) throws {
        for case let tensor? in history where tensor.device != backend.device {
            throw KinemaError.deviceMismatch(
                context: "\(name) history (earlier steps ran on another backend)", expected: backend.device, found: tensor.device)
        }
    }
}
