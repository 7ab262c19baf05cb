import Foundation
import KinemaCore
import KinemaIO
import KinemaTestSupport
import XCTest

final class SafeTensorsRoundTripTests: XCTestCase {
    /// One small tensor per dtype with values exact in that dtype, including each format's extremes.
    static func everyDType() throws -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        tensors["f32"] = try Tensor([-2.5, 0, 1e-3, .infinity, -.infinity, .nan, -0.0, Float.greatestFiniteMagnitude], shape: [2, 4])
        tensors["f16"] = try Tensor([-65504, -1.5, 0, 0.5, 2048, 0x1p-14, 0x1p-24], shape: [7], dtype: .f16)
        tensors["bf16"] = try Tensor([-2, 0, 0.5, 1.5, 256, 0x1p-7, 0x1p-133, 3e38], shape: [2, 2, 2], dtype: .bf16)
        tensors["f8e4m3"] = try Tensor([-448, -1.5, 0, 0x1p-6, 0.5, 3, 448, 0x1p-9], shape: [8], dtype: .f8e4m3)
        tensors["f8e5m2"] = try Tensor([-57344, -1.5, 0, 0.5, 3, 57344, 0x1p-16], shape: [7], dtype: .f8e5m2)
        tensors["i8"] = try Tensor(integers: [-128, -1, 0, 1, 127], shape: [5], dtype: .i8)
        tensors["u8"] = try Tensor(integers: [0, 1, 128, 255, 7], shape: [5], dtype: .u8)  // odd byte count
        tensors["i32"] = try Tensor(integers: [Int64(Int32.min), -1, 0, 1, Int64(Int32.max)], shape: [5], dtype: .i32)
        tensors["i64"] = try Tensor(integers: [Int64.min, -1, 0, 1 << 40 + 1, Int64.max], shape: [5], dtype: .i64)
        tensors["bool"] = try Tensor(integers: [1, 0, 1], shape: [3], dtype: .bool)
        tensors["scalar"] = try Tensor([42], shape: [])
        tensors["empty"] = try Tensor.zeros([3, 0, 2], dtype: .bf16)
        return tensors
    }

    func assertSameContents(_ actual: Tensor, _ expected: Tensor, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(actual.shape, expected.shape, name, file: file, line: line)
        XCTAssertEqual(actual.dtype, expected.dtype, name, file: file, line: line)
        if expected.dtype.isFloatingPoint {
            XCTAssertSameFloats(try actual.floats(), try expected.floats(), name, file: file, line: line)
        } else {
            XCTAssertEqual(try actual.integers(), try expected.integers(), name, file: file, line: line)
        }
    }

    func testEveryDTypeRoundTrips() throws {
        let directory = try TemporaryDirectory()
        let tensors = try Self.everyDType()
        let path = directory.file("all.safetensors")
        try SafeTensors.write(tensors, metadata: ["format": "pt", "quote\"and\\slash": "line\nbreak ✓"], to: path)

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.names, tensors.keys.sorted())
        XCTAssertEqual(file.metadata, ["format": "pt", "quote\"and\\slash": "line\nbreak ✓"])
        XCTAssertEqual(file.origin, path)
        for (name, expected) in tensors {
            XCTAssertEqual(file.info(name), TensorInfo(name: name, dtype: expected.dtype, shape: expected.shape))
            try assertSameContents(try file.tensor(name), expected, name)
        }
        XCTAssertNil(file.info("missing"))
        XCTAssertThrowsError(try file.tensor("missing")) { error in
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
    }

    func testNonContiguousInputsAreWrittenInLogicalOrder() throws {
        let directory = try TemporaryDirectory()
        let base = try Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let bf16 = try Tensor((0..<24).map { Float($0) * 0.5 }, shape: [4, 6], dtype: .bf16)
        let bytes = try Tensor(integers: (0..<30).map(Int64.init), shape: [5, 6], dtype: .u8)
        let views: [String: Tensor] = [
            "permuted": try base.permuted([2, 0, 1]),
            "transposed.bf16": try bf16.transposed(0, 1),
            "strided.inner": try base.sliced(axis: 2, start: 1, end: 4, step: 2),  // innermost stride 2
            "narrowed": try base.narrowed(axis: 1, start: 1, length: 2),  // non-zero offset
            "broadcast": try Tensor([1, 2, 3], shape: [3]).expanded(to: [4, 3]),  // stride 0
            "u8.transposed": try bytes.transposed(0, 1),
            "contiguous": base,
        ]
        let path = directory.file("views.safetensors")
        try SafeTensors.write(views, to: path)
        let file = try SafeTensorsFile(path: path)
        for (name, view) in views {
            let read = try file.tensor(name)
            XCTAssertTrue(read.isContiguous, name)
            try assertSameContents(read, view, name)
        }
    }

    func testHeaderLayoutMatchesTheReferenceWriter() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("layout.safetensors")
        try SafeTensors.write(
            ["b.u8": try Tensor(integers: [1, 2, 3], shape: [3], dtype: .u8),
             "a.f32": try Tensor([1, 2], shape: [2]),
             "c.i64": try Tensor(integers: [7], shape: [1], dtype: .i64)],
            metadata: ["k": "v"], to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let length = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(length % 8, 0, "header padded to 8 bytes")
        XCTAssertEqual(bytes.count, 8 + length + 3 + 8 + 8)
        let header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        let trimmed = header.trimmingCharacters(in: .init(charactersIn: " "))
        XCTAssertEqual(
            trimmed,
            #"{"__metadata__":{"k":"v"},"a.f32":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"#
                + #""b.u8":{"dtype":"U8","shape":[3],"data_offsets":[16,19]},"#
                + #""c.i64":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#)
        XCTAssertTrue(header.hasSuffix(trimmed + String(repeating: " ", count: header.count - trimmed.count)))
    }

    func testTensorsBorrowTheMappingWithoutCopying() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("zero-copy.safetensors")
        try SafeTensors.write(["w": try Tensor([1, 2, 3, 4], shape: [2, 2])], to: path)
        let file = try SafeTensorsFile(path: path)
        let first = try file.tensor("w")
        let second = try file.tensor("w")
        XCTAssertEqual(first.hostPointer, second.hostPointer, "both reads view the same mapped bytes")
        XCTAssertEqual(file.fileRange("w"), file.dataOffset..<(file.dataOffset + 16))
        // A stray write lands in a private copy of the page: no crash, and the file is unchanged.
        first.hostPointer.storeBytes(of: Float(99), as: Float.self)
        XCTAssertEqual(try SafeTensorsFile(path: path).tensor("w").floats(), [1, 2, 3, 4])
    }

    func testMisalignedTensorsAreCopiedToAlignedMemory() throws {
        // Legal but unaligned: a 3-byte U8 tensor first puts the F32 tensor at data offset 3.
        let header = #"{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}}"#
        var data: [UInt8] = [1, 2, 3]
        for value: Float in [1.5, -2] { withUnsafeBytes(of: value.bitPattern.littleEndian) { data += $0 } }
        let directory = try TemporaryDirectory()
        let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        let path = try directory.write(rawSafeTensors(header: padded, data: data), to: "unaligned.safetensors")
        let file = try SafeTensorsFile(path: path)
        let b = try file.tensor("b")
        XCTAssertEqual(Int(bitPattern: b.hostPointer) % 4, 0)
        XCTAssertEqual(try b.floats(), [1.5, -2])
        XCTAssertEqual(try file.tensor("a").integers(), [1, 2, 3])
    }

    func testEmptyCheckpoint() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("empty.safetensors")
        try SafeTensors.write([:], to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(bytes, [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        XCTAssertEqual(try SafeTensorsFile(path: path).names, [])
    }

    func testWriterRejectsReservedName() throws {
        let directory = try TemporaryDirectory()
        XCTAssertThrowsError(try SafeTensors.write(["__metadata__": try Tensor([1], shape: [1])], to: directory.file("x.safetensors")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("x.safetensors")))
    }

    /// A file written by the reference Python library (scripts/goldens/make_safetensors_fixture.py).
    func testReadsFileWrittenByReferenceLibrary() throws {
        let source = try Fixtures.open("safetensors/reference_all_dtypes.safetensors")
        let file = try XCTUnwrap(source as? SafeTensorsFile)
        let expectedData = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("safetensors/reference_all_dtypes.json")))
        let expected = try XCTUnwrap(try JSONSerialization.jsonObject(with: expectedData) as? [String: Any])
        XCTAssertEqual(file.metadata, expected["metadata"] as? [String: String])
        let tensors = try XCTUnwrap(expected["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(file.names, tensors.keys.sorted())
        XCTAssertEqual(Set(tensors.values.compactMap { $0["dtype"] as? String }), Set(DType.allCases.map(\.safetensorsName)))

        for (name, spec) in tensors {
            let dtype = try XCTUnwrap(DType(safetensorsName: try XCTUnwrap(spec["dtype"] as? String)))
            let shape = try XCTUnwrap(spec["shape"] as? [Int])
            let values = try XCTUnwrap(spec["values"] as? [Any])
            let tensor = try file.tensor(name)
            XCTAssertEqual(tensor.dtype, dtype, name)
            XCTAssertEqual(tensor.shape, shape, name)
            if dtype.isFloatingPoint {
                let want: [Float] = try values.map { value in
                    switch value {
                    case let text as String:
                        switch text {
                        case "inf": return .infinity
                        case "-inf": return -.infinity
                        default: return .nan
                        }
                    case let number as NSNumber: return Float(number.doubleValue)
                    default: throw KinemaError.invalidArgument("bad expected value \(value) for \(name)")
                    }
                }
                XCTAssertSameFloats(try tensor.floats(), want, name)
            } else {
                let want = try values.map { value -> Int64 in
                    guard let number = value as? NSNumber else { throw KinemaError.invalidArgument("bad expected value for \(name)") }
                    return number.int64Value
                }
                XCTAssertEqual(try tensor.integers(), want, name)
            }
        }
        // -0.0 survives with its sign (checked bitwise, not by ==).
        XCTAssertEqual(try file.tensor("f32.special").floats()[3].sign, .minus)
    }
}
