import CKinema
import KinemaCore

// A CBLAS library bound at run time (Sources/CKinema/blas.c). Nothing links against BLAS: machines without
// one fall back to the built-in GEMM, and KINEMA_BLAS picks a library or turns BLAS off.
//
// Search order: KINEMA_BLAS when set (a path or soname; "off" disables BLAS), then the sonames Debian/Ubuntu
// and most distributions install for OpenBLAS and the generic BLAS alternatives. The first library that
// opens and exports cblas_sgemm wins.

public final class BLASLibrary: @unchecked Sendable {
    /// The path or soname that was opened.
    public let name: String
    /// OpenBLAS's build description (version, target core, threading), when the library is OpenBLAS.
    public let configuration: String?
    let sgemm: ckinema_cblas_sgemm_fn

    private init(name: String, binding: ckinema_blas, sgemm: @escaping ckinema_cblas_sgemm_fn) {
        self.name = name
        self.sgemm = sgemm
        self.configuration = binding.get_config.flatMap { get in get().map { String(cString: $0) } }
        // OpenBLAS defaults to one thread per core too, but follow KINEMA_THREADS so both engines use the
        // same parallelism (and benchmarks compare like with like).
        binding.set_num_threads?(Int32(clamping: RuntimeOptions.current.threads))
    }

    public static let defaultCandidates: [String] = {
        #if os(macOS)
        return ["/System/Library/Frameworks/Accelerate.framework/Accelerate", "libopenblas.dylib"]
        #else
        return ["libopenblas.so.0", "libopenblas.so", "libblas.so.3", "libcblas.so.3"]
        #endif
    }()

    /// What was tried, in order, and why each candidate failed; the last entry is the one in use, if any.
    public struct LoadReport: Sendable {
        public var attempts: [(candidate: String, failure: String?)]
        public var disabled: Bool

        public var summary: String {
            if disabled { return "BLAS disabled (KINEMA_BLAS=off)" }
            if let loaded = attempts.last(where: { $0.failure == nil }) { return "BLAS: \(loaded.candidate)" }
            let tried = attempts.map { "\($0.candidate) (\($0.failure ?? "?"))" }.joined(separator: "; ")
            return "no BLAS library found; tried \(tried)"
        }
    }

    /// The library CPU GEMMs use, or nil when none loaded (or BLAS is off).
    public static var shared: BLASLibrary? { loaded.library }
    public static var loadReport: LoadReport { loaded.report }

    private static let loaded: (library: BLASLibrary?, report: LoadReport) = load(setting: RuntimeOptions.current.blas)

    static func load(setting: String?) -> (library: BLASLibrary?, report: LoadReport) {
        if let setting, setting.lowercased() == "off" {
            return (nil, LoadReport(attempts: [], disabled: true))
        }
        var candidates = defaultCandidates
        if let setting {
            candidates.removeAll { $0 == setting }
            candidates.insert(setting, at: 0)
        }
        var report = LoadReport(attempts: [], disabled: false)
        for candidate in candidates {
            var binding = ckinema_blas()
            let status = ckinema_blas_open(candidate, &binding)
            if status == 0, let sgemm = binding.sgemm {
                report.attempts.append((candidate, nil))
                return (BLASLibrary(name: candidate, binding: binding, sgemm: sgemm), report)
            }
            let detail = ckinema_dlerror().map { String(cString: $0) }
            let failure = status == -2 ? "no cblas_sgemm" : (detail ?? "does not open")
            report.attempts.append((candidate, failure))
        }
        return (nil, report)
    }
}
