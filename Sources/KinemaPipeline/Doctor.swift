import Foundation
import KinemaCPU
import KinemaCUDA
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// `kinema doctor`: what this machine offers (CPU GEMM engine, CUDA driver, device, NVRTC) and, with a GPU,
// every CUDA op checked against the CPU reference on awkward shapes and dtypes, then the model goldens
// (diffusers outputs in Tests/Fixtures) run on the GPU.

public struct DoctorCheck: Sendable {
    public var name: String
    public var passed: Bool
    /// Relative L2 error against the reference, when the check compares tensors.
    public var relativeError: Double?
    public var tolerance: Double?
    public var detail: String
}

public struct DoctorReport: Sendable {
    public var facts: [(String, String)]
    public var checks: [DoctorCheck]
    public var gpuAvailable: Bool
    public var allPassed: Bool { checks.allSatisfy(\.passed) }
}

public enum Doctor {
    /// Runs the checks. `fixtures`: the Tests/Fixtures folder for the model goldens (skipped when nil or absent).
    public static func run(device ordinal: Int = 0, fixtures: String?) -> DoctorReport {
        var facts: [(String, String)] = [("CPU GEMM", CPUGemm.summary), ("CPU threads", "\(RuntimeOptions.current.threads)")]
        var checks: [DoctorCheck] = []
        let backend: CUDABackend
        do {
            backend = try CUDABackend(ordinal: ordinal)
        } catch {
            facts.append(("CUDA", "not available: \(error)"))
            facts.append(("cuDNN", cudnnLibraryDescription()))
            facts.append(("NCCL", NCCLLibrary.description()))
            return DoctorReport(facts: facts, checks: [], gpuAvailable: false)
        }
        let context = backend.context
        facts.append(("GPU", "\(context.name) (cuda:\(ordinal)), compute capability \(context.computeCapability.major).\(context.computeCapability.minor), \(context.multiprocessors) SMs, \(context.totalMemory >> 20) MiB"))
        facts.append(("CUDA driver", "\(context.driverVersion / 1000).\(context.driverVersion % 1000 / 10) (\(context.driverLibraryPath))"))
        facts.append(("NVRTC", context.nvrtcDescription))
        facts.append(("cuBLASLt", context.cublasLtDescription))
        facts.append(("cuDNN", context.cudnnDescription))
        facts.append(("NCCL", NCCLLibrary.description()))
        facts.append(("selection", backend.librarySelection))
        facts.append(("kernel target", context.architecture))
        facts.append(("kernel cache", RuntimeOptions.current.kernelCacheDirectory ?? "off"))

        // Kinema's own kernels for every op, then attention and conv3d again with cuDNN forced.
        if let ours = try? CUDABackend(ordinal: ordinal) {
            ours.attentionChoice = .kinema
            ours.convolutionChoice = .kinema
            checks += OpConsistency.run(gpu: ours)
        }
        // The model goldens with the default selection, before the most experimental paths: a kernel fault
        // (an illegal address) leaves the CUDA context unusable for every later check in this process.
        if let fixtures, FileManager.default.fileExists(atPath: fixtures + "/wan_dit") {
            checks += ModelGoldenChecks.run(gpu: backend, fixtures: fixtures)
        }
        if context.cudnnAvailable, let viaCUDNN = try? CUDABackend(ordinal: ordinal) {
            viaCUDNN.attentionChoice = .cudnn
            viaCUDNN.convolutionChoice = .cudnn
            checks += OpConsistency.run(gpu: viaCUDNN, onlyCUDNN: true, prefix: "cuDNN ")
            if let unfused = try? CUDABackend(ordinal: ordinal) {
                unfused.convolutionChoice = .cudnn
                unfused.fusedPasses = false
                checks += OpConsistency.runUnfusedEpilogue(gpu: unfused)
            }
            facts.append(("cuDNN plans", viaCUDNN.cudnnPlanSummary.joined(separator: "\n              ")))
        }
        // The Hopper wgmma attention kernel (opt-in, KINEMA_ATTENTION=wgmma) on its own shapes; last, being
        // the least tried.
        if context.architecture == "sm_90a", let viaWGMMA = try? CUDABackend(ordinal: ordinal) {
            viaWGMMA.attentionChoice = .wgmma
            checks += OpConsistency.runWGMMA(gpu: viaWGMMA)
        }
        return DoctorReport(facts: facts, checks: checks, gpuAvailable: true)
    }
}

/// `KINEMA_DOCTOR_TRACE=1`: each check's name on stderr (unbuffered) as it starts, so a check that takes the
/// process down (a crash inside a library) is named even though the report is printed only at the end.
enum DoctorTrace {
    static let enabled = RuntimeOptions.current.doctorTrace

    static func begin(_ name: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("doctor: \(name)\n".utf8))
    }
}

/// Relative L2 distance ‖a − b‖ / ‖b‖ over host copies, NaN-aware (a NaN anywhere fails).
func relativeL2(_ actual: Tensor, _ expected: Tensor) throws -> Double {
    let a = try actual.floats()
    let b = try expected.floats()
    guard a.count == b.count else { return .infinity }
    var difference = 0.0
    var norm = 0.0
    for (x, y) in zip(a, b) {
        if x.isNaN != y.isNaN { return .nan }
        if x.isNaN { continue }
        let d = Double(x) - Double(y)
        difference += d * d
        norm += Double(y) * Double(y)
    }
    return difference.squareRoot() / max(norm.squareRoot(), 1e-30)
}
