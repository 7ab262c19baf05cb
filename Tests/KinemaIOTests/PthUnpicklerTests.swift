import Foundation
import KinemaCore
import XCTest

@testable import KinemaIO

// The restricted unpickler on hand-built opcode streams: structures a file can make cheaply that would
// hurt a naive reader (deep chains freed recursively, deep tuples), and small well-formed cases.

final class PthUnpicklerTests: XCTestCase {
    private func run(_ bytes: [UInt8]) throws -> String {
        try bytes.withUnsafeBytes { buffer in
            var unpickler = Unpickler(bytes: buffer, path: "test.pkl", location: "data.pkl")
            defer { unpickler.release() }
            return try unpickler.load().kind
        }
    }

    private func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// A list nested 300 000 levels deep through memo references (13 bytes a level). Freeing it by ARC
    /// alone would recurse once per level and overflow the stack; `release()` empties it iteratively.
    func testDeepListChainIsFreedWithoutRecursion() throws {
        var bytes: [UInt8] = [0x80, 0x02, 0x5D, 0x72] + le32(0)  // L0, memo 0
        let levels = 300_000
        bytes.reserveCapacity(bytes.count + levels * 13 + 1)
        for level in 0..<levels {
            bytes += [0x6A] + le32(level)  // push L_level
            bytes += [0x5D, 0x72] + le32(level + 1)  // new list, memo level+1
            bytes += [0x61, 0x30]  // L_level.append(new); pop L_level
        }
        bytes.append(0x2E)
        XCTAssertEqual(try run(bytes), "list")
    }

    func testDeepTupleChainIsRefused() throws {
        let bytes: [UInt8] = [0x80, 0x02, 0x4B, 0x01] + [UInt8](repeating: 0x85, count: 100_000) + [0x2E]
        XCTAssertThrowsError(try run(bytes)) { error in
            XCTAssertTrue("\(error)".contains("nesting depth"), "\(error)")
        }
    }

    func testSmallValues() throws {
        // {'a': (1, -2, 3.5, True, None, 'x' * 3, [7])} via MARK/SETITEMS, LONG1, BINFLOAT.
        var bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x28, 0x8C, 0x01, 0x61, 0x28, 0x4B, 0x01, 0x8A, 0x01, 0xFE, 0x47]
        bytes += withUnsafeBytes(of: (3.5).bitPattern.bigEndian) { Array($0) }
        bytes += [0x88, 0x4E, 0x8C, 0x03, 0x78, 0x78, 0x78, 0x5D, 0x4B, 0x07, 0x61, 0x74, 0x75, 0x2E]
        try bytes.withUnsafeBytes { buffer in
            var unpickler = Unpickler(bytes: buffer, path: "test.pkl", location: "data.pkl")
            defer { unpickler.release() }
            guard case .dict(let dict) = try unpickler.load(), dict.entries.count == 1,
                case .tuple(let items, _) = dict.entries[0].value, items.count == 7 else {
                return XCTFail("unexpected structure")
            }
        }
    }
}
