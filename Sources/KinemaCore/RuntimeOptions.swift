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
    /// Where compiled GPU kernels are cached (KINEMA_KERNEL_CACHE; default $XDG_CACHE_HOME/kinema/kernels or
    /// ~/.cache/kinema/kernels). "off" disables the disk cache.
    public var kernelCacheDirectory: String?
    /// Device memory budget in bytes for the CUDA allocator (KINEMA_MAX_VRAM, e.g. "20G"); nil: no limit.
    public var maxDeviceMemory: Int?
    /// Directories searched for external programs such as ffmpeg (PATH), in order.
    public var executableSearchPath: [String]
    /// The bundled demo model's folder when `kinema generate` gets no --model (KINEMA_DEMO_MODEL; default:
    /// searched next to the executable and in the source tree, see DemoModel).
    public var demoModel: String?
    /// Attention implementation on CUDA (KINEMA_ATTENTION): auto (cuDNN when it loads and accepts the
    /// problem, else Kinema's kernel), cudnn, or kinema. Validated by the CUDA backend.
    public var attentionEngine: String?
    /// conv3d implementation on CUDA (KINEMA_CONV): auto, cudnn or kinema, as for attention.
    public var convolutionEngine: String?
    /// cuDNN graph-API conv plans finalized and timed per new problem (KINEMA_CUDNN_CANDIDATES, ≥ 1; default 4).
    /// 1: heuristics' first plan, untimed — for weighing the first call's cost against the choice's gain.
    public var cudnnPlanCandidates: Int
    /// Whether KINEMA_CUDNN_CANDIDATES was set: the candidates are then timed even where their kernels must be
    /// compiled first, and remembered choices made untimed are made again (CUDNNChannelsLastConvolution).
    public var cudnnPlanCandidatesRequested: Bool
    /// KINEMA_KERNEL_PREWARM=0/off: the CUDA backend does not compile the kernel catalogue on every core when it
    /// is created (each kernel is then compiled at its first launch, one at a time). Default: on.
    public var kernelPrewarm: Bool
    /// KINEMA_CONV_PLANNING=1/on: planning passes (the VAE decode's convolution plans compiled on every core before
    /// the decode, CUDNNChannelsLastConvolution). Default: off until its current form is measured on a fresh machine
    /// (docs/PERF.md, seventh session: the first form made the first decode slower).
    public var convolutionPlanning: Bool
    /// KINEMA_DOCTOR_TRACE=1: `kinema doctor` names each check on stderr as it starts.
    public var doctorTrace: Bool
    /// KINEMA_FUSED=0/off: the CUDA backend runs the DiT's fused passes (GEMM epilogues, LayerNorm +
    /// modulation, gated residual, RMSNorm + RoPE) as their unfused compositions — for A/B timing and as a
    /// fallback. Default: fused.
    public var fusedPasses: Bool
    /// KINEMA_VAE_SUBPIXEL=0/off: the VAE decoder's upsampling runs as nearest ×2 then the 3×3 conv, as the
    /// reference does, instead of four 2×2 convolutions of the small input (WanSubPixelUpsample). Default: on.
    public var vaeSubPixel: Bool

    public static let current = RuntimeOptions(environment: ProcessInfo.processInfo.environment)

    public init(environment: [String: String]) {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        threads = environment["KINEMA_THREADS"].flatMap(Int.init).map { max(1, $0) } ?? max(1, cores)
        blas = environment["KINEMA_BLAS"].flatMap { $0.isEmpty ? nil : $0 }
        cudaLibraryPath = environment["KINEMA_CUDA_LIB_PATH"].flatMap { $0.isEmpty ? nil : $0 }
        debugLevel = environment["KINEMA_DEBUG"].flatMap(Int.init) ?? 0
        if let cache = environment["KINEMA_KERNEL_CACHE"], !cache.isEmpty {
            kernelCacheDirectory = cache == "off" ? nil : cache
        } else if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            kernelCacheDirectory = xdg + "/kinema/kernels"
        } else if let home = environment["HOME"], !home.isEmpty {
            kernelCacheDirectory = home + "/.cache/kinema/kernels"
        } else {
            kernelCacheDirectory = nil
        }
        maxDeviceMemory = environment["KINEMA_MAX_VRAM"].flatMap(RuntimeOptions.parseBytes)
        demoModel = environment["KINEMA_DEMO_MODEL"].flatMap { $0.isEmpty ? nil : $0 }
        attentionEngine = environment["KINEMA_ATTENTION"].flatMap { $0.isEmpty ? nil : $0 }
        convolutionEngine = environment["KINEMA_CONV"].flatMap { $0.isEmpty ? nil : $0 }
        let requestedCandidates = environment["KINEMA_CUDNN_CANDIDATES"].flatMap(Int.init).map { max(1, $0) }
        cudnnPlanCandidates = requestedCandidates ?? 4
        cudnnPlanCandidatesRequested = requestedCandidates != nil
        doctorTrace = environment["KINEMA_DOCTOR_TRACE"].map { !$0.isEmpty && $0 != "0" } ?? false
        /// An on/off switch: `0`/`off`/`false`/`no` and `1`/`on`/`true`/`yes` (any case); unset or anything else: `default`.
        func flag(_ name: String, default value: Bool) -> Bool {
            switch (environment[name] ?? "").lowercased() {
            case "0", "off", "false", "no": return false
            case "1", "on", "true", "yes": return true
            default: return value
            }
        }
        kernelPrewarm = flag("KINEMA_KERNEL_PREWARM", default: true)
        convolutionPlanning = flag("KINEMA_CONV_PLANNING", default: false)
        fusedPasses = flag("KINEMA_FUSED", default: true)
        vaeSubPixel = flag("KINEMA_VAE_SUBPIXEL", default: true)
        executableSearchPath = (environment["PATH"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }
}

extension RuntimeOptions {
    /// Parses "1234", "512M", "20G", "1.5GiB" into bytes.
    public static func parseBytes(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let (kib, mib, gib) = (1024.0, 1024.0 * 1024, 1024.0 * 1024 * 1024)
        let units: [(String, Double)] = [("GIB", gib), ("MIB", mib), ("KIB", kib), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3),
                                         ("G", gib), ("M", mib), ("K", kib), ("B", 1)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)), value >= 0 else { return nil }
            return Int(value * scale)
        }
        return Int(trimmed).flatMap { $0 >= 0 ? $0 : nil }
    }
}
