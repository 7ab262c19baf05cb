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

    func testEveryKernelSourceCompiles() throws {
        let nvrtc = try openNVRTC()
        var failures: [String] = []
        var compiled = Set<String>()
        for architecture in ["sm_90a", "sm_80"] {
            let options = ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"]
            let all = KernelCatalog.sources(floats: [.f32, .bf16, .f16], hopper: architecture == "sm_90a")
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

    /// KernelBinaries: a source asked for on several threads at once compiles once; `prewarm` compiles a list in
    /// the background and writes the disk cache, which a second instance (a later process) reads instead.
    func testBinariesCompileOnceAcrossThreadsAndPrewarmFillsTheDiskCache() throws {
        let nvrtc = try openNVRTC()
        let folder = NSTemporaryDirectory() + "kinema-binaries-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let binaries = KernelBinaries(architecture: "sm_80", folder: folder, compiler: .success(nvrtc))
        let shared = ElementwiseKernels.unary(.bf16)
        let results = ResultsBox()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in results.append(try? binaries.cubin(for: shared)) }
        XCTAssertEqual(results.all.count, 6)
        XCTAssertTrue(results.all.allSatisfy { $0 != nil && $0 == results.all[0] })
        XCTAssertEqual(binaries.counts.compiled, 1, "one compile however many threads asked at once")

        let list = [ElementwiseKernels.cast(from: .f32, to: .bf16), ElementwiseKernels.biasResidual(.bf16), shared]
        let done = DispatchSemaphore(value: 0)
        binaries.prewarm(list) { done.signal() }
        XCTAssertEqual(done.wait(timeout: .now() + 300), .success)
        XCTAssertEqual(binaries.counts.compiled, 3, "the shared source was ready already")
        let again = DispatchSemaphore(value: 0)
        binaries.prewarm([RowKernels.norms(.f32)]) { again.signal() }
        XCTAssertEqual(again.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(binaries.counts.compiled, 3, "only a process's first prewarm compiles")

        let later = KernelBinaries(architecture: "sm_80", folder: folder, compiler: .success(nvrtc))
        for source in list { XCTAssertEqual(try later.cubin(for: source), try binaries.cubin(for: source)) }
        XCTAssertEqual(later.counts.compiled, 0)
        XCTAssertEqual(later.counts.fromDisk, 3)
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

/// Results gathered from concurrent iterations.
private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [[UInt8]?] = []
    func append(_ value: [UInt8]?) { lock.withLock { values.append(value) } }
    var all: [[UInt8]?] { lock.withLock { values } }
}
