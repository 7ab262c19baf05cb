import Foundation

// The one place that reads environment variables. Documented in docs/env-vars.md.

public struct RuntimeOptions: Sendable {
    /// Worker threads for CPU kernels (KINEMA_THREADS; default: all cores).
    public var threads: Int
    /// BLAS library to load for CPU GEMMs (KINEMA_BLAS): a path, a soname, or "off" for the built-in GEMM.
    public var blas: String?
    /// Extra directory searched first for CUDA libraries (KINEMA_CUDA_LIB_PATH).
    public var cudaLibraryPath: String?
    /// Verbosity 0…3 (KINEMA_DEBUG).
    public var debugLevel: Int
    /// Directories searched for external programs such as ffmpeg (PATH), in order.
    public var executableSearchPath: [String]

    public static let current = RuntimeOptions(environment: ProcessInfo.processInfo.environment)

    public init(environment: [String: String]) {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        threads = environment["KINEMA_THREADS"].flatMap(Int.init).map { max(1, $0) } ?? max(1, cores)
        blas = environment["KINEMA_BLAS"].flatMap { $0.isEmpty ? nil : $0 }
        cudaLibraryPath = environment["KINEMA_CUDA_LIB_PATH"].flatMap { $0.isEmpty ? nil : $0 }
        debugLevel = environment["KINEMA_DEBUG"].flatMap(Int.init) ?? 0
        executableSearchPath = (environment["PATH"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }
}
