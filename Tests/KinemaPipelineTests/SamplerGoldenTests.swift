import Foundation
import KinemaCPU
import KinemaCore
import KinemaPipeline
import KinemaTestSupport
import XCTest

/// Replays the model outputs recorded by scripts/goldens/scheduler_goldens.py through each sampler and
/// compares the timesteps, the σ table and every intermediate sample with the diffusers / LightX2V run.
final class SamplerGoldenTests: XCTestCase {
    struct Case {
        let name: String
        let kind: SamplerKind
        let steps: Int
        let shift: Double
        let stepList: [Int]?
        let schedule: FlowSigmaSchedule
    }

    static func cases() throws -> [Case] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("schedulers/schedulers.json")))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let entries = root["cases"] as? [[String: Any]]
        else { throw KinemaError.badFile(path: "schedulers.json", location: nil, reason: "no cases") }
        return try entries.map { entry in
            guard let name = entry["name"] as? String, let kindName = entry["kind"] as? String,
                  let kind = SamplerKind(rawValue: kindName), let steps = entry["steps"] as? Int,
                  let shift = entry["shift"] as? Double
            else { throw KinemaError.badFile(path: "schedulers.json", location: "\(entry)", reason: "bad case") }
            guard let schedule = FlowSigmaSchedule(rawValue: entry["sigma_schedule"] as? String ?? "") else {
                throw KinemaError.badFile(path: "schedulers.json", location: name, reason: "bad sigma_schedule")
            }
            return Case(
                name: name, kind: kind, steps: steps, shift: shift, stepList: entry["denoising_step_list"] as? [Int],
                schedule: schedule)
        }
    }

    func testAllKindsCovered() throws {
        let cases = try Self.cases()
        XCTAssertEqual(Set(cases.map(\.kind)), Set(SamplerKind.allCases))
        XCTAssertEqual(Set(cases.filter { $0.kind == .unipc }.map(\.schedule)), Set(FlowSigmaSchedule.allCases))
    }

    func testReplayMatchesReference() throws {
        let source = try Fixtures.open("schedulers/schedulers.safetensors")
        for c in try Self.cases() {
            let config = SamplerConfiguration(
                kind: c.kind, steps: c.steps, shift: c.shift, denoisingSteps: c.stepList, sigmaSchedule: c.schedule)
            var sampler = try config.makeSampler()
            XCTAssertEqual(sampler.kind, c.kind)

            let expectedTimesteps = try source.tensor("\(c.name).timesteps").floats()
            XCTAssertEqual(sampler.timesteps.count, expectedTimesteps.count, c.name)
            for (index, (ours, theirs)) in zip(sampler.timesteps, expectedTimesteps).enumerated() {
                if c.kind == .unipc || c.kind == .dpmpp {
                    XCTAssertEqual(ours, theirs, "\(c.name) integer timestep \(index)")
                } else {
                    XCTAssertEqual(Double(ours), Double(theirs), accuracy: Tolerances.samplerTimestepAbs, "\(c.name) timestep \(index)")
                }
            }
            let expectedSigmas = try source.tensor("\(c.name).sigmas").floats()
            XCTAssertEqual(sampler.sigmas.count, expectedSigmas.count, c.name)
            for (index, (ours, theirs)) in zip(sampler.sigmas, expectedSigmas).enumerated() {
                XCTAssertEqual(Double(ours), Double(theirs), accuracy: Tolerances.samplerSigmaAbs, "\(c.name) sigma \(index)")
            }

            let outputs = try source.tensor("\(c.name).model_outputs")
            let samples = try source.tensor("\(c.name).samples")
            // Chained like a real run (the sampler's history and corrector state carry over); every step's
            // result is compared, so a failure names the first step that broke.
            var worst = 0.0
            var chained = try samples.narrowed(axis: 0, start: 0, length: 1).squeezed(0)
            for index in 0..<c.steps {
                XCTAssertFalse(sampler.isFinished)
                let v = try outputs.narrowed(axis: 0, start: index, length: 1).squeezed(0)
                let expected = try samples.narrowed(axis: 0, start: index + 1, length: 1).squeezed(0)
                chained = try sampler.step(modelOutput: v, sample: chained)
                assertClose(chained, expected, relL2: Tolerances.samplerF32RelL2, "\(c.name) step \(index)")
                worst = max(worst, try compare(chained, expected).relL2)
            }
            XCTAssertTrue(sampler.isFinished, c.name)
            print("\(c.name): worst per-step relL2 \(worst)")
            XCTAssertNil(sampler.currentTimestep)
        }
    }

    func testStepDistillDocumentedSchedule() throws {
        // lightx2v.md §4.8: shift 5 and [1000, 750, 500, 250] give σ = [1, 0.9375, 0.8333, 0.625].
        let sampler = try SamplerConfiguration.lightX2VFourStep.makeSampler()
        let expected: [Float] = [1000, 937.5, 833.3333, 625]
        for (ours, theirs) in zip(sampler.timesteps, expected) {
            XCTAssertEqual(ours, theirs, accuracy: 1e-3)
        }
        XCTAssertEqual(sampler.sigmas.last, 0)
    }

    func testBadInputsThrow() throws {
        XCTAssertThrowsError(try UniPCSampler(steps: 0, shift: 5))
        XCTAssertThrowsError(try DPMSolverPP2MSampler(steps: 10, shift: 0))
        XCTAssertThrowsError(try FlowEulerSampler(steps: 4, shift: .nan))
        XCTAssertThrowsError(try StepDistillSampler(denoisingSteps: [], shift: 5))
        XCTAssertThrowsError(try StepDistillSampler(denoisingSteps: [1001, 500], shift: 5))
        XCTAssertThrowsError(try StepDistillSampler(denoisingSteps: [500, 750], shift: 5))
        XCTAssertThrowsError(try StepDistillSampler(denoisingSteps: [500, 0], shift: 5))

        var sampler = try UniPCSampler(steps: 1, shift: 5)
        let x = try Tensor([1, 2, 3, 4], shape: [1, 4])
        let wrong = try Tensor([1, 2, 3], shape: [1, 3])
        XCTAssertThrowsError(try sampler.step(modelOutput: wrong, sample: x)) { error in
            guard case KinemaError.shapeMismatch = error else { return XCTFail("\(error)") }
        }
        let ints = try Tensor(integers: [1, 2, 3, 4], shape: [1, 4], dtype: .i32)
        XCTAssertThrowsError(try sampler.step(modelOutput: ints, sample: x)) { error in
            guard case KinemaError.dtypeMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(sampler.stepIndex, 0, "a rejected step must not advance the sampler")
        _ = try sampler.step(modelOutput: x, sample: x)
        XCTAssertThrowsError(try sampler.step(modelOutput: x, sample: x)) { error in
            guard case KinemaError.invalidArgument = error else { return XCTFail("\(error)") }
        }
    }

    func testGuidance() throws {
        let cfg = try ClassifierFreeGuidance(scale: 5)
        let cond = try Tensor([1, 2, -3], shape: [3])
        let uncond = try Tensor([0.5, 2, 1], shape: [3])
        let out = try cfg.combine(cond: cond, uncond: uncond).floats()
        XCTAssertEqual(out, [0.5 + 5 * 0.5, 2, 1 + 5 * -4])
        XCTAssertTrue(cfg.needsUnconditional)
        XCTAssertFalse(try ClassifierFreeGuidance(scale: 1).needsUnconditional)
        XCTAssertThrowsError(try ClassifierFreeGuidance(scale: .infinity))
        XCTAssertThrowsError(try cfg.combine(cond: cond, uncond: try Tensor([1, 2], shape: [2])))
    }

    func testGuidanceOnBackendMatchesHost() throws {
        let cfg = try ClassifierFreeGuidance(scale: 6)
        let cond = try Tensor((0..<60).map { Float($0) * 0.37 - 7 }, shape: [1, 3, 4, 5])
        let uncond = try Tensor((0..<60).map { Float($0 % 7) * -0.21 + 1 }, shape: [1, 3, 4, 5], dtype: .bf16)
        let host = try cfg.combine(cond: cond, uncond: uncond)
        let device = try cfg.combine(cond: cond, uncond: uncond, backend: CPUBackend.shared)
        XCTAssertEqual(device.dtype, .f32)
        XCTAssertEqual(try device.floats(), try host.floats())
    }

    func testDenoisingLoopReplaysEuler() throws {
        // Denoising.run with a closure that looks up the recorded outputs reproduces the reference run.
        let source = try Fixtures.open("schedulers/schedulers.safetensors")
        let outputs = try source.tensor("euler_8_shift5.model_outputs")
        let samples = try source.tensor("euler_8_shift5.samples")
        var sampler = try FlowEulerSampler(steps: 8, shift: 5)
        var seen: [Float] = []
        var reported: [Int] = []
        let start = try samples.narrowed(axis: 0, start: 0, length: 1).squeezed(0)
        let result = try Denoising.run(&sampler, latents: start, progress: { done, _ in reported.append(done) }) { _, t in
            seen.append(t)
            return try outputs.narrowed(axis: 0, start: seen.count - 1, length: 1).squeezed(0)
        }
        XCTAssertEqual(seen, sampler.timesteps)
        XCTAssertEqual(reported, Array(1...8))
        assertClose(result, try samples.narrowed(axis: 0, start: 8, length: 1).squeezed(0), relL2: Tolerances.samplerF32RelL2)
        XCTAssertThrowsError(try Denoising.run(&sampler, latents: start) { x, _ in x })

        // Also through the existential a SamplerConfiguration returns.
        var erased = try SamplerConfiguration(kind: .euler, steps: 8, shift: 5).makeSampler()
        var index = 0
        let again = try Denoising.run(&erased, latents: start) { _, _ in
            index += 1
            return try outputs.narrowed(axis: 0, start: index - 1, length: 1).squeezed(0)
        }
        XCTAssertEqual(try again.floats(), try result.floats())
        XCTAssertTrue(erased.isFinished)
    }

    func testDefaultNegativePrompt() {
        let prompt = WanPrompts.defaultNegativePrompt
        XCTAssertTrue(prompt.hasPrefix("色调艳丽，过曝，静态"))
        XCTAssertTrue(prompt.hasSuffix("背景人很多，倒着走"))
        XCTAssertEqual(prompt.components(separatedBy: "，").count, 28)
    }
}
