import Foundation
import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN
import KinemaPipeline
import KinemaTestSupport
import XCTest

// Strict loading: every checkpoint problem is reported at once, with names, and never crashes.

final class WanLoadingTests: XCTestCase {
    /// The t2v fixture's weights in `layout`, as an editable dictionary.
    func weights(_ layout: String) throws -> [String: Tensor] {
        let source = try Fixtures.open("wan_dit/t2v/\(layout)/diffusion_pytorch_model.safetensors")
        var result: [String: Tensor] = [:]
        for name in source.names { result[name] = try source.tensor(name) }
        return result
    }

    func config(_ layout: String) throws -> (data: Data, origin: String) {
        let path = Fixtures.path("wan_dit/t2v/\(layout)/config.json")
        return (try Data(contentsOf: URL(fileURLWithPath: path)), path)
    }

    func testMissingUnusedAndWrongShapeAreReportedTogether() throws {
        var tensors = try weights("wan")
        tensors["blocks.1.ffn.0.bias"] = nil
        tensors["blocks.0.unexpected.weight"] = try Tensor([1, 2], shape: [2])
        tensors["head.modulation"] = try Tensor.zeros([1, 3, 64])
        let source = InMemoryTensors(tensors, origin: "edited.safetensors")
        XCTAssertThrowsError(
            try WanTransformer.load(from: source, configJSON: try config("wan"), backend: CPUBackend.shared, precision: .f32)
        ) { error in
            guard case let KinemaError.weightAccounting(_, missing, unused, wrong) = error else {
                return XCTFail("expected a weight accounting error, got \(error)")
            }
            XCTAssertEqual(missing, ["blocks.1.ffn.0.bias"])
            XCTAssertEqual(unused, ["blocks.0.unexpected.weight"])
            XCTAssertEqual(wrong.count, 1)
            XCTAssertTrue(wrong[0].contains("head.modulation"), wrong[0])
            let text = "\(error)"
            XCTAssertTrue(text.contains("edited.safetensors") && text.contains("missing keys") && text.contains("unused keys"), text)
        }
    }

    func testWrapperPrefixIsStripped() throws {
        let prefixed = Dictionary(uniqueKeysWithValues: try weights("wan").map { ("model.diffusion_model." + $0.key, $0.value) })
        let model = try WanTransformer.load(
            from: InMemoryTensors(prefixed), configJSON: try config("wan"), backend: CPUBackend.shared, precision: .f32)
        XCTAssertEqual(model.config.numLayers, 2)
    }

    func testDetectedConfigMatchesBothConfigFiles() throws {
        for layout in ["diffusers", "wan"] {
            let store = try WeightStore(
                source: InMemoryTensors(try weights(layout)), backend: CPUBackend.shared, component: "test",
                layouts: WanKeyLayouts.all)
            XCTAssertEqual(store.layout.name, layout)
            let parsed = try WanConfig.parse(json: try config(layout).data, origin: layout)
            let detected = try WanConfig.detect(info: store.info, keys: store.keys, headDim: parsed.headDim)
            XCTAssertEqual(detected, parsed, layout)
        }
    }

    func testBothLayoutsMapToTheSameCanonicalKeys() throws {
        let diffusers = try WeightStore(
            source: InMemoryTensors(try weights("diffusers")), backend: CPUBackend.shared, component: "d", layouts: WanKeyLayouts.all)
        let wan = try WeightStore(
            source: InMemoryTensors(try weights("wan")), backend: CPUBackend.shared, component: "w", layouts: WanKeyLayouts.all)
        XCTAssertEqual(diffusers.keys, wan.keys)
    }

    func testCollidingNamesAreAnError() throws {
        var tensors = try weights("diffusers")
        // Both spellings of the same weight in one file.
        let wanName = "blocks.0.self_attn.q.weight"
        tensors[wanName] = try XCTUnwrap(tensors["blocks.0.attn1.to_q.weight"])
        XCTAssertThrowsError(
            try WeightStore(source: InMemoryTensors(tensors), backend: CPUBackend.shared, component: "t", layouts: WanKeyLayouts.all)
        ) { error in
            XCTAssertTrue("\(error)".contains(wanName), "\(error)")
        }
    }

    func testBadConfigJSONGivesAClearError() throws {
        for text in ["[1, 2]", "{\"dim\": \"wide\", \"ffn_dim\": 1, \"num_heads\": 1, \"num_layers\": 1}", "{}", "{\"num_attention_heads\": 3, \"attention_head_dim\": 16}", "not json"] {
            XCTAssertThrowsError(try WanConfig.parse(json: Data(text.utf8), origin: "config.json"), text) { error in
                guard case KinemaError.badFile(let path, _, _) = error else { return XCTFail("\(text): \(error)") }
                XCTAssertEqual(path, "config.json")
            }
        }
    }

    func testUnrecognizedKeysGiveAClearError() throws {
        let source = InMemoryTensors(["encoder.weight": try Tensor([1], shape: [1])], origin: "vae.safetensors")
        XCTAssertThrowsError(try WanTransformer.load(from: source, backend: CPUBackend.shared, precision: .f32)) { error in
            XCTAssertTrue("\(error)".contains("vae.safetensors"), "\(error)")
        }
    }
}
