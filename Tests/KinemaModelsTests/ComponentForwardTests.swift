import Foundation
import KinemaCore
import KinemaIO
import KinemaNN
import KinemaPipeline
import KinemaTestSupport
import XCTest

// `kinema forward` as a library call: files in, files out, clear errors.

final class ComponentForwardTests: XCTestCase {
    func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kinema-\(UUID().uuidString)-\(name)").path
    }

    func request(model: String, inputs: String, output: String, device: Device = .cpu) -> ComponentForwardRequest {
        ComponentForwardRequest(
            modelPath: model, component: .transformer, inputsPath: inputs, outputPath: output, precision: .f32, device: device)
    }

    func testForwardWritesTheReferenceSample() throws {
        for layout in ["diffusers", "wan"] {
            let output = temporaryPath("sample.safetensors")
            defer { try? FileManager.default.removeItem(atPath: output) }
            let report = try ComponentForward.run(
                request(model: Fixtures.path("wan_dit/odd/\(layout)"), inputs: Fixtures.path("wan_dit/odd/io.safetensors"), output: output))
            XCTAssertEqual(report.outputs.map(\.name), ["sample"])
            let written = try SafeTensors.open(output).tensor("sample")
            assertClose(written, try Fixtures.open("wan_dit/odd/io.safetensors").tensor("sample"), relL2: Tolerances.goldenF32RelL2, layout)
        }
    }

    func testTextEncoderAndVAEDecoderComponents() throws {
        // umT5: the io fixture doubles as the inputs file (input_ids, attention_mask).
        let output = temporaryPath("hidden.safetensors")
        defer { try? FileManager.default.removeItem(atPath: output) }
        var request = request(model: Fixtures.path("umt5/transformers"), inputs: Fixtures.path("umt5/io.safetensors"), output: output)
        request.component = .textEncoder
        _ = try ComponentForward.run(request)
        assertClose(
            try SafeTensors.open(output).tensor("last_hidden_state"), try Fixtures.open("umt5/io.safetensors").tensor("last_hidden_state"),
            relL2: Tolerances.goldenF32RelL2, "text_encoder")

        // VAE decoder on normalized latents, as the DiT produces them.
        let io = try Fixtures.open("wan_vae/io.safetensors")
        let inputs = temporaryPath("latents.safetensors")
        defer { try? FileManager.default.removeItem(atPath: inputs) }
        try SafeTensors.write(["latents": try io.tensor("v9.dec.latents")], to: inputs)
        var decode = self.request(model: Fixtures.path("wan_vae/diffusers"), inputs: inputs, output: output)
        decode.component = .vaeDecoder
        _ = try ComponentForward.run(decode)
        assertClose(try SafeTensors.open(output).tensor("sample"), try io.tensor("v9.sample"), relL2: Tolerances.goldenF32RelL2, "vae_decoder")
    }

    /// image_encoder: the CLIP io fixture doubles as the inputs file (pixel_values); the diffusers folder, the
    /// Wan .pth (with the fixture's CLIP config.json copied beside it) and a pipeline-style parent folder.
    func testImageEncoderComponent() throws {
        let expected = try Fixtures.open("clip/io.safetensors").tensor("hidden_states_penultimate")
        let output = temporaryPath("embeds.safetensors")
        defer { try? FileManager.default.removeItem(atPath: output) }
        let wanFolder = temporaryPath("wan")
        defer { try? FileManager.default.removeItem(atPath: wanFolder) }
        try FileManager.default.createDirectory(atPath: wanFolder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: Fixtures.path("clip/wan/models_clip.pth"),
            toPath: wanFolder + "/models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
        try FileManager.default.copyItem(atPath: Fixtures.path("clip/image_encoder/config.json"), toPath: wanFolder + "/config.json")
        for model in [Fixtures.path("clip/image_encoder"), Fixtures.path("clip"), wanFolder] {
            var request = request(model: model, inputs: Fixtures.path("clip/io.safetensors"), output: output)
            request.component = .imageEncoder
            let report = try ComponentForward.run(request)
            XCTAssertEqual(report.outputs.map(\.name), ["image_embeds"])
            XCTAssertEqual(report.outputs.first?.shape, [2, 17, 32])
            assertClose(try SafeTensors.open(output).tensor("image_embeds"), expected, relL2: Tolerances.goldenF32RelL2, model)
        }
        // A non-CLIP config.json beside Wan's .pth (an original Wan folder holds the DiT's) is not used:
        // the ViT-H/14 preset applies, which this tiny checkpoint does not fit.
        try FileManager.default.removeItem(atPath: wanFolder + "/config.json")
        try Data(#"{"model_type": "i2v", "dim": 32}"#.utf8).write(to: URL(fileURLWithPath: wanFolder + "/config.json"))
        var request = request(model: wanFolder, inputs: Fixtures.path("clip/io.safetensors"), output: output)
        request.component = .imageEncoder
        XCTAssertThrowsError(try ComponentForward.run(request)) { error in
            XCTAssertTrue("\(error)".contains("patch_embedding.weight"), "\(error)")
        }
    }

    func testMissingInputIsNamed() throws {
        let inputs = temporaryPath("inputs.safetensors")
        defer { try? FileManager.default.removeItem(atPath: inputs) }
        try SafeTensors.write(["hidden_states": try Tensor.zeros([1, 16, 1, 2, 2])], to: inputs)
        XCTAssertThrowsError(
            try ComponentForward.run(request(model: Fixtures.path("wan_dit/t2v/wan"), inputs: inputs, output: temporaryPath("out")))
        ) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("timestep") && text.contains("encoder_hidden_states"), text)
        }
    }

    func testWrongShapesGiveErrorsNotCrashes() throws {
        let inputs = temporaryPath("inputs.safetensors")
        defer { try? FileManager.default.removeItem(atPath: inputs) }
        // Odd latent width (not a multiple of the 2×2 patch) and a text width the model does not have.
        try SafeTensors.write(
            [
                "hidden_states": try Tensor.zeros([1, 16, 1, 4, 5]), "timestep": try Tensor([10], shape: [1]),
                "encoder_hidden_states": try Tensor.zeros([1, 3, 48]),
            ], to: inputs)
        XCTAssertThrowsError(
            try ComponentForward.run(request(model: Fixtures.path("wan_dit/t2v/wan"), inputs: inputs, output: temporaryPath("out")))
        ) { error in XCTAssertTrue("\(error)".contains("patch"), "\(error)") }
        try SafeTensors.write(
            [
                "hidden_states": try Tensor.zeros([1, 16, 1, 4, 4]), "timestep": try Tensor([10], shape: [1]),
                "encoder_hidden_states": try Tensor.zeros([1, 3, 4096]),
            ], to: inputs)
        XCTAssertThrowsError(
            try ComponentForward.run(request(model: Fixtures.path("wan_dit/t2v/wan"), inputs: inputs, output: temporaryPath("out")))
        ) { error in XCTAssertTrue("\(error)".contains("text context"), "\(error)") }
    }

    func testImageModelWithoutImageFeaturesIsAClearError() throws {
        let io = try Fixtures.open("wan_dit/i2v/io.safetensors")
        let inputs = temporaryPath("inputs.safetensors")
        defer { try? FileManager.default.removeItem(atPath: inputs) }
        try SafeTensors.write(
            [
                "hidden_states": try io.tensor("hidden_states"), "timestep": try io.tensor("timestep"),
                "encoder_hidden_states": try io.tensor("encoder_hidden_states"),
            ], to: inputs)
        XCTAssertThrowsError(
            try ComponentForward.run(request(model: Fixtures.path("wan_dit/i2v/diffusers"), inputs: inputs, output: temporaryPath("out")))
        ) { error in XCTAssertTrue("\(error)".contains("image"), "\(error)") }
    }

    func testMissingModelPathIsAClearError() {
        XCTAssertThrowsError(
            try ComponentForward.run(request(model: "/nonexistent/model", inputs: Fixtures.path("wan_dit/t2v/io.safetensors"), output: "/tmp/x"))
        ) { error in XCTAssertTrue("\(error)".contains("/nonexistent/model"), "\(error)") }
    }
}
