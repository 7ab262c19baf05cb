import Foundation
import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN
import KinemaTestSupport
import XCTest

// The Wan2.1 VAE against diffusers' AutoencoderKLWan (fixtures: scripts/goldens/vae_goldens.py): chunked
// encode and decode with every recorded stage tap, both checkpoint layouts, f32 and bf16.
// Cases: v9 = video [1, 3, 9, 16, 16] ↔ latents [1, 4, 3, 2, 2]; v13 = [1, 3, 13, 16, 24] ↔ [1, 4, 4, 2, 3].

final class WanVAEGoldenTests: XCTestCase {
    enum Layout: String { case diffusers, wan }

    static let backend = CPUBackend.shared

    static func configJSON() throws -> (data: Data, origin: String) {
        let path = Fixtures.path("wan_vae/diffusers/config.json")
        return (try Data(contentsOf: URL(fileURLWithPath: path)), path)
    }

    static func weights(_ layout: Layout) throws -> any TensorSource {
        switch layout {
        case .diffusers: return try Fixtures.open("wan_vae/diffusers/diffusion_pytorch_model.safetensors")
        case .wan: return try Fixtures.open("wan_vae/wan/Wan2.1_VAE.safetensors")
        }
    }

    /// The diffusers folder loads with its config.json; the original file (which has no config) with the
    /// configuration detected from its weights plus the latent statistics, which weights cannot carry.
    static func load(_ layout: Layout, precision: Precision) throws -> WanVAE {
        let source = try weights(layout)
        switch layout {
        case .diffusers:
            return try WanVAE.load(from: source, configJSON: try configJSON(), backend: backend, precision: precision)
        case .wan:
            let reference = try WanVAEConfig.parse(json: try configJSON().data, origin: "config.json")
            let detected = try WanVAEConfig.detect(
                info: source.info, keys: source.names, latentsMean: reference.latentsMean, latentsStd: reference.latentsStd)
            return try WanVAE.load(from: source, config: detected, backend: backend, precision: precision)
        }
    }

    func tolerance(_ precision: Precision) -> Double {
        precision == .f32 ? Tolerances.goldenF32RelL2 : Tolerances.vaeBF16RelL2
    }

    func runDecode(_ name: String, layout: Layout, precision: Precision) throws {
        let vae = try Self.load(layout, precision: precision)
        let io = try Fixtures.open("wan_vae/io.safetensors")
        let latents = try io.tensor("\(name).dec.latents")
        let label = "\(name)/\(layout.rawValue)/\(precision.rawValue)"
        assertClose(try vae.denormalize(latents), try io.tensor("\(name).dec.latents_raw"), relL2: Tolerances.opF32RelL2, "\(label) dec.latents_raw")
        let taps = WanVAETapRecorder()
        let video = try vae.decode(latents, taps: taps)
        var checked = 0
        for tap in ["dec.conv_in", "dec.mid_block", "dec.up_blocks.0", "dec.up_blocks.1", "dec.up_blocks.2", "dec.up_blocks.3", "dec.out"] {
            guard io.info("\(name).\(tap)") != nil else { continue }
            let actual = try XCTUnwrap(try taps.tensor(tap, backend: Self.backend), "tap \(tap) was not recorded")
            assertClose(actual, try io.tensor("\(name).\(tap)"), relL2: tolerance(precision), "\(label) \(tap)")
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 3)
        assertClose(video, try io.tensor("\(name).sample"), relL2: tolerance(precision), "\(label) sample")
        // The pipeline's path: chunks copied to one host tensor as they are decoded (no concatenation).
        let onHost = try vae.decodeToHost(latents)
        XCTAssertEqual(onHost.shape, video.shape, "\(label) decodeToHost shape")
        XCTAssertEqual(try onHost.floats(), try video.floats(), "\(label) decodeToHost equals decode")
    }

    func runEncode(_ name: String, layout: Layout, precision: Precision) throws {
        let vae = try Self.load(layout, precision: precision)
        let io = try Fixtures.open("wan_vae/io.safetensors")
        let video = try io.tensor("\(name).video")
        let label = "\(name)/\(layout.rawValue)/\(precision.rawValue)"
        let taps = WanVAETapRecorder()
        let mu = try vae.encode(video, output: .raw, taps: taps)
        for tap in ["enc.conv_in", "enc.down_blocks", "enc.mid_block", "enc.out", "enc.moments"] {
            guard io.info("\(name).\(tap)") != nil else { continue }
            let actual = try XCTUnwrap(try taps.tensor(tap, backend: Self.backend), "tap \(tap) was not recorded")
            assertClose(actual, try io.tensor("\(name).\(tap)"), relL2: tolerance(precision), "\(label) \(tap)")
        }
        assertClose(mu, try io.tensor("\(name).enc.mu"), relL2: tolerance(precision), "\(label) enc.mu")
        let normalized = try vae.encode(video)
        assertClose(normalized, try io.tensor("\(name).latents"), relL2: tolerance(precision), "\(label) latents")
        assertClose(try vae.normalize(try io.tensor("\(name).enc.mu")), try io.tensor("\(name).latents"), relL2: Tolerances.opF32RelL2, "\(label) normalize")
    }

    func testDecode9FramesDiffusersF32() throws { try runDecode("v9", layout: .diffusers, precision: .f32) }
    func testDecode9FramesWanF32() throws { try runDecode("v9", layout: .wan, precision: .f32) }
    func testDecode13FramesDiffusersF32() throws { try runDecode("v13", layout: .diffusers, precision: .f32) }
    func testDecode13FramesWanF32() throws { try runDecode("v13", layout: .wan, precision: .f32) }
    func testDecode9FramesDiffusersBF16() throws { try runDecode("v9", layout: .diffusers, precision: .bf16) }
    func testDecode13FramesWanBF16() throws { try runDecode("v13", layout: .wan, precision: .bf16) }

    func testEncode9FramesDiffusersF32() throws { try runEncode("v9", layout: .diffusers, precision: .f32) }
    func testEncode9FramesWanF32() throws { try runEncode("v9", layout: .wan, precision: .f32) }
    func testEncode13FramesDiffusersF32() throws { try runEncode("v13", layout: .diffusers, precision: .f32) }
    func testEncode13FramesWanF32() throws { try runEncode("v13", layout: .wan, precision: .f32) }
    func testEncode9FramesWanBF16() throws { try runEncode("v9", layout: .wan, precision: .bf16) }
    func testEncode13FramesDiffusersBF16() throws { try runEncode("v13", layout: .diffusers, precision: .bf16) }

    /// The streaming form hands out 1 frame, then 4 per latent frame, and together they are `decode`'s video.
    func testStreamingDecodeYieldsChunksInOrder() throws {
        let vae = try Self.load(.diffusers, precision: .f32)
        let io = try Fixtures.open("wan_vae/io.safetensors")
        let latents = try io.tensor("v9.dec.latents")
        var chunks: [Tensor] = []
        try vae.decode(latents) { chunks.append($0) }
        XCTAssertEqual(chunks.map { $0.shape }, [[1, 3, 1, 16, 16], [1, 3, 4, 16, 16], [1, 3, 4, 16, 16]])
        let joined = try Self.backend.concat(chunks, axis: 2)
        let comparison = try compare(joined, try vae.decode(latents))
        XCTAssertEqual(comparison.mismatchCount, 0, "\(comparison)")
    }

    /// Batches run together give each sample's own result (the caches are per sample along axis 0).
    func testBatchOfTwoMatchesSingleSamples() throws {
        let vae = try Self.load(.diffusers, precision: .f32)
        let io = try Fixtures.open("wan_vae/io.safetensors")
        let b = Self.backend
        let latents = try io.tensor("v9.dec.latents")
        let flipped = try b.affine(latents, scale: -0.5, shift: 0.25)
        let both = try vae.decode(try b.concat([latents, flipped], axis: 0))
        assertClose(try both.narrowed(axis: 0, start: 0, length: 1), try io.tensor("v9.sample"), relL2: Tolerances.goldenF32RelL2, "batch[0]")
        assertClose(try both.narrowed(axis: 0, start: 1, length: 1), try vae.decode(flipped), relL2: Tolerances.opF32RelL2, "batch[1]")
        let video = try io.tensor("v9.video")
        let pair = try vae.encode(try b.concat([try b.affine(video, scale: 0.5, shift: 0), video], axis: 0))
        assertClose(try pair.narrowed(axis: 0, start: 1, length: 1), try io.tensor("v9.latents"), relL2: Tolerances.goldenF32RelL2, "encode batch[1]")
    }

    /// Raw latents in, raw latents out: the scaling is exactly the pipelines' and nothing else differs.
    func testRawLatentScale() throws {
        let vae = try Self.load(.wan, precision: .f32)
        let io = try Fixtures.open("wan_vae/io.safetensors")
        let video = try vae.decode(try io.tensor("v9.dec.latents_raw"), input: .raw)
        assertClose(video, try io.tensor("v9.sample"), relL2: Tolerances.goldenF32RelL2, "decode(.raw)")
    }
}

/// Configuration, key layouts and error paths.
final class WanVAELoadingTests: XCTestCase {
    let backend = CPUBackend.shared

    func testDetectedConfigMatchesDiffusersConfig() throws {
        let json = try WanVAEGoldenTests.configJSON()
        let parsed = try WanVAEConfig.parse(json: json.data, origin: json.origin)
        XCTAssertEqual(parsed.baseDim, 4)
        XCTAssertEqual(parsed.zDim, 4)
        XCTAssertEqual(parsed.dimMult, [1, 2, 4, 4])
        XCTAssertEqual(parsed.temporalDownsample, [false, true, true])
        let source = try WanVAEGoldenTests.weights(.wan)
        let detected = try WanVAEConfig.detect(
            info: source.info, keys: source.names, latentsMean: parsed.latentsMean, latentsStd: parsed.latentsStd)
        XCTAssertEqual(detected, parsed)
        // Without statistics, a z ≠ 16 checkpoint cannot be used: say so rather than guess.
        XCTAssertThrowsError(try WanVAE.load(from: source, backend: backend, precision: .f32)) { error in
            guard case KinemaError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("latents_mean"), message)
        }
    }

    func testWan21DefaultsAreTheRealModel() throws {
        let config = try WanVAEConfig.parse(json: Data("{\"_class_name\": \"AutoencoderKLWan\"}".utf8), origin: "c.json")
        XCTAssertEqual(config, WanVAEConfig.wan21)
        XCTAssertEqual(config.spatialCompression, 8)
        XCTAssertEqual(config.temporalCompression, 4)
        XCTAssertEqual(config.temporalUpsample, [true, true, false])
    }

    /// Every diffusers key lands on exactly the original file's key set.
    func testDiffusersLayoutMapsOntoWanNames() throws {
        let diffusers = try WanVAEGoldenTests.weights(.diffusers).names
        let wan = Set(try WanVAEGoldenTests.weights(.wan).names)
        let layouts = WanVAEKeyLayouts.layouts(for: diffusers)
        XCTAssertEqual(layouts.first?.name, "diffusers")
        let mapped = diffusers.map { layouts[0].canonical($0) }
        XCTAssertEqual(Set(mapped), wan)
        XCTAssertEqual(mapped.count, wan.count)
        XCTAssertEqual(WanVAEKeyLayouts.layouts(for: Array(wan)).map(\.name), ["wan"])
        // The real Wan2.1 structure: decoder upsamples 0…14, resamples at 3, 7, 11.
        let real = WanVAEKeyLayouts.diffusers(stages: 4, numResBlocks: 2)
        XCTAssertEqual(real.canonical("decoder.up_blocks.1.resnets.0.conv_shortcut.weight"), "decoder.upsamples.4.shortcut.weight")
        XCTAssertEqual(real.canonical("decoder.up_blocks.2.upsamplers.0.resample.1.bias"), "decoder.upsamples.11.resample.1.bias")
        XCTAssertEqual(real.canonical("decoder.up_blocks.3.resnets.2.norm2.gamma"), "decoder.upsamples.14.residual.3.gamma")
        XCTAssertEqual(real.canonical("encoder.mid_block.attentions.0.to_qkv.weight"), "encoder.middle.1.to_qkv.weight")
        XCTAssertEqual(real.canonical("quant_conv.weight"), "conv1.weight")
        XCTAssertEqual(real.canonical("post_quant_conv.bias"), "conv2.bias")
        XCTAssertEqual(real.canonical("encoder.conv_in.weight"), "encoder.conv1.weight")
        XCTAssertEqual(real.canonical("decoder.norm_out.gamma"), "decoder.head.0.gamma")
    }

    /// The full-size Wan2.1 module tree consumes exactly the real checkpoint's tensors in both layouts
    /// (names and shapes from diffusers' AutoencoderKLWan(); stride-0 placeholders, so nothing is allocated),
    /// and the original layout's detected configuration is Wan2.1's.
    func testRealWan21KeySetsLoad() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("wan_vae/real_wan21_keys.json")))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for layout in ["diffusers", "wan"] {
            let shapes = try XCTUnwrap(root[layout] as? [String: [Int]], layout)
            XCTAssertEqual(shapes.count, 194)
            var tensors: [String: Tensor] = [:]
            for (name, shape) in shapes { tensors[name] = try Tensor.zeros([1]).expanded(to: shape) }
            let source = InMemoryTensors(tensors, origin: "real \(layout) keys")
            let vae = try WanVAE.load(
                from: source, config: layout == "diffusers" ? .wan21 : nil, backend: backend, precision: .f32)
            XCTAssertEqual(vae.config, .wan21)
        }
    }

    func testMissingAndExtraWeightsAreReportedTogether() throws {
        let source = try WanVAEGoldenTests.weights(.wan)
        var tensors: [String: Tensor] = [:]
        for name in source.names where name != "decoder.middle.1.proj.weight" { tensors[name] = try source.tensor(name) }
        tensors["decoder.extra.weight"] = try Tensor([1], shape: [1])
        let json = try WanVAEGoldenTests.configJSON()
        XCTAssertThrowsError(
            try WanVAE.load(from: InMemoryTensors(tensors, origin: "edited"), configJSON: json, backend: backend, precision: .f32)
        ) { error in
            guard case KinemaError.weightAccounting(_, let missing, let unused, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(missing, ["decoder.middle.1.proj.weight"])
            XCTAssertEqual(unused, ["decoder.extra.weight"])
        }
    }

    func testConfigErrors() throws {
        func parse(_ text: String) throws -> WanVAEConfig { try WanVAEConfig.parse(json: Data(text.utf8), origin: "bad.json") }
        XCTAssertThrowsError(try parse("[1, 2]")) { XCTAssertTrue("\($0)".contains("bad.json"), "\($0)") }
        XCTAssertThrowsError(try parse("{\"is_residual\": true}")) { error in
            guard case KinemaError.unsupported = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try parse("{\"z_dim\": 4}")) { error in
            // 16 default statistics for 4 channels.
            guard case KinemaError.badFile(_, _, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("latents_mean"), reason)
        }
        XCTAssertThrowsError(try parse("{\"base_dim\": \"wide\"}")) { error in
            guard case KinemaError.badFile(_, let location, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(location, "base_dim")
        }
        XCTAssertThrowsError(try parse("{\"temperal_downsample\": [false, true]}"))
        XCTAssertThrowsError(try parse("{\"attn_scales\": [1.0]}"))
        XCTAssertThrowsError(try parse("{\"base_dim\": 4000000000000000, \"dim_mult\": [1, 4000000000000000, 4, 4]}"))
        XCTAssertThrowsError(try parse("{\"dim_mult\": [1, 2.5, 4, 4]}")) { error in
            guard case KinemaError.badFile(_, let location, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(location, "dim_mult[1]")
        }
    }

    func testInputShapeErrors() throws {
        let vae = try WanVAEGoldenTests.load(.diffusers, precision: .f32)
        // Decode: wrong channel count, wrong rank, empty time axis.
        XCTAssertThrowsError(try vae.decode(try Tensor.zeros([1, 16, 2, 2, 2]))) { error in
            guard case KinemaError.shapeMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try vae.decode(try Tensor.zeros([4, 2, 2, 2])))
        XCTAssertThrowsError(try vae.decode(try Tensor.zeros([1, 4, 0, 2, 2])))
        // Encode: frame count not 1 + 4k, frame size not a multiple of 8, wrong channels.
        XCTAssertThrowsError(try vae.encode(try Tensor.zeros([1, 3, 6, 16, 16]))) { error in
            guard case KinemaError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("1 + 4"), message)
        }
        XCTAssertThrowsError(try vae.encode(try Tensor.zeros([1, 3, 5, 12, 16]))) { error in
            guard case KinemaError.invalidArgument = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try vae.encode(try Tensor.zeros([1, 4, 5, 16, 16])))
        XCTAssertThrowsError(try vae.encode(try Tensor(integers: [1, 2, 3], shape: [1, 3, 1, 1, 1])))
    }

    /// All-zero input pixels: the channel RMS norm must give 0, not NaN (F.normalize's 1e-12 floor).
    func testZeroVideoStaysFinite() throws {
        let vae = try WanVAEGoldenTests.load(.diffusers, precision: .f32)
        let latents = try vae.encode(try Tensor.zeros([1, 3, 1, 8, 8]))
        XCTAssertTrue(try latents.floats().allSatisfy(\.isFinite))
    }
}
