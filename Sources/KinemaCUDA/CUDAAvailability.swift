import CKinema
import KinemaCore

// The CUDA backend arrives with its own issue; until then this target only answers whether the CUDA
// driver library can be loaded here, which `kinema doctor`-style reporting uses.

public enum CUDAAvailability {
    /// Where the driver library was looked for, in order.
    public static func driverCandidates(options: RuntimeOptions = .current) -> [String] {
        var candidates: [String] = []
        if let directory = options.cudaLibraryPath { candidates.append(directory + "/libcuda.so.1") }
        candidates.append("libcuda.so.1")
        return candidates
    }

    /// The path of the first CUDA driver library that loads, or nil.
    public static func loadableDriver(options: RuntimeOptions = .current) -> String? {
        for candidate in driverCandidates(options: options) where ckinema_dlopen(candidate) != nil {
            return candidate
        }
        return nil
    }
}
