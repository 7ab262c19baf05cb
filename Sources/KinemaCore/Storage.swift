import Foundation

// The bytes behind one or more tensors. Host storage is either owned (allocated here, freed on deinit) or
// borrowed from a longer-lived owner such as a memory-mapped checkpoint, which `keepAlive` retains.

public final class Storage: @unchecked Sendable {
    public let device: Device
    public let byteCount: Int
    /// Host address of the first byte (CPU), or the device address (CUDA) carried as a raw pointer.
    public let base: UnsafeMutableRawPointer
    private let release: (@Sendable (UnsafeMutableRawPointer) -> Void)?
    private let keepAlive: AnyObject?

    /// Allocates zeroed host memory, 64-byte aligned.
    public convenience init(hostBytes byteCount: Int) throws {
        try self.init(hostBytes: byteCount, fill: .zeroed)
    }

    /// Allocates host memory, 64-byte aligned, zeroed or not.
    public init(hostBytes byteCount: Int, fill: HostFill) throws {
        let size = max(byteCount, 1)
        var pointer: UnsafeMutableRawPointer?
        guard byteCount >= 0, posix_memalign(&pointer, 64, size) == 0, let pointer else {
            throw KinemaError.outOfMemory(requestedBytes: byteCount, detail: "host allocation failed")
        }
        if fill == .zeroed { memset(pointer, 0, size) }
        self.device = .cpu
        self.byteCount = byteCount
        self.base = pointer
        self.release = { free($0) }
        self.keepAlive = nil
    }

    /// Wraps memory owned elsewhere; `owner` is retained for as long as this storage lives.
    public init(borrowing base: UnsafeMutableRawPointer, byteCount: Int, device: Device = .cpu, owner: AnyObject?) {
        self.device = device
        self.byteCount = byteCount
        self.base = base
        self.release = nil
        self.keepAlive = owner
    }

    /// Takes ownership of memory from another allocator (e.g. a CUDA allocation) with its own release.
    public init(
        adopting base: UnsafeMutableRawPointer, byteCount: Int, device: Device,
        release: @escaping @Sendable (UnsafeMutableRawPointer) -> Void
    ) {
        self.device = device
        self.byteCount = byteCount
        self.base = base
        self.release = release
        self.keepAlive = nil
    }

    deinit { release?(base) }
}

/// Whether fresh host memory is cleared.
public enum HostFill: Sendable {
    case zeroed
    /// Contents unspecified. For kernels that write every element: skipping the serial memset (and
    /// letting the kernel's own threads fault the pages in) roughly halves the cost of a large
    /// elementwise op.
    case uninitialized
}
