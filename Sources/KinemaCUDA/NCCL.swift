import KinemaCore

// NCCL (libnccl.so.2), the collective library CFG-parallel and Ulysses sequence parallel will run on. Found
// at run time like the other CUDA libraries (KINEMA_CUDA_LIB_PATH, the loader path, CUDA folders, pip
// nvidia/nccl); for now Kinema reports its version, so a machine's readiness shows in `kinema doctor`.

public enum NCCLLibrary {
    /// Opens libnccl and reads its version code (major·10000 + minor·100 + patch since NCCL 2.9).
    static func open(options: RuntimeOptions = .current) throws -> (library: LoadedLibrary, version: Int) {
        let lib = try CUDALibraries.open(["libnccl.so.2", "libnccl.so"], options: options)
        let getVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32 = try lib.function("ncclGetVersion")
        var code: Int32 = 0
        let result = getVersion(&code)
        guard result == 0 else { throw KinemaError.unsupported("ncclGetVersion failed (ncclResult \(result)) in \(lib.path)") }
        return (lib, Int(code))
    }

    static func versionText(_ code: Int) -> String {
        // Codes before 2.9 were major·1000 + minor·100 + patch.
        code >= 20900 ? "\(code / 10000).\(code % 10000 / 100).\(code % 100)" : "\(code / 1000).\(code % 1000 / 100).\(code % 100)"
    }

    /// "2.27.3 (/path/libnccl.so.2)" or why it is unavailable.
    public static func description(options: RuntimeOptions = .current) -> String {
        do {
            let (lib, code) = try open(options: options)
            return "\(versionText(code)) (\(lib.path))"
        } catch {
            return "NCCL not found (needed later for multi-GPU): \(error)"
        }
    }
}
