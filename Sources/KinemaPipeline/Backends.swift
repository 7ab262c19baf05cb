import KinemaCPU
import KinemaCore
import KinemaCUDA

/// Maps a device choice to the backend that computes on it.
public enum Backends {
    public static func make(_ device: Device) throws -> any Backend {
        switch device {
        case .cpu:
            return CPUBackend.shared
        case .cuda:
            let driver = CUDAAvailability.loadableDriver()
            throw KinemaError.unsupported(
                "the CUDA backend is not part of this build yet (driver library \(driver.map { "found at \($0)" } ?? "not found")); use --device cpu")
        }
    }
}
