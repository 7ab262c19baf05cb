import KinemaCPU
import KinemaCore
import KinemaCUDA

/// Maps a device choice to the backend that computes on it.
public enum Backends {
    /// - Parameter maxDeviceMemory: a cap for the GPU allocator in bytes (nil: KINEMA_MAX_VRAM or none).
    public static func make(_ device: Device, maxDeviceMemory: Int? = nil) throws -> any Backend {
        switch device {
        case .cpu: return CPUBackend.shared
        case .cuda(let ordinal):
            let backend = try CUDABackend(ordinal: ordinal)
            if let maxDeviceMemory { backend.context.setMemoryBudget(maxDeviceMemory) }
            return backend
        }
    }

    /// Peak bytes held by Kinema's device allocator, for GPU backends.
    public static func peakDeviceBytes(_ backend: any Backend) -> Int? {
        (backend as? CUDABackend)?.context.memoryUse.peak
    }

    /// Waits until the device has finished the work queued so far (GPU backends; the CPU is synchronous).
    /// The denoising loop keeps its latents on the device, so a step returns once its work is queued: time
    /// a step (progress, benchmarks) after this.
    public static func synchronize(_ backend: any Backend) throws {
        try (backend as? CUDABackend)?.context.synchronize()
    }
}
