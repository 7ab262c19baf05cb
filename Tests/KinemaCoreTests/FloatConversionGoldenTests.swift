import KinemaCore
import KinemaTestSupport
import XCTest

// f32 → bf16 / f16 / f8e4m3fn / f8e5m2 against PyTorch's own casts (Tests/Fixtures/convert, written by
// scripts/goldens/make_goldens.py): ~2000 values chosen at every rounding tie, its neighbours, subnormals,
// overflow boundaries, ±0, ±inf and NaN. Bit-exact, except that any NaN matches any NaN.

final class FloatConversionGoldenTests: XCTestCase {
    var input: [Float] = []

    override func setUpWithError() throws {
        input = try Fixtures.open("convert/convert.safetensors").tensor("input").floats()
        XCTAssertGreaterThan(input.count, 1000)
    }

    /// Raw element bits of a fixture tensor, widened to UInt32.
    func referenceBits(_ name: String) throws -> [UInt32] {
        let tensor = try Fixtures.open("convert/convert.safetensors").tensor(name)
        let base = UnsafeRawPointer(tensor.hostPointer)
        return (0..<tensor.count).map { index in
            switch tensor.dtype.byteSize {
            case 1: return UInt32(base.load(fromByteOffset: index, as: UInt8.self))
            case 2: return UInt32(base.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
            default: return base.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)
            }
        }
    }

    func check(_ name: String, isNaN: (UInt32) -> Bool, convert: (Float) -> UInt32) throws {
        let expected = try referenceBits(name)
        XCTAssertEqual(expected.count, input.count)
        var failures: [String] = []
        for (index, value) in input.enumerated() {
            let ours = convert(value)
            if ours == expected[index] || (isNaN(ours) && isNaN(expected[index])) { continue }
            failures.append("[\(index)] \(value) (0x\(String(value.bitPattern, radix: 16))): ours 0x\(String(ours, radix: 16)), torch 0x\(String(expected[index], radix: 16))")
        }
        XCTAssertTrue(failures.isEmpty, "\(name): \(failures.count) mismatches\n" + failures.prefix(12).joined(separator: "\n"))
    }

    func testBF16MatchesTorch() throws {
        try check("bf16", isNaN: { ($0 & 0x7F80) == 0x7F80 && ($0 & 0x7F) != 0 }) { UInt32(bf16Bits(fromFloat: $0)) }
    }

    func testF16MatchesTorch() throws {
        try check("f16", isNaN: { ($0 & 0x7C00) == 0x7C00 && ($0 & 0x3FF) != 0 }) { UInt32(f16Bits(fromFloat: $0)) }
    }

    func testF8E4M3MatchesTorch() throws {
        try check("f8e4m3", isNaN: { ($0 & 0x7F) == 0x7F }) { UInt32(f8e4m3Bits(fromFloat: $0)) }
    }

    func testF8E4M3SaturatedMatchesTorch() throws {
        try check("f8e4m3_saturated", isNaN: { ($0 & 0x7F) == 0x7F }) { UInt32(f8e4m3Bits(fromFloat: $0, overflow: .saturate)) }
    }

    func testF8E5M2MatchesTorch() throws {
        try check("f8e5m2", isNaN: { ($0 & 0x7C) == 0x7C && ($0 & 0x3) != 0 }) { UInt32(f8e5m2Bits(fromFloat: $0)) }
    }

    /// Decoding every code of each narrow format and re-encoding it gives the same code.
    func testNarrowFormatsRoundTrip() {
        for code in 0...255 where (code & 0x7F) != 0x7F {
            XCTAssertEqual(f8e4m3Bits(fromFloat: float(fromF8E4M3Bits: UInt8(code))), UInt8(code), "e4m3 0x\(String(code, radix: 16))")
        }
        for code in 0...255 where (code & 0x7C) != 0x7C {
            XCTAssertEqual(f8e5m2Bits(fromFloat: float(fromF8E5M2Bits: UInt8(code))), UInt8(code), "e5m2 0x\(String(code, radix: 16))")
        }
        for code in stride(from: 0, through: 0xFFFF, by: 7) where (code & 0x7F80) != 0x7F80 {
            XCTAssertEqual(bf16Bits(fromFloat: float(fromBF16Bits: UInt16(code))), UInt16(code))
        }
    }
}
