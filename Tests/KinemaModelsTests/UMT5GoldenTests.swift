import Foundation
import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN
import KinemaTestSupport
import XCTest

// The umT5 encoder against transformers' UMT5EncoderModel (fixtures by scripts/goldens/umt5_goldens.py,
// Tests/Fixtures/umt5/): stage taps and final states of a padded batch, for the transformers layout
// (config.json + safetensors) and Wan's original layout (a torch.save .pth read by PthFile), in f32 and
// bf16; the Wan-style padded prompt embedding; the relative-position bucket function over every offset
// of a 512-token prompt.

final class UMT5GoldenTests: XCTestCase {
    enum Layout: String { case transformers, wan }

    private func load(_ layout: Layout, precision: Precision) throws -> UMT5Encoder {
        switch layout {
        case .transformers:
            let folder = Fixtures.path("umt5/transformers")
            let config = (folder as NSString).appendingPathComponent("config.json")
            return try UMT5Encoder.load(
                from: try Checkpoints.open(folder),
                configJSON: (try Data(contentsOf: URL(fileURLWithPath: config)), config),
                backend: CPUBackend.shared, precision: precision)
        case .wan:
            // No config: detected from the weights (max distance 128 and eps 1e-6 are Wan's).
            return try UMT5Encoder.load(
                from: try Checkpoints.open(Fixtures.path("umt5/wan/models_t5_umt5.pth")), backend: CPUBackend.shared,
                precision: precision)
        }
    }

    private func runCase(_ layout: Layout, precision: Precision) throws {
        let model = try load(layout, precision: precision)
        XCTAssertEqual(model.config, UMT5Config(vocabSize: 128, dModel: 32, dKV: 8, dFF: 64, numLayers: 2, numHeads: 4))
        let io = try Fixtures.open("umt5/io.safetensors")
        let recorder = UMT5TapRecorder()
        let output = try model.forward(ids: try io.tensor("input_ids"), mask: try io.tensor("attention_mask"), taps: recorder)
        let tolerance = precision == .f32 ? Tolerances.goldenF32RelL2 : Tolerances.goldenBF16RelL2
        let label = "\(layout.rawValue)/\(precision.rawValue)"
        for tap in UMT5Tap.allCases {
            let actual = try XCTUnwrap(recorder.tensors[tap], "tap \(tap.rawValue) was not recorded")
            assertClose(actual, try io.tensor(tap.rawValue), relL2: tolerance, "\(label) \(tap.rawValue)")
        }
        assertClose(output, try io.tensor("last_hidden_state"), relL2: tolerance, "\(label) last_hidden_state")

        let long = try model.forward(ids: try io.tensor("long.input_ids"))
        assertClose(long, try io.tensor("long.last_hidden_state"), relL2: tolerance, "\(label) 300 tokens, no mask")

        let ids = try io.tensor("prompt.input_ids").integers().map { Int($0) }
        let mask = try io.tensor("prompt.attention_mask").integers().map { Int($0) }
        let prompt = try model.encodePrompt(ids: ids, mask: mask)
        let expected = try io.tensor("prompt.embeds")
        assertClose(prompt, expected, relL2: tolerance, "\(label) prompt embedding")
        // The padding rows are exact zeros, as diffusers writes them.
        let tail = try prompt.narrowed(axis: 1, start: 23, length: 512 - 23).floats()
        XCTAssertTrue(tail.allSatisfy { $0 == 0 }, "\(label): padding rows must be zero")
    }

    func testTransformersLayoutF32() throws { try runCase(.transformers, precision: .f32) }
    func testWanPthLayoutF32() throws { try runCase(.wan, precision: .f32) }
    func testTransformersLayoutBF16() throws { try runCase(.transformers, precision: .bf16) }
    func testWanPthLayoutBF16() throws { try runCase(.wan, precision: .bf16) }

    /// A non-prefix mask takes the full-sequence path; it must agree with diffusers' recipe too
    /// (rows beyond the count are zero, the kept rows are those of a masked full-length run).
    func testPromptWithMaskPathAgreesWithTrimmedPath() throws {
        let model = try load(.wan, precision: .f32)
        let io = try Fixtures.open("umt5/io.safetensors")
        let ids = try io.tensor("prompt.input_ids").integers().map { Int($0) }
        let mask = try io.tensor("prompt.attention_mask").integers().map { Int($0) }
        let short = Array(ids.prefix(64))
        let shortMask = Array(mask.prefix(64))
        let trimmed = try model.encodePrompt(ids: short, mask: shortMask)
        let full = try model.forward(
            ids: try Tensor(integers: short.map(Int64.init), shape: [1, 64]),
            mask: try Tensor(integers: shortMask.map(Int64.init), shape: [1, 64]))
        assertClose(
            try trimmed.narrowed(axis: 1, start: 0, length: 23), try full.narrowed(axis: 1, start: 0, length: 23),
            relL2: Tolerances.goldenF32RelL2, "trimmed vs masked full run")
    }

    /// The encoder caches the bucket one-hot of the last two lengths: lengths that hit, miss and were
    /// evicted (300, 23, 7, then 300 again) must give the same states as a fresh encoder.
    func testRepeatedEncodesAcrossLengthsMatchAFreshEncoder() throws {
        let model = try load(.wan, precision: .f32)
        let io = try Fixtures.open("umt5/io.safetensors")
        let long = try io.tensor("long.input_ids")
        let first = try model.forward(ids: long)
        for length in [23, 7, 23] {
            let ids = try long.narrowed(axis: 1, start: 0, length: length)
            XCTAssertEqual(try model.forward(ids: ids).floats(), try load(.wan, precision: .f32).forward(ids: ids).floats(), "length \(length)")
        }
        XCTAssertEqual(try model.forward(ids: long).floats(), try first.floats(), "length 300 after eviction")
        assertClose(first, try io.tensor("long.last_hidden_state"), relL2: Tolerances.goldenF32RelL2, "300 tokens")
    }

    func testBucketsMatchTransformersForEveryOffset() throws {
        let io = try Fixtures.open("umt5/io.safetensors")
        let offsets = try io.tensor("bucket.relative_position").integers()
        let expected = try io.tensor("bucket.index").integers()
        XCTAssertEqual(offsets.count, 1023)
        for (offset, bucket) in zip(offsets, expected) {
            XCTAssertEqual(
                umt5RelativePositionBucket(Int(offset), numBuckets: 32, maxDistance: 128), Int(bucket), "offset \(offset)")
        }
    }

    func testBadInputsAreErrors() throws {
        let model = try load(.wan, precision: .f32)
        XCTAssertThrowsError(try model.forward(ids: try Tensor(integers: [1, 128], shape: [1, 2]))) { error in
            XCTAssertTrue("\(error)".contains("outside the vocabulary"), "\(error)")
        }
        XCTAssertThrowsError(try model.forward(ids: try Tensor(integers: [1, -1], shape: [1, 2])))
        XCTAssertThrowsError(try model.forward(ids: try Tensor([1, 2], shape: [1, 2])))
        XCTAssertThrowsError(try model.forward(ids: try Tensor(integers: [1, 2], shape: [1, 2]), mask: try Tensor(integers: [1], shape: [1, 1])))
        XCTAssertThrowsError(try model.encodePrompt(ids: [1, 2], mask: [1]))
        XCTAssertThrowsError(try model.encodePrompt(ids: [], mask: []))
    }

    func testMissingAndWrongWeightsAreReportedTogether() throws {
        let source = try Checkpoints.open(Fixtures.path("umt5/wan/models_t5_umt5.pth"))
        var tensors: [String: Tensor] = [:]
        for name in source.names where name != "blocks.1.ffn.fc1.weight" { tensors[name] = try source.tensor(name) }
        tensors["blocks.0.attn.q.weight"] = try Tensor.zeros([31, 32])
        tensors["blocks.0.extra.weight"] = try Tensor.zeros([2])
        let config = UMT5Config(vocabSize: 128, dModel: 32, dKV: 8, dFF: 64, numLayers: 2, numHeads: 4)
        XCTAssertThrowsError(try UMT5Encoder.load(from: InMemoryTensors(tensors), config: config, backend: CPUBackend.shared, precision: .f32)) { error in
            guard case .weightAccounting(_, let missing, let unused, let wrong) = error as? KinemaError else {
                return XCTFail("expected weightAccounting, got \(error)")
            }
            XCTAssertEqual(missing, ["blocks.1.ffn.fc1.weight"])
            XCTAssertEqual(unused, ["blocks.0.extra.weight"])
            XCTAssertEqual(wrong.count, 1)
        }
    }

    func testConfigParsing() throws {
        let good = Data(#"{"model_type":"umt5","vocab_size":10,"d_model":8,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4}"#.utf8)
        let parsed = try UMT5Config.parse(json: good, origin: "c.json")
        XCTAssertEqual(parsed, UMT5Config(vocabSize: 10, dModel: 8, dKV: 2, dFF: 16, numLayers: 1, numHeads: 4))
        for bad in [#"{"model_type":"t5","vocab_size":10,"d_model":8,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4}"#,
                    #"{"vocab_size":10,"d_model":8,"d_kv":2,"d_ff":16,"num_layers":1}"#,
                    #"{"vocab_size":10,"d_model":8,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4,"feed_forward_proj":"relu"}"#,
                    #"{"vocab_size":10.5,"d_model":8,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4}"#,
                    #"{"vocab_size":10,"d_model":0,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4}"#, "[1]"] {
            XCTAssertThrowsError(try UMT5Config.parse(json: Data(bad.utf8), origin: "c.json"), bad)
        }
    }
}
