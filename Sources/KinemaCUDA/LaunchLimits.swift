import KinemaCore

// CUDA's launch limits, checked before cuLaunchKernel: a grid or block outside them would otherwise be a
// bare CUDA_ERROR_INVALID_VALUE (or, for a count beyond 32 bits, a trap converting it to UInt32). Sizes
// come from tensor shapes, so an oversized problem becomes a KinemaError that names the kernel.

enum LaunchLimits {
    static let maxGridX = Int(Int32.max)  // 2³¹ − 1
    static let maxGridYZ = 65535
    static let maxBlockXY = 1024
    static let maxBlockZ = 64
    static let maxThreadsPerBlock = 1024

    /// Throws unless every grid and block dimension is positive and within CUDA's limits.
    static func check(_ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int)) throws {
        let g = [grid.0, grid.1, grid.2], b = [block.0, block.1, block.2]
        let fits =
            g.allSatisfy { $0 >= 1 } && b.allSatisfy { $0 >= 1 } && grid.0 <= maxGridX && grid.1 <= maxGridYZ
            && grid.2 <= maxGridYZ && block.0 <= maxBlockXY && block.1 <= maxBlockXY && block.2 <= maxBlockZ
            && b.reduce(1, *) <= maxThreadsPerBlock
        guard fits else {
            throw KinemaError.unsupported(
                "\(kernel): launch grid \(g) × block \(b) is outside CUDA's limits (grid x ≤ 2³¹−1, y and z ≤ 65535; "
                    + "≤ 1024 threads per block); the problem is too large for this kernel")
        }
    }
}
