import Foundation
import KinemaCore
import KinemaIO
import XCTest

/// Every malformed file must give `KinemaError.badFile` naming the file (and the tensor, where one is
/// at fault) — never a crash, never a silently wrong tensor.
final class SafeTensorsCorruptionTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory("kinema-corrupt") }
    override func tearDown() { directory = nil }

    /// A valid two-tensor header: "w" F32 [2, 2] at [0, 16), "b" F32 [2] at [16, 24).
    private static let goodData = [UInt8](repeating: 0, count: 24)
    private static func entry(_ name: String, _ dtype: String = "F32", shape: String, offsets: String) -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }
    private static let goodHeader = "{" + entry("w", shape: "[2,2]", offsets: "[0,16]") + "," + entry("b", shape: "[2]", offsets: "[16,24]") + "}"

    /// Writes `bytes`, opens it, and checks the error. `tensor` must appear in the message; `reason`
    /// is a fragment of the expected explanation.
    private func assertRejected(
        _ bytes: [UInt8], _ label: String, tensor: String? = nil, reason: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let path = try directory.write(bytes, to: "\(label).safetensors")
        do {
            let opened = try SafeTensorsFile(path: path)
            // Opening may only succeed if reading is what fails (it never should for these cases).
            for name in opened.names { _ = try opened.tensor(name).floats() }
            XCTFail("\(label): expected an error, file opened with \(opened.names)", file: file, line: line)
        } catch let error as KinemaError {
            guard case .badFile(let errorPath, _, _) = error else {
                XCTFail("\(label): expected badFile, got \(error)", file: file, line: line)
                return
            }
            let text = error.description
            XCTAssertEqual(errorPath, path, label, file: file, line: line)
            XCTAssertTrue(text.contains(path), "\(label): message does not name the file: \(text)", file: file, line: line)
            if let tensor {
                XCTAssertTrue(text.contains("\"\(tensor)\""), "\(label): message does not name tensor \(tensor): \(text)", file: file, line: line)
            }
            XCTAssertTrue(text.contains(reason), "\(label): message lacks \"\(reason)\": \(text)", file: file, line: line)
        } catch {
            XCTFail("\(label): expected KinemaError, got \(error)", file: file, line: line)
        }
    }

    private func header(_ text: String, data: [UInt8] = goodData, length: UInt64? = nil) -> [UInt8] {
        rawSafeTensors(header: text, data: data, lengthOverride: length)
    }

    func testTheBaselineFileIsValid() throws {
        let path = try directory.write(header(Self.goodHeader), to: "good.safetensors")
        XCTAssertEqual(try SafeTensorsFile(path: path).names, ["b", "w"])
    }

    func testLengthPrefixProblems() throws {
        try assertRejected([], "empty", reason: "empty")
        try assertRejected([1, 0, 0, 0, 0], "five-bytes", reason: "shorter than the 8-byte header length")
        try assertRejected(header(Self.goodHeader, length: 10_000), "length-past-end", reason: "runs past the end of the file")
        try assertRejected(header(Self.goodHeader, length: UInt64.max), "length-absurd", reason: "over the 100000000-byte limit")
        try assertRejected(header(Self.goodHeader, length: 100_000_001), "length-over-limit", reason: "over the 100000000-byte limit")
    }

    func testJSONSyntaxProblems() throws {
        try assertRejected(rawSafeTensors(headerBytes: [0x7B, 0xFF, 0xFE, 0x7D]), "bad-utf8", reason: "not valid UTF-8")
        try assertRejected(header(#"{"w":{"dtype":"F32""#), "invalid-json", reason: "invalid JSON")
        try assertRejected(header("[1, 2]"), "array-json", reason: "not an object")
        try assertRejected(header("\"text\""), "string-json", reason: "not an object")
        try assertRejected(header(Self.goodHeader + " x"), "trailing-text", reason: "unexpected text after the JSON value")
        // Zero padding is not JSON whitespace; the reference reader rejects it too.
        try assertRejected(rawSafeTensors(headerBytes: Array(Self.goodHeader.utf8) + [0, 0], data: Self.goodData), "nul-padding",
                           reason: "unexpected text after the JSON value")
        try assertRejected(header(String(repeating: "[", count: 10_000)), "deep-nesting", reason: "nested deeper than")
        try assertRejected(header(#"{"\ud800x":{}}"#), "lone-surrogate", reason: "unpaired surrogate")
    }

    func testDuplicateKeys() throws {
        let duplicated = "{" + Self.entry("w", shape: "[2,2]", offsets: "[0,16]") + "," + Self.entry("w", shape: "[2]", offsets: "[16,24]") + "}"
        try assertRejected(header(duplicated), "duplicate-tensor", reason: "duplicate key \"w\"")
        let innerDuplicate = #"{"w":{"dtype":"F32","dtype":"I32","shape":[6],"data_offsets":[0,24]}}"#
        try assertRejected(header(innerDuplicate), "duplicate-field", reason: "duplicate key \"dtype\"")
    }

    func testEntryStructureProblems() throws {
        try assertRejected(header(#"{"w":[1,2]}"#), "entry-not-object", tensor: "w", reason: "must be an object")
        try assertRejected(header(#"{"w":{"dtype":"F32","shape":[6]}}"#), "missing-offsets", tensor: "w", reason: "no \"data_offsets\"")
        try assertRejected(header(#"{"w":{"shape":[6],"data_offsets":[0,24]}}"#), "missing-dtype", tensor: "w", reason: "no \"dtype\"")
        try assertRejected(header(#"{"w":{"dtype":"F32","data_offsets":[0,24]}}"#), "missing-shape", tensor: "w", reason: "no \"shape\"")
        try assertRejected(header(#"{"w":{"dtype":4,"shape":[6],"data_offsets":[0,24]}}"#), "dtype-number", tensor: "w", reason: "must be a string")
        try assertRejected(header(#"{"w":{"dtype":"F32","shape":"6","data_offsets":[0,24]}}"#), "shape-string", tensor: "w", reason: "must be an array")
        try assertRejected(header(#"{"w":{"dtype":"F32","shape":[6],"data_offsets":{"a":0}}}"#), "offsets-object", tensor: "w", reason: "must be an array")
    }

    func testDTypeProblems() throws {
        try assertRejected(header("{" + Self.entry("w", "F33", shape: "[6]", offsets: "[0,24]") + "}"), "unknown-dtype", tensor: "w", reason: "unknown dtype \"F33\"")
        try assertRejected(header("{" + Self.entry("w", "F64", shape: "[3]", offsets: "[0,24]") + "}"), "f64-dtype", tensor: "w", reason: "unsupported dtype F64 for tensor \"w\"")
        try assertRejected(header("{" + Self.entry("w", "U16", shape: "[12]", offsets: "[0,24]") + "}"), "u16-dtype", tensor: "w", reason: "unsupported dtype U16")
    }

    func testShapeProblems() throws {
        try assertRejected(header("{" + Self.entry("w", shape: "[-2,3]", offsets: "[0,24]") + "}"), "negative-shape", tensor: "w", reason: "must be non-negative")
        try assertRejected(header("{" + Self.entry("w", shape: "[2.5]", offsets: "[0,24]") + "}"), "fractional-shape", tensor: "w", reason: "not an integer")
        try assertRejected(header("{" + Self.entry("w", shape: "[6e0]", offsets: "[0,24]") + "}"), "exponent-shape", tensor: "w", reason: "not an integer")
        try assertRejected(header("{" + Self.entry("w", shape: "[99999999999999999999]", offsets: "[0,24]") + "}"), "huge-dimension", tensor: "w", reason: "fits in 64 bits")
        try assertRejected(header("{" + Self.entry("w", shape: "[4294967296,4294967296]", offsets: "[0,24]") + "}"), "product-overflow", tensor: "w", reason: "more elements than fit in 64 bits")
        // The element count fits but the byte count does not.
        try assertRejected(header("{" + Self.entry("w", shape: "[4611686018427387904]", offsets: "[0,24]") + "}"), "bytes-overflow", tensor: "w", reason: "more bytes than fit in 64 bits")
        // A zero dimension does not excuse overflow in the others: strides would still overflow.
        try assertRejected(header("{" + Self.entry("w", shape: "[0,4294967296,4294967296]", offsets: "[0,0]") + "}", data: []), "zero-dim-overflow", tensor: "w", reason: "more elements")
        try assertRejected(header("{" + Self.entry("w", shape: "[null]", offsets: "[0,24]") + "}"), "null-dimension", tensor: "w", reason: "must be an integer")
    }

    func testOffsetProblems() throws {
        try assertRejected(header("{" + Self.entry("w", shape: "[6]", offsets: "[0,12,24]") + "}"), "three-offsets", tensor: "w", reason: "must be [begin, end]")
        try assertRejected(header("{" + Self.entry("w", shape: "[6]", offsets: "[24,0]") + "}"), "begin-after-end", tensor: "w", reason: "begin after end")
        try assertRejected(header("{" + Self.entry("w", shape: "[6]", offsets: "[-24,0]") + "}"), "negative-offset", tensor: "w", reason: "must be non-negative")
        try assertRejected(header("{" + Self.entry("w", shape: "[5]", offsets: "[0,24]") + "}"), "size-mismatch", tensor: "w", reason: "needs 20")
        try assertRejected(header("{" + Self.entry("w", shape: "[8]", offsets: "[0,32]") + "}"), "past-data", tensor: "w", reason: "end past the data section")
        let overlap = "{" + Self.entry("w", shape: "[4]", offsets: "[0,16]") + "," + Self.entry("b", shape: "[4]", offsets: "[8,24]") + "}"
        try assertRejected(header(overlap), "overlap", tensor: "b", reason: "overlap tensor \"w\"")
        let gap = "{" + Self.entry("w", shape: "[2]", offsets: "[0,8]") + "," + Self.entry("b", shape: "[2]", offsets: "[16,24]") + "}"
        try assertRejected(header(gap), "gap", tensor: "b", reason: "gap of 8 bytes")
        let lateStart = "{" + Self.entry("w", shape: "[4]", offsets: "[8,24]") + "}"
        try assertRejected(header(lateStart), "late-start", tensor: "w", reason: "at the start of the data section")
        try assertRejected(header(Self.goodHeader, data: Self.goodData + [0, 0, 0, 0]), "trailing-bytes", reason: "4 trailing bytes")
        try assertRejected(header(Self.goodHeader, data: Array(Self.goodData.prefix(20))), "truncated-data", tensor: "b", reason: "end past the data section")
    }

    func testMetadataProblems() throws {
        let numberValue = #"{"__metadata__":{"format":"pt","step":5},"# + Self.goodHeader.dropFirst()
        try assertRejected(header(numberValue), "metadata-number", reason: "__metadata__.step")
        let arrayMetadata = #"{"__metadata__":["pt"],"# + Self.goodHeader.dropFirst()
        try assertRejected(header(arrayMetadata), "metadata-array", reason: "__metadata__ must be an object of strings")
        // null metadata is what the reference reader accepts as "no metadata".
        let nullMetadata = #"{"__metadata__":null,"# + Self.goodHeader.dropFirst()
        let path = try directory.write(header(nullMetadata), to: "null-metadata.safetensors")
        XCTAssertEqual(try SafeTensorsFile(path: path).metadata, [:])
    }

    func testNotARegularFile() throws {
        XCTAssertThrowsError(try SafeTensorsFile(path: directory.path)) { error in
            XCTAssertTrue("\(error)".contains("not a regular file"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: directory.file("absent.safetensors"))) { error in
            guard case KinemaError.io(let path, _)? = error as? KinemaError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, self.directory.file("absent.safetensors"))
        }
    }

    /// Flips, overwrites and truncates bytes of a valid file at seeded positions: opening and reading
    /// every tensor must either succeed or throw, never crash.
    func testFuzzedFilesNeverCrash() throws {
        let source = directory.file("source.safetensors")
        try SafeTensors.write(
            ["w": try Tensor((0..<12).map(Float.init), shape: [3, 4], dtype: .bf16),
             "ids": try Tensor(integers: [1, 2, 3], shape: [3], dtype: .i64),
             "mask": try Tensor(integers: [1, 0], shape: [2], dtype: .bool),
             "s": try Tensor([0.5], shape: [])],
            metadata: ["format": "pt"], to: source)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        let headerEnd = 8 + original[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        var random = SplitMix64(seed: 0x5AFE_7E45)
        var opened = 0
        var rejected = 0
        let interesting = Array("{}[]\":,0123456789-.e ".utf8) + [0, 0xFF, 0x80]
        for round in 0..<400 {
            var bytes = original
            switch round % 4 {
            case 0:  // flip one bit, mostly inside the header where it matters
                let position = random.below(10) < 8 ? random.below(headerEnd) : random.below(bytes.count)
                bytes[position] ^= UInt8(1 << random.below(8))
            case 1:  // overwrite with a structurally interesting byte
                bytes[random.below(headerEnd)] = interesting[random.below(interesting.count)]
            case 2:  // truncate anywhere
                bytes = Array(bytes.prefix(random.below(bytes.count)))
            default:  // several mutations at once, including the length prefix
                for _ in 0..<(1 + random.below(4)) { bytes[random.below(min(bytes.count, headerEnd))] = UInt8(random.below(256)) }
            }
            let path = try directory.write(bytes, to: "fuzz.safetensors")
            do {
                let file = try SafeTensorsFile(path: path)
                for name in file.names {
                    let tensor = try file.tensor(name)
                    _ = try tensor.floats()
                }
                opened += 1
            } catch let error as KinemaError {
                if case .badFile = error {} else { XCTFail("round \(round): unexpected error kind \(error)") }
                rejected += 1
            }
        }
        XCTAssertEqual(opened + rejected, 400)
        XCTAssertGreaterThan(rejected, 100, "most mutations should be caught")
    }
}
