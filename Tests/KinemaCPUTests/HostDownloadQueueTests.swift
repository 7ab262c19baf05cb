import Foundation
import KinemaCPU
import KinemaCore
import XCTest

// The default (immediate) host download queue: pieces land where they are sent, and a piece outside the
// tensor or a strided tensor is refused before any byte is copied.
final class HostDownloadQueueTests: XCTestCase {
    func testPiecesLandInPlace() throws {
        let backend = CPUBackend.shared
        let x = try Tensor((0..<10).map(Float.init), shape: [10])
        let out = try Tensor.zeros([10], dtype: .f32)
        let queue = try backend.makeHostDownloadQueue()
        try queue.enqueue(x, pieces: [
            HostCopyPiece(sourceOffset: 0, destination: out.hostPointer + 24, bytes: 16),
            HostCopyPiece(sourceOffset: 16, destination: out.hostPointer, bytes: 24),
        ])
        try queue.finish()
        XCTAssertEqual(try out.floats(), [4, 5, 6, 7, 8, 9, 0, 1, 2, 3])
    }

    func testBadPiecesAreRefused() throws {
        let backend = CPUBackend.shared
        let x = try Tensor((0..<6).map(Float.init), shape: [2, 3])
        let out = try Tensor.zeros([6], dtype: .f32)
        let queue = try backend.makeHostDownloadQueue()
        for (offset, bytes) in [(0, 28), (-4, 8), (20, 8), (0, -1)] {
            XCTAssertThrowsError(try queue.enqueue(x, pieces: [HostCopyPiece(sourceOffset: offset, destination: out.hostPointer, bytes: bytes)]))
        }
        XCTAssertThrowsError(
            try queue.enqueue(try x.transposed(0, 1), pieces: [HostCopyPiece(sourceOffset: 0, destination: out.hostPointer, bytes: 4)]))
        try queue.finish()
        XCTAssertEqual(try out.floats(), [0, 0, 0, 0, 0, 0], "nothing copied")
    }
}
