import Foundation

/// Bytes `sourceOffset ..< sourceOffset + bytes` of a contiguous tensor, copied to `destination` on the host.
public struct HostCopyPiece {
    public var sourceOffset: Int
    public var destination: UnsafeMutableRawPointer
    public var bytes: Int

    public init(sourceOffset: Int, destination: UnsafeMutableRawPointer, bytes: Int) {
        self.sourceOffset = sourceOffset
        self.destination = destination
        self.bytes = bytes
    }
}

/// Device → host copies that overlap with work queued after them. `enqueue` may return before its copies
/// are made: the destinations must stay allocated and untouched until `finish()` returns, which waits for
/// every copy and rethrows the first failure. Call `finish()` on every path (also after an error), before the
/// destination memory is freed.
public protocol HostDownloadQueue: AnyObject {
    /// Copies `pieces` of x (contiguous bytes) to the host, ordered after the work queued on x's device so far.
    func enqueue(_ x: Tensor, pieces: [HostCopyPiece]) throws
    func finish() throws
}

extension HostDownloadQueue {
    /// Checks `pieces` against x's size (a piece past its end is a caller's bug, not memory to read).
    public func validate(_ x: Tensor, pieces: [HostCopyPiece]) throws {
        guard x.isContiguous else { throw KinemaError.unsupported("host download queue: the tensor must be contiguous") }
        for piece in pieces where piece.sourceOffset < 0 || piece.bytes < 0 || piece.sourceOffset + piece.bytes > x.byteCount {
            throw KinemaError.invalidArgument(
                "host download queue: bytes \(piece.sourceOffset)..<\(piece.sourceOffset + piece.bytes) outside a \(x.byteCount)-byte tensor")
        }
    }
}

/// Each piece copied at once through `backend.download`: the CPU backend's queue, and the fallback.
public final class ImmediateHostDownloads: HostDownloadQueue {
    let backend: any Backend

    public init(backend: any Backend) { self.backend = backend }

    public func enqueue(_ x: Tensor, pieces: [HostCopyPiece]) throws {
        try validate(x, pieces: pieces)
        let host = try backend.download(x)
        let base = UnsafeRawPointer(host.hostPointer)
        for piece in pieces { piece.destination.copyMemory(from: base + piece.sourceOffset, byteCount: piece.bytes) }
    }

    public func finish() throws {}
}

extension Backend {
    public func makeHostDownloadQueue() throws -> any HostDownloadQueue { ImmediateHostDownloads(backend: self) }
}
