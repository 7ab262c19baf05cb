import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN
import KinemaPipeline
import KinemaTestSupport
import XCTest

// The Wan DiT against diffusers' WanTransformer3DModel (fixtures written by scripts/goldens/make_goldens.py):
// every stage tap and the output, for both checkpoint layouts, in f32 and bf16.

final class WanTransformerGoldenTests: XCTestCase {
    enum Layout: String { case diffusers, wan }

    func runCase(_ name: String, layout: Layout, precision: Precision, ffnSlabBytes: Int? = nil) throws {
        let folder = Fixtures.path("wan_dit/\(name)/\(layout.rawValue)")
        let files = try ModelFiles.transformer(at: folder)
        let model = try WanTransformer.load(
            from: files.weights, configJSON: try ModelFiles.configJSON(files), backend: CPUBackend.shared, precision: precision)
        if let ffnSlabBytes { model.ffnSlabBytes = ffnSlabBytes }
        let io = try Fixtures.open("wan_dit/\(name)/io.safetensors")
        let inputs = WanTransformerInputs(
            latents: try io.tensor("hidden_states"), timestep: try io.tensor("timestep"),
            text: try io.tensor("encoder_hidden_states"),
            image: io.info("encoder_hidden_states_image") != nil ? try io.tensor("encoder_hidden_states_image") : nil)
        let recorder = WanTapRecorder()
        let sample = try model.forward(inputs, taps: recorder)
        let tolerance = precision == .f32 ? Tolerances.goldenF32RelL2 : Tolerances.goldenBF16RelL2
        var checked = 0
        for tap in WanTap.allCases {
            guard io.info(tap.rawValue) != nil else { continue }
            let actual = try XCTUnwrap(recorder.tensors[tap], "tap \(tap.rawValue) was not recorded")
            assertClose(actual, try io.tensor(tap.rawValue), relL2: tolerance, "\(name)/\(layout.rawValue)/\(precision.rawValue) \(tap.rawValue)")
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 6, "fixture \(name) should carry the stage taps")
        // RoPE tables: diffusers stores each angle twice ([1, L, 1, d], interleaved); ours keep one per pair.
        let latents = inputs.latents.shape
        let rope = try WanRoPE(headDim: model.config.headDim, frames: latents[2], height: latents[3] / 2, width: latents[4] / 2)
        for (ours, tapName) in [(rope.cos, "tap.rope_cos"), (rope.sin, "tap.rope_sin")] {
            let table = try io.tensor(tapName)
            let pairs = try table.viewed(as: [table.shape[1], table.shape[3]])
            assertClose(ours, try XCTUnwrap(pairs).sliced(axis: 1, start: 0, end: model.config.headDim, step: 2), relL2: Tolerances.opF32RelL2, "\(name) \(tapName)")
        }
        assertClose(sample, try io.tensor("sample"), relL2: tolerance, "\(name)/\(layout.rawValue)/\(precision.rawValue) sample")
    }

    func testT2VDiffusersLayoutF32() throws { try runCase("t2v", layout: .diffusers, precision: .f32) }
    func testT2VWanLayoutF32() throws { try runCase("t2v", layout: .wan, precision: .f32) }
    func testT2VDiffusersLayoutBF16() throws { try runCase("t2v", layout: .diffusers, precision: .bf16) }
    func testT2VWanLayoutBF16() throws { try runCase("t2v", layout: .wan, precision: .bf16) }
    func testI2VDiffusersLayoutF32() throws { try runCase("i2v", layout: .diffusers, precision: .f32) }
    func testI2VWanLayoutF32() throws { try runCase("i2v", layout: .wan, precision: .f32) }
    func testI2VDiffusersLayoutBF16() throws { try runCase("i2v", layout: .diffusers, precision: .bf16) }
    func testI2VWanLayoutBF16() throws { try runCase("i2v", layout: .wan, precision: .bf16) }
    func testOddGridDiffusersLayoutF32() throws { try runCase("odd", layout: .diffusers, precision: .f32) }
    func testOddGridWanLayoutF32() throws { try runCase("odd", layout: .wan, precision: .f32) }
    func testOddGridDiffusersLayoutBF16() throws { try runCase("odd", layout: .diffusers, precision: .bf16) }
    func testOddGridWanLayoutBF16() throws { try runCase("odd", layout: .wan, precision: .bf16) }
    // The FFN in slabs of tokens (a few KiB here, so the odd grid's tokens split unevenly into many slabs).
    func testFeedForwardInTokenSlabsF32() throws { try runCase("odd", layout: .diffusers, precision: .f32, ffnSlabBytes: 4096) }
    func testFeedForwardInTokenSlabsBF16() throws { try runCase("t2v", layout: .wan, precision: .bf16, ffnSlabBytes: 3000) }
}
