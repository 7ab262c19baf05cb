import Foundation
import KinemaCore
import XCTest

@testable import KinemaCUDA

// Every NVRTC kernel source Kinema generates, compiled for Hopper (sm_90a) and Ampere (sm_80) with the
// options the kernel cache uses — no GPU needed, only libnvrtc (a pip nvidia/cu13 or cuda_nvrtc wheel, or
// KINEMA_CUDA_LIB_PATH). Catches syntax and type errors in kernels before a GPU run; whether they compute
// the right numbers is `kinema doctor`'s job on the GPU. Skipped where no libnvrtc is found.
final class KernelCompileTests: XCTestCase {
    private func openNVRTC() throws -> NVRTCAPI {
        var folders: [String] = []
        if let custom = ProcessInfo.processInfo.environment["KINEMA_CUDA_LIB_PATH"] { folders.append(custom) }
        for root in ["/opt/refenv/lib", "/usr/local/lib", "/usr/lib", "/opt/torch/.venv/lib"] {
            let pythons = (try? FileManager.default.contentsOfDirectory(atPath: root))?.filter { $0.hasPrefix("python3") } ?? []
            for python in pythons.sorted() {
                for site in ["site-packages", "dist-packages"] {
                    for component in ["cu13", "cuda_nvrtc"] { folders.append("\(root)/\(python)/\(site)/nvidia/\(component)/lib") }
                }
            }
        }
        let names = ["libnvrtc.so.13", "libnvrtc.so.12"]
        guard let folder = folders.first(where: { folder in names.contains { FileManager.default.fileExists(atPath: folder + "/" + $0) } }) else {
            throw XCTSkip("no libnvrtc on this machine")
        }
        return try NVRTCAPI(options: RuntimeOptions(environment: ["KINEMA_CUDA_LIB_PATH": folder]))
    }

    /// (label, source) for every kernel family and the dtypes the backend instantiates it with.
    private var sources: [(String, String)] {
        let floats: [DType] = [.f32, .bf16, .f16]
        var all: [(String, String)] = []
        // (Integer and fp8 casts run on the host: CUDABackend.cast only instantiates float ↔ float.)
        for input in floats {
            for output in floats { all.append(("cast \(input)→\(output)", ElementwiseKernels.cast(from: input, to: output))) }
        }
        for bytes in [1, 2, 4, 8, 16] {
            all.append(("copyRaw \(bytes)", ElementwiseKernels.copyRaw(elementBytes: bytes)))
            all.append(("gatherRows \(bytes)", ElementwiseKernels.gatherRows(elementBytes: bytes)))
        }
        for a in floats {
            all.append(("unary \(a)", ElementwiseKernels.unary(a)))
            all.append(("norms \(a)", RowKernels.norms(a)))
            all.append(("attention \(a)", MatrixKernels.attention(a)))
            all.append(("rmsNormRope \(a)", FusedKernels.rmsNormRope(a)))
            all.append(("channelRMSNorm \(a)", FusedKernels.channelRMSNorm(a)))
            all.append(("biasResidual \(a)", ElementwiseKernels.biasResidual(a)))
            for b in floats {
                all.append(("modulatedLayerNorm \(a)→\(b)", FusedKernels.modulatedLayerNorm(a, out: b)))
                all.append(("gatedResidual \(a), \(b)", FusedKernels.gatedResidual(a, b)))
                all.append(("conv3d \(a), \(b)", MatrixKernels.conv3d(a, b)))
                for out in floats {
                    all.append(("binary \(a), \(b) → \(out)", ElementwiseKernels.binary(a, b, out: out)))
                    all.append(("gemm \(a), \(b) → \(out)", MatrixKernels.gemm(a, b, out: out)))
                }
            }
        }
        all.append(("flash attention", FlashAttentionKernel.source))
        return all
    }

    /// Kernels that use Hopper-only instructions (wgmma, fence.proxy.async): compiled for sm_90a only.
    private var hopperSources: [(String, String)] {
        [("flash attention (wgmma)", WGMMAAttentionKernel.source)]
    }

    func testEveryKernelSourceCompiles() throws {
        let nvrtc = try openNVRTC()
        var failures: [String] = []
        var compiled = Set<String>()
        for architecture in ["sm_90a", "sm_80"] {
            let options = ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"]
            let all = sources + (architecture == "sm_90a" ? hopperSources : [])
            for (label, source) in all where compiled.insert(architecture + "\u{0}" + source).inserted {
                do {
                    let cubin = try nvrtc.compile(source: source, name: "kinema_kernels.cu", options: options)
                    XCTAssertFalse(cubin.isEmpty, label)
                } catch {
                    failures.append("\(architecture) \(label): \(String(describing: error).prefix(1500))")
                }
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) kernel sources failed to compile:\n" + failures.joined(separator: "\n\n"))
        print("compiled \(compiled.count) kernel sources with NVRTC \(nvrtc.version)")
    }

    /// A source that does not compile gives an error carrying NVRTC's log (which names the culprit), not a crash.
    func testCompileErrorCarriesTheLog() throws {
        let nvrtc = try openNVRTC()
        let source = "extern \"C\" __global__ void broken(float* x) { x[0] = undeclared_name_42; }\n"
        XCTAssertThrowsError(try nvrtc.compile(source: source, name: "broken.cu", options: ["--gpu-architecture=sm_80"])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("undeclared_name_42"), text)
            XCTAssertFalse(text.contains("\u{0}"), "the log is cut at its terminator")
        }
    }
}
