import Foundation
import KinemaCore
import KinemaIO
import XCTest

/// A fresh directory under the system temp dir, removed when the object dies.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "kinema-io") throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    @discardableResult
    func write(_ bytes: [UInt8], to name: String) throws -> String {
        let target = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    func write(text: String, to name: String) throws -> String {
        try write(Array(text.utf8), to: name)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Hand-built safetensors bytes: the length prefix (the header's true length unless overridden), the
/// header text, then `data`.
func rawSafeTensors(header: String, data: [UInt8] = [], lengthOverride: UInt64? = nil) -> [UInt8] {
    rawSafeTensors(headerBytes: Array(header.utf8), data: data, lengthOverride: lengthOverride)
}

func rawSafeTensors(headerBytes: [UInt8], data: [UInt8] = [], lengthOverride: UInt64? = nil) -> [UInt8] {
    let length = lengthOverride ?? UInt64(headerBytes.count)
    return withUnsafeBytes(of: length.littleEndian) { Array($0) } + headerBytes + data
}

extension SplitMix64 {
    /// Uniform in 0..<bound (modulo bias is irrelevant for fuzz positions).
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }
}

/// Float equality that treats NaN as equal to NaN and tells -0 from +0.
func sameFloat(_ a: Float, _ b: Float) -> Bool {
    (a.isNaN && b.isNaN) || (a == b && a.sign == b.sign)
}

func XCTAssertSameFloats(_ actual: [Float], _ expected: [Float], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, message, file: file, line: line)
    for (index, (a, b)) in zip(actual, expected).enumerated() where !sameFloat(a, b) {
        XCTFail("\(message): element \(index) is \(a), expected \(b)", file: file, line: line)
        return
    }
}
