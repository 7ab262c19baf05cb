import Foundation
import KinemaCore
import XCTest

@testable import KinemaCUDA

// cuDNN without a GPU: the library loads, and every tensor and operation descriptor of the attention graph
// and the convolution descriptors finalize (cuDNN validates dims, strides, types and modes there). Building
// the operation graph and plans needs a GPU handle; `kinema doctor` and scripts/device/cudnn_probe.sh cover
// that part. Skipped where no libcudnn.so.9 is found (KINEMA_CUDA_LIB_PATH or a pip nvidia/cudnn wheel).
final class CUDNNGraphTests: XCTestCase {
    private func openCUDNN() throws -> CUDNN {
        var folders: [String] = []
        if let custom = ProcessInfo.processInfo.environment["KINEMA_CUDA_LIB_PATH"] { folders.append(custom) }
        for root in ["/opt/refenv/lib", "/usr/local/lib", "/usr/lib"] {
            let pythons = (try? FileManager.default.contentsOfDirectory(atPath: root))?.filter { $0.hasPrefix("python3") } ?? []
            for python in pythons.sorted() {
                for site in ["site-packages", "dist-packages"] { folders.append("\(root)/\(python)/\(site)/nvidia/cudnn/lib") }
            }
        }
        guard let folder = folders.first(where: { FileManager.default.fileExists(atPath: $0 + "/libcudnn.so.9") }) else {
            throw XCTSkip("no libcudnn.so.9 on this machine")
        }
        return try CUDNN(context: nil, options: RuntimeOptions(environment: ["KINEMA_CUDA_LIB_PATH": folder]))
    }

    private func key(lq: Int, lk: Int, d: Int) -> CUDNNAttention.Key {
        // [B, L, H, D] memory seen as [B, H, L, D] (what splitHeads produces), 2 batches, 12 heads.
        let (b, h) = (2, 12)
        func strides(_ length: Int) -> [Int] { [length * h * d, d, h * d, 1] }
        return CUDNNAttention.Key(
            batch: b, heads: h, lq: lq, lk: lk, d: d, dv: d, q: strides(lq), k: strides(lk), v: strides(lk), dtype: .bf16,
            alignment: [16, 16, 16, 16])
    }

    func testAttentionGraphDescriptorsFinalize() throws {
        let api = try openCUDNN()
        XCTAssertGreaterThanOrEqual(api.version, 90000)
        XCTAssertNil(api.handle)
        let attention = CUDNNAttention(api: api)
        let expected: [CUDNNAttention.Variant: Int] = [.compositeWithStats: 10, .composite: 8, .unifiedSoftmax: 4]
        for variant in CUDNNAttention.Variant.allCases {
            if variant == .unifiedSoftmax && api.version < 92100 { continue }
            for (lq, lk, d) in [(32760, 32760, 128), (32760, 512, 128), (300, 257, 64)] {
                let builder = CUDNNGraphBuilder(api)
                try attention.lower(key(lq: lq, lk: lk, d: d), variant: variant, into: builder)
                XCTAssertEqual(builder.operations.count, expected[variant], "\(variant) Lq \(lq) Lk \(lk) D \(d)")
            }
        }
    }

    func testGraphConvolutionDescriptorsFinalizeInBothLayouts() throws {
        let api = try openCUDNN()
        // The VAE's full-resolution layer: x [1, 96, 6, 480, 832], w [96, 96, 3, 3, 3], y [1, 96, 4, 480, 832].
        let (x, w, y) = ([1, 96, 6, 480, 832], [96, 96, 3, 3, 3], [1, 96, 4, 480, 832])
        func strides(_ s: [Int], channelsLast: Bool) -> [Int] {
            channelsLast ? [s[2] * s[3] * s[4] * s[1], 1, s[3] * s[4] * s[1], s[4] * s[1], s[1]]
                : [s[1] * s[2] * s[3] * s[4], s[2] * s[3] * s[4], s[3] * s[4], s[4], 1]
        }
        for channelsLast in [false, true] {
            let builder = CUDNNGraphBuilder(api)
            let tx = try builder.tensor("x", dims: x, strides: strides(x, channelsLast: channelsLast), dtype: CUDNNCode.bfloat16, id: 1)
            let tw = try builder.tensor("w", dims: w, strides: strides(w, channelsLast: channelsLast), dtype: CUDNNCode.bfloat16, id: 2)
            let ty = try builder.tensor("y", dims: y, strides: strides(y, channelsLast: channelsLast), dtype: CUDNNCode.bfloat16, id: 3)
            try builder.convolutionForward("vae", x: tx.descriptor, w: tw.descriptor, y: ty.descriptor, pre: [0, 1, 1], post: [0, 1, 1], stride: [1, 1, 1])
            XCTAssertEqual(builder.operations.count, 1)
        }
        // A padding list that disagrees with SPATIAL_DIMS is cuDNN's to reject, with its status in the error.
        let builder = CUDNNGraphBuilder(api)
        let tx = try builder.tensor("x", dims: x, strides: strides(x, channelsLast: false), dtype: CUDNNCode.bfloat16, id: 1)
        let tw = try builder.tensor("w", dims: w, strides: strides(w, channelsLast: false), dtype: CUDNNCode.bfloat16, id: 2)
        let ty = try builder.tensor("y", dims: y, strides: strides(y, channelsLast: false), dtype: CUDNNCode.bfloat16, id: 3)
        XCTAssertThrowsError(
            try builder.convolutionForward("bad", x: tx.descriptor, w: tw.descriptor, y: ty.descriptor, pre: [0, 1], post: [0, 1, 1], stride: [1, 1, 1]))
    }

    func testChannelsLastConvolutionGraphsFinalize() throws {
        let api = try openCUDNN()
        let convolution = CUDNNChannelsLastConvolution(api: api)
        typealias Key = CUDNNChannelsLastConvolution.Key
        func key(_ x: [Int], _ w: [Int], stride: [Int], padding: [Int], bias: Bool, residual: Bool, dtype: DType = .bf16) -> Key {
            Key(input: x, filter: w, stride: stride, padding: padding, dtype: dtype, bias: bias, residual: residual, fusion: true,
                alignment: [16, 16, 16, bias ? 16 : 0, residual ? 16 : 0])
        }
        // The decoder's full-resolution causal conv with bias and residual, conv_in (3 channels, 4-byte
        // aligned), the 2-D downsample (stride [1, 2, 2]), the temporal downsample (stride [2, 1, 1]).
        var decoder = key([1, 6, 480, 832, 96], [96, 3, 3, 3, 96], stride: [1, 1, 1], padding: [0, 1, 1], bias: true, residual: true)
        XCTAssertEqual(decoder.output, [1, 4, 480, 832, 96])
        var convIn = key([1, 3, 480, 832, 3], [96, 3, 3, 3, 3], stride: [1, 1, 1], padding: [0, 1, 1], bias: true, residual: false, dtype: .f32)
        convIn.alignment = [4, 4, 16, 16, 0]
        let downsample = key([1, 4, 481, 833, 96], [96, 1, 3, 3, 96], stride: [1, 2, 2], padding: [0, 0, 0], bias: true, residual: false)
        XCTAssertEqual(downsample.output, [1, 4, 240, 416, 96])
        let time = key([1, 5, 60, 104, 384], [384, 3, 1, 1, 384], stride: [2, 1, 1], padding: [0, 0, 0], bias: false, residual: true)
        XCTAssertEqual(time.output, [1, 2, 60, 104, 384])
        let expected: [(Key, fused: Int, alone: Int)] = [(decoder, 3, 1), (convIn, 2, 1), (downsample, 2, 1), (time, 2, 1)]
        for (problem, fused, alone) in expected {
            for (fusion, count) in [(true, fused), (false, alone)] {
                let builder = CUDNNGraphBuilder(api)
                try convolution.lower(problem, fused: fusion, into: builder)
                XCTAssertEqual(builder.operations.count, count, "\(problem.input) fused \(fusion)")
            }
        }
        // A key whose lists have the wrong length is refused before cuDNN sees it.
        decoder.alignment = [16, 16]
        XCTAssertThrowsError(try convolution.lower(decoder, fused: true, into: CUDNNGraphBuilder(api)))
        // f32 keeps to FMA engines; bf16 takes any.
    }

    func testRankOneScaleIsRejectedWithCUDNNsReason() throws {
        let api = try openCUDNN()
        let builder = CUDNNGraphBuilder(api)
        XCTAssertThrowsError(try CUDNNAttention(api: api).lower(key(lq: 64, lk: 64, d: 64), variant: .composite, scalarRank: 1, into: builder)) {
            XCTAssertTrue("\($0)".contains("attn_scale") && "\($0)".contains("CUDNN_STATUS"), "\($0)")
        }
    }

    func testAttentionRejectsMismatchedDescriptorsWithCUDNNText() throws {
        let api = try openCUDNN()
        let builder = CUDNNGraphBuilder(api)
        let a = try builder.tensor("A", dims: [1, 1, 4, 8], strides: [32, 32, 8, 1], dtype: CUDNNCode.bfloat16, id: 1)
        // Wrong rank for the strides: cuDNN refuses at finalize, and the error names the call and the status.
        XCTAssertThrowsError(try builder.tensor("bad", dims: [1, 1, 4, 8], strides: [32, 8, 1], dtype: CUDNNCode.bfloat16, id: 2)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("cuDNN") && text.contains("CUDNN_STATUS"), text)
        }
        _ = a
    }

    func testConvolutionDescriptorsFinalize() throws {
        let api = try openCUDNN()
        let convolution = try CUDNNConvolution(api: api)
        // The Wan VAE decoder's widest causal conv at 480×832: 96 → 96 channels, 3×3×3, spatial padding 1.
        let key = CUDNNConvolution.Key(input: [1, 96, 3, 480, 832], filter: [96, 96, 3, 3, 3], stride: [1, 1, 1], padding: [0, 1, 1], dtype: .bf16)
        _ = try convolution.descriptors(key, dtype: CUDNNCode.bfloat16, outputShape: [1, 96, 1, 480, 832])
        let planar = CUDNNConvolution.Key(input: [1, 5, 1, 10, 14], filter: [7, 5, 1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1], dtype: .f32)
        _ = try convolution.descriptors(planar, dtype: CUDNNCode.float, outputShape: [1, 7, 1, 5, 7])
    }

    func testLibraryChoiceParsing() throws {
        XCTAssertEqual(try LibraryChoice.parse(nil, variable: "KINEMA_ATTENTION"), .auto)
        XCTAssertEqual(try LibraryChoice.parse("CUDNN", variable: "KINEMA_ATTENTION"), .cudnn)
        XCTAssertEqual(try LibraryChoice.parse("kinema", variable: "KINEMA_CONV"), .kinema)
        XCTAssertThrowsError(try LibraryChoice.parse("fast", variable: "KINEMA_ATTENTION")) { error in
            XCTAssertTrue("\(error)".contains("KINEMA_ATTENTION=fast"), "\(error)")
        }
        // wgmma is an attention kernel: accepted for KINEMA_ATTENTION only.
        XCTAssertEqual(try LibraryChoice.parse("wgmma", variable: "KINEMA_ATTENTION", allowsWGMMA: true), .wgmma)
        XCTAssertThrowsError(try LibraryChoice.parse("wgmma", variable: "KINEMA_CONV")) { error in
            XCTAssertTrue("\(error)".contains("KINEMA_CONV=wgmma"), "\(error)")
        }
    }

    func testCUDNNLibraryDescriptionWithoutGPU() {
        let missing = cudnnLibraryDescription(options: RuntimeOptions(environment: ["KINEMA_CUDA_LIB_PATH": "/nonexistent"]))
        // Either found through the standard search or a clear "not found" line naming where it looked.
        XCTAssertTrue(missing.contains("libcudnn.so.9") || missing.hasPrefix("9."), missing)
    }
}
