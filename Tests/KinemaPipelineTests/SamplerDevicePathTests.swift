import Foundation
import KinemaCPU
import KinemaCore
import KinemaPipeline
import KinemaTestSupport
import XCTest

/// The samplers run their update as backend ops (so latents and history can stay on a GPU). On the CPU
/// backend every op rounds once in float32, so each step must equal, bit for bit, a plain float32 host
/// loop of the same formula in the same operation order — the arithmetic the samplers did before.
/// `HostReference` below is that loop, written from the diffusers / LightX2V update formulas.
final class SamplerDevicePathTests: XCTestCase {
    /// A small latent grid [1, 16, 3, 6, 10] and a velocity per step drawn from a seeded normal.
    static let shape = [1, 16, 3, 6, 10]

    func testEverySamplerIsBitIdenticalToHostLoops() throws {
        let configurations: [SamplerConfiguration] = [
            SamplerConfiguration(kind: .unipc, steps: 7, shift: 5),
            SamplerConfiguration(kind: .unipc, steps: 5, shift: 3, sigmaSchedule: .wan),
            SamplerConfiguration(kind: .unipc, steps: 2, shift: 5),
            SamplerConfiguration(kind: .dpmpp, steps: 6, shift: 5),
            SamplerConfiguration(kind: .euler, steps: 5, shift: 5),
            .lightX2VFourStep,
        ]
        for configuration in configurations {
            let label = "\(configuration.kind) \(configuration.steps) steps \(configuration.sigmaSchedule)"
            var sampler = try configuration.makeSampler()
            var reference = HostReference(kind: configuration.kind, sigmas: sampler.sigmas)
            var generator = SplitMix64(seed: 17)
            let count = Self.shape.reduce(1, *)
            var hostSample = generator.normals(count)
            var sample = try Tensor(hostSample, shape: Self.shape)
            while !sampler.isFinished {
                let step = sampler.stepIndex
                let velocity = generator.normals(count).map { $0 * 0.8 + 0.1 }
                sample = try sampler.step(
                    modelOutput: try Tensor(velocity, shape: Self.shape), sample: sample, backend: CPUBackend.shared)
                hostSample = reference.step(step, modelOutput: velocity, sample: hostSample)
                XCTAssertEqual(sample.shape, Self.shape)
                XCTAssertEqual(sample.dtype, .f32)
                let ours = try sample.floats()
                let mismatches = zip(ours, hostSample).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertEqual(mismatches, 0, "\(label) step \(step): elements differing from the host loop")
            }
            XCTAssertEqual(reference.stepsTaken, sampler.timesteps.count, label)
        }
    }

    /// bf16 model outputs widen exactly and strided samples are read through their strides: the result is
    /// the same as with a contiguous f32 copy of both.
    func testBF16OutputsAndStridedSamplesMatchContiguousF32() throws {
        var generator = SplitMix64(seed: 5)
        let transposedShape = [1, 16, 3, 10, 6]
        let source = try Tensor(generator.normals(Self.shape.reduce(1, *)), shape: transposedShape)
        let strided = try source.permuted([0, 1, 2, 4, 3]) // [1, 16, 3, 6, 10], not contiguous
        let velocity = try Tensor(generator.normals(Self.shape.reduce(1, *)), shape: Self.shape, dtype: .bf16)
        let backend = CPUBackend.shared
        for kind in SamplerKind.allCases {
            var viaViews = try SamplerConfiguration(kind: kind, steps: 3, shift: 5).makeSampler()
            var viaCopies = viaViews
            var a = strided
            var b = try backend.contiguous(strided)
            for _ in 0..<2 {
                a = try viaViews.step(modelOutput: velocity, sample: a, backend: backend)
                b = try viaCopies.step(modelOutput: try backend.cast(velocity, to: .f32), sample: b, backend: backend)
            }
            XCTAssertEqual(try a.floats().map(\.bitPattern), try b.floats().map(\.bitPattern), "\(kind)")
        }
    }

    func testFinishedSamplerAndBadInputsThrowWithoutAdvancing() throws {
        var sampler = try DPMSolverPP2MSampler(steps: 2, shift: 5)
        let x = try Tensor([1, 2, 3, 4], shape: [2, 2])
        XCTAssertThrowsError(try sampler.step(modelOutput: try Tensor([1, 2], shape: [2, 1]), sample: x, backend: CPUBackend.shared)) {
            guard case KinemaError.shapeMismatch = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(sampler.stepIndex, 0)
        _ = try sampler.step(modelOutput: x, sample: x, backend: CPUBackend.shared)
        _ = try sampler.step(modelOutput: x, sample: x, backend: CPUBackend.shared)
        XCTAssertThrowsError(try sampler.step(modelOutput: x, sample: x, backend: CPUBackend.shared)) {
            guard case KinemaError.invalidArgument = $0 else { return XCTFail("\($0)") }
        }
    }
}

/// The samplers' updates as float32 host loops over [Float]: one rounding per operation, written in the
/// evaluation order of the upstream formulas. Coefficients are float32 scalars as torch computes them
/// on 0-dim tensors (the corrector's 2×2 solve in float64).
struct HostReference {
    let kind: SamplerKind
    let sigmas: [Float]
    private(set) var stepsTaken = 0
    // Multistep history: x0 predictions (newest last) and, for UniPC, the predictor's starting sample.
    private var x0History: [[Float]] = []
    private var predictorStart: [Float]?
    private var predictorOrder = 0

    init(kind: SamplerKind, sigmas: [Float]) {
        self.kind = kind
        self.sigmas = sigmas
    }

    private var stepCount: Int { sigmas.count - 1 }

    /// λ = log(α) − log(σ) with α = 1 − σ.
    private static func lambda(_ sigma: Float) -> Float { log(1 - sigma) - log(sigma) }

    mutating func step(_ i: Int, modelOutput v: [Float], sample x: [Float]) -> [Float] {
        precondition(i == stepsTaken, "reference stepped out of order")
        stepsTaken += 1
        let (s, next) = (sigmas[i], sigmas[i + 1])
        switch kind {
        case .euler:
            let dt = next - s
            return zip(x, v).map { $0 + dt * $1 }
        case .stepDistill:
            let isLast = i == stepCount - 1
            return zip(x, v).map { xk, vk in
                let x0 = xk - s * vk
                return isLast ? x0 : x0 + next * vk
            }
        case .dpmpp:
            let m0 = zip(x, v).map { $0 - s * $1 }
            defer { x0History = [m0] }
            let h = Self.lambda(next) - Self.lambda(s)
            let a = next / s
            let b = (1 - next) * (exp(-h) - 1)
            if i == 0 || i == stepCount - 1 {
                return (0..<x.count).map { a * x[$0] - b * m0[$0] }
            }
            let m1 = x0History[0]
            let r0 = (Self.lambda(s) - Self.lambda(sigmas[i - 1])) / h
            let (invR0, halfB) = (1 / r0, 0.5 * b)
            return (0..<x.count).map { k in a * x[k] - b * m0[k] - halfB * (invR0 * (m0[k] - m1[k])) }
        case .unipc:
            return uniPC(i, modelOutput: v, sample: x)
        }
    }

    /// bh2 coefficients for step size h (predict_x0, so the exponent is −h).
    private static func bh2(_ h: Float) -> (hPhi1: Float, bh: Float, b1: Float, b2: Float) {
        let hh = -h
        let hPhi1 = expm1(hh)
        let bh = expm1(hh)
        let first = hPhi1 / hh - 1
        let second = first / hh - 1 / 2
        return (hPhi1, bh, first * 1 / bh, second * 2 / bh)
    }

    private mutating func uniPC(_ i: Int, modelOutput v: [Float], sample x: [Float]) -> [Float] {
        let x0 = zip(x, v).map { $0 - sigmas[i] * $1 }
        var start = x
        if i > 0, let last = predictorStart, let m0 = x0History.last {
            // Corrector from σ_{i−1} to σ_i with the new x0.
            let (t, s0) = (sigmas[i], sigmas[i - 1])
            let h = Self.lambda(t) - Self.lambda(s0)
            let c = Self.bh2(h)
            let (a, b, r) = (t / s0, (1 - t) * c.hPhi1, (1 - t) * c.bh)
            if predictorOrder == 2, x0History.count == 2 {
                let m1 = x0History[0]
                let rk = (Self.lambda(sigmas[i - 2]) - Self.lambda(s0)) / h
                let det = 1 - Double(rk)
                let rho0 = Float((Double(c.b1) - Double(c.b2)) / det)
                let rho1 = Float((Double(c.b2) - Double(rk) * Double(c.b1)) / det)
                start = (0..<x.count).map { k in
                    let d1 = (m1[k] - m0[k]) / rk
                    return a * last[k] - b * m0[k] - r * (rho0 * d1 + rho1 * (x0[k] - m0[k]))
                }
            } else {
                start = (0..<x.count).map { k in a * last[k] - b * m0[k] - r * (0.5 * (x0[k] - m0[k])) }
            }
        }
        // Predictor from σ_i to σ_{i+1}: order 1 at the first and the last step, else 2.
        let order = (i == 0 || i == stepCount - 1) ? 1 : 2
        let previous = x0History.last
        x0History = (previous.map { [$0] } ?? []) + [x0]
        predictorStart = start
        predictorOrder = order
        let (t, s0) = (sigmas[i + 1], sigmas[i])
        let h = Self.lambda(t) - Self.lambda(s0)
        let c = Self.bh2(h)
        let (a, b, r) = (t / s0, (1 - t) * c.hPhi1, (1 - t) * c.bh)
        guard order == 2, let m1 = previous else {
            return (0..<x.count).map { a * start[$0] - b * x0[$0] }
        }
        let rk = (Self.lambda(sigmas[i - 1]) - Self.lambda(s0)) / h
        return (0..<x.count).map { k in a * start[k] - b * x0[k] - r * (0.5 * ((m1[k] - x0[k]) / rk)) }
    }
}
