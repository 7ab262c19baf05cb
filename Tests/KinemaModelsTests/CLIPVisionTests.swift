import Foundation
import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN
import KinemaTestSupport
import XCTest

// The CLIP vision encoder (Wan I2V image encoder) against transformers' CLIPVisionModel
// hidden_states[-2] (fixtures by scripts/goldens/clip_goldens.py, Tests/Fixtures/clip/), in the diffusers
// `image_encoder/` layout and Wan's open-clip `.pth` layout, f32 and bf16; the two image preprocessing
// paths against CLIPImageProcessor (Pillow) and Wan's torch interpolate; strict weight accounting.

final class CLIPVisionTests: XCTestCase {
    enum Layout: String { case diffusers, wan }

    static let tiny = CLIPVisionConfig(
        imageSize: 56, patchSize: 14, hiddenSize: 32, intermediateSize: 64, numLayers: 4, numHeads: 4, eps: 1e-5, activation: .gelu)

    private func configJSON() throws -> (data: Data, origin: String) {
        let path = Fixtures.path("clip/image_encoder/config.json")
        return (try Data(contentsOf: URL(fileURLWithPath: path)), path)
    }

    private func load(_ layout: Layout, precision: Precision) throws -> CLIPVisionEncoder {
        switch layout {
        case .diffusers:
            return try CLIPVisionEncoder.load(
                from: try Checkpoints.open(Fixtures.path("clip/image_encoder")), configJSON: try configJSON(),
                backend: CPUBackend.shared, precision: precision)
        case .wan:
            // Wan's .pth has no config; the tiny fixture's is passed (the default is the ViT-H/14 preset).
            return try CLIPVisionEncoder.load(
                from: try Checkpoints.open(Fixtures.path("clip/wan/models_clip.pth")), config: Self.tiny,
                backend: CPUBackend.shared, precision: precision)
        }
    }

    private func runCase(_ layout: Layout, precision: Precision) throws {
        let model = try load(layout, precision: precision)
        XCTAssertEqual(model.config, Self.tiny)
        let io = try Fixtures.open("clip/io.safetensors")
        let recorder = CLIPVisionTapRecorder()
        let output = try model.forward(pixelValues: try io.tensor("pixel_values"), taps: recorder)
        let tolerance = precision == .f32 ? Tolerances.goldenF32RelL2 : Tolerances.goldenBF16RelL2
        let label = "\(layout.rawValue)/\(precision.rawValue)"
        for tap in CLIPVisionTap.allCases {
            let actual = try XCTUnwrap(recorder.tensors[tap], "tap \(tap.rawValue) was not recorded")
            assertClose(actual, try io.tensor(tap.rawValue), relL2: tolerance, "\(label) \(tap.rawValue)")
        }
        XCTAssertEqual(output.shape, [2, 17, 32])
        XCTAssertEqual(output.dtype, .f32)
        assertClose(output, try io.tensor("hidden_states_penultimate"), relL2: tolerance, "\(label) hidden_states[-2]")
        // callAsFunction is the same computation.
        assertClose(try model(pixelValues: try io.tensor("pixel_values")), output, relL2: 0, maxAbs: 0, "\(label) callAsFunction")
    }

    func testDiffusersLayoutF32() throws { try runCase(.diffusers, precision: .f32) }
    func testWanPthLayoutF32() throws { try runCase(.wan, precision: .f32) }
    func testDiffusersLayoutBF16() throws { try runCase(.diffusers, precision: .bf16) }
    func testWanPthLayoutBF16() throws { try runCase(.wan, precision: .bf16) }

    /// transformers 5 writes CLIPVisionModel without the `vision_model.` prefix; both spellings load.
    func testUnprefixedTransformersNamesLoad() throws {
        let source = try Checkpoints.open(Fixtures.path("clip/image_encoder"))
        var tensors: [String: Tensor] = [:]
        for name in source.names {
            XCTAssertTrue(name.hasPrefix("vision_model."), name)
            tensors[String(name.dropFirst("vision_model.".count))] = try source.tensor(name)
        }
        let model = try CLIPVisionEncoder.load(
            from: InMemoryTensors(tensors), configJSON: try configJSON(), backend: CPUBackend.shared, precision: .f32)
        let io = try Fixtures.open("clip/io.safetensors")
        assertClose(
            try model(pixelValues: try io.tensor("pixel_values")), try io.tensor("hidden_states_penultimate"),
            relL2: Tolerances.goldenF32RelL2, "unprefixed names")
    }

    func testConfigParsing() throws {
        XCTAssertEqual(try CLIPVisionConfig(json: try configJSON().data), Self.tiny)
        let preset = CLIPVisionConfig.vitH14
        XCTAssertEqual(
            [preset.imageSize, preset.patchSize, preset.hiddenSize, preset.intermediateSize, preset.numLayers, preset.numHeads],
            [224, 14, 1280, 5120, 32, 16])
        XCTAssertEqual(preset.sequenceLength, 257)
        XCTAssertEqual(preset.activation, .gelu)
        XCTAssertEqual(preset.eps, 1e-5)
        // transformers' default activation is quick_gelu; a full CLIPConfig is read from its vision_config.
        let nested = #"{"model_type": "clip", "vision_config": {"image_size": 28, "patch_size": 14, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2}}"#
        let parsed = try CLIPVisionConfig(json: Data(nested.utf8))
        XCTAssertEqual(parsed.activation, .quickGelu)
        XCTAssertEqual(parsed.sequenceLength, 5)
        let bad = [
            #"{"image_size": 30, "patch_size": 14, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2}"#,
            #"{"image_size": 28, "patch_size": 14, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 3}"#,
            #"{"image_size": 28, "patch_size": 14, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}"#,
            #"{"image_size": 28, "patch_size": 14, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "hidden_act": "relu"}"#,
            #"{"image_size": 28, "patch_size": 14, "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2}"#,
            #"{"model_type": "t5"}"#,
            #"[1, 2]"#,
        ]
        for text in bad {
            XCTAssertThrowsError(try CLIPVisionConfig(json: Data(text.utf8)), text)
        }
    }

    // MARK: - preprocessing

    func testPillowBicubicResizeIsExact() throws {
        let io = try Fixtures.open("clip/io.safetensors")
        for (name, size) in [("small", (74, 56)), ("large", (65, 56))] {
            let image = try ImageDecoder.decode(path: Fixtures.path("clip/\(name).png"))
            let resized = try CLIPImagePreprocessing.pillowBicubicResize(image, width: size.0, height: size.1)
            let expected = try io.tensor("resize56.\(name)")
            XCTAssertEqual(expected.shape, [size.1, size.0, 3])
            let reference = try expected.integers().map { UInt8($0) }
            let differing = zip(resized.pixels, reference).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(name): \(differing) of \(reference.count) bytes differ from Pillow")
        }
    }

    func testPixelValuesMatchCLIPImageProcessorAndWan() throws {
        let io = try Fixtures.open("clip/io.safetensors")
        let small = try ImageDecoder.decode(path: Fixtures.path("clip/small.png"))
        let large = try ImageDecoder.decode(path: Fixtures.path("clip/large.png"))
        XCTAssertEqual([small.width, small.height, large.width, large.height], [40, 30, 97, 83])
        let cases: [(String, RGBImage, Int, CLIPImagePreprocessing.Mode, Double)] = [
            ("pp.hf224.small", small, 224, .clipImageProcessor, Tolerances.clipProcessorMaxAbs),
            ("pp.hf56.small", small, 56, .clipImageProcessor, Tolerances.clipProcessorMaxAbs),
            ("pp.hf56.large", large, 56, .clipImageProcessor, Tolerances.clipProcessorMaxAbs),
            ("pp.wan56.small", small, 56, .wanOriginal, Tolerances.clipWanPreprocessMaxAbs),
            ("pp.wan56.large", large, 56, .wanOriginal, Tolerances.clipWanPreprocessMaxAbs),
        ]
        for (name, image, size, mode, maxAbs) in cases {
            let actual = try CLIPImagePreprocessing.pixelValues(from: image, size: size, mode: mode)
            XCTAssertEqual(actual.shape, [1, 3, size, size], name)
            assertClose(actual, try io.tensor(name), relL2: Tolerances.opF32RelL2, maxAbs: maxAbs, name)
        }
        // The default call is diffusers' recipe at 224.
        assertClose(
            try CLIPImagePreprocessing.pixelValues(from: small), try io.tensor("pp.hf224.small"), relL2: Tolerances.opF32RelL2,
            maxAbs: Tolerances.clipProcessorMaxAbs, "defaults")
    }

    func testPreprocessingRejectsBadImages() {
        let broken = RGBImage(width: 4, height: 4, pixels: [UInt8](repeating: 0, count: 10))
        XCTAssertThrowsError(try CLIPImagePreprocessing.pixelValues(from: broken))
        let empty = RGBImage(width: 0, height: 3, pixels: [])
        XCTAssertThrowsError(try CLIPImagePreprocessing.pixelValues(from: empty, mode: .wanOriginal))
        let fine = RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 9, count: 12))
        XCTAssertThrowsError(try CLIPImagePreprocessing.pixelValues(from: fine, size: 0))
    }

    // MARK: - errors

    func testWrongPixelShapesAreErrors() throws {
        let model = try load(.wan, precision: .f32)
        for shape in [[2, 3, 28, 28], [3, 56, 56], [1, 4, 56, 56], [1, 3, 56, 42]] {
            XCTAssertThrowsError(try model(pixelValues: try Tensor.zeros(shape))) { error in
                XCTAssertTrue("\(error)".contains("pixel values"), "\(error)")
            }
        }
        XCTAssertThrowsError(try model(pixelValues: try Tensor(integers: [Int64](repeating: 0, count: 3 * 56 * 56), shape: [1, 3, 56, 56])))
    }

    /// Missing keys (also in the skipped last block), wrong shapes and stray keys are reported together;
    /// the text tower and logit scale of Wan's file are ignored on purpose, anything else is not.
    func testMissingWrongAndUnusedWeightsAreReportedTogether() throws {
        let source = try Checkpoints.open(Fixtures.path("clip/wan/models_clip.pth"))
        var tensors: [String: Tensor] = [:]
        for name in source.names { tensors[name] = try source.tensor(name) }
        XCTAssertNotNil(tensors["textual.head.0.weight"])
        XCTAssertNotNil(tensors["log_scale"])
        tensors["visual.transformer.1.mlp.0.bias"] = nil
        tensors["visual.transformer.3.attn.proj.weight"] = nil  // last block: skipped, still required
        tensors["visual.post_norm.bias"] = nil
        tensors["visual.transformer.0.attn.to_qkv.weight"] = try Tensor.zeros([95, 32])
        tensors["visual.transformer.3.mlp.2.weight"] = try Tensor.zeros([32, 63])  // shape checked without loading
        tensors["visual.extra"] = try Tensor.zeros([2])
        XCTAssertThrowsError(
            try CLIPVisionEncoder.load(from: InMemoryTensors(tensors), config: Self.tiny, backend: CPUBackend.shared, precision: .f32)
        ) { error in
            guard case .weightAccounting(_, let missing, let unused, let wrong) = error as? KinemaError else {
                return XCTFail("expected weightAccounting, got \(error)")
            }
            XCTAssertEqual(missing, ["post_norm.bias", "transformer.1.mlp.0.bias", "transformer.3.attn.proj.weight"])
            XCTAssertEqual(unused, ["extra"])
            XCTAssertEqual(wrong.count, 2, "\(wrong)")
            XCTAssertTrue(wrong.contains { $0.hasPrefix("transformer.0.attn.to_qkv.weight") }, "\(wrong)")
            XCTAssertTrue(wrong.contains { $0.hasPrefix("transformer.3.mlp.2.weight") }, "\(wrong)")
        }
    }

    /// The built-in ViT-H/14 preset refuses a checkpoint of another size instead of misreading it.
    func testPresetRejectsOtherSizes() throws {
        XCTAssertThrowsError(
            try CLIPVisionEncoder.load(
                from: try Checkpoints.open(Fixtures.path("clip/wan/models_clip.pth")), backend: CPUBackend.shared, precision: .f32)
        ) { error in
            guard case .weightAccounting(_, _, _, let wrong) = error as? KinemaError else {
                return XCTFail("expected weightAccounting, got \(error)")
            }
            XCTAssertTrue(wrong.contains { $0.hasPrefix("patch_embedding.weight") }, "\(wrong)")
        }
    }
}
