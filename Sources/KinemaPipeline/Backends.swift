import KinemaCPU
import KinemaCore
import KinemaCUDA

/// Maps a device choice to the backend that computes on it.
public enum Backends {
    public static func make(_ device: Device) throws -> any Backend {
        switch device {
        case .cpu: return CPUBackend.shared
        case .cuda(let ordinal): return try CUDABackend(ordinal: ordinal)
        }
    }
}
