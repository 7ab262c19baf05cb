import KinemaCore
import XCTest

// Host creation and read-back: Tensor(values:) / floats() / integers() per dtype, and the scalar
// conversions' self-consistency (decode then encode is the identity on every non-NaN bit pattern).
// The rounding itself is checked against PyTorch-produced fixtures elsewhere, not here.

final class HostTests: XCTestCase {
    /// Deterministic spread of values over many binades, signs and both zeros.
    private func sampleValues() -> [Float] {
        var values: [Float] = [0, -0.0, 1, -1, 0.1, 1e-3, -1e-5, 3.14159, 65_000, -448, 1e10, -1e-30]
        var state: UInt32 = 12_345
        for _ in 0..<200 {
            state = state &* 1_664_525 &+ 1_013_904_223
            let exponent = Int(state >> 27) - 16  // 2^-16 … 2^15
            let mantissa = Float(state & 0xFFFF) / 65_536
            values.append((state & 0x400) != 0 ? -(1 + mantissa) * Float(sign: .plus, exponent: exponent, significand: 1)
                                                : (1 + mantissa) * Float(sign: .plus, exponent: exponent, significand: 1))
        }
        return values
    }

    func testFloatRoundTripIsIdempotentPerDType() throws {
        let values = sampleValues()
        for dtype in DType.allCases where dtype.isFloatingPoint {
            let once = try Tensor(values, shape: [values.count], dtype: dtype)
            XCTAssertEqual(once.byteCount, values.count * dtype.byteSize)
            let decoded = try once.floats()
            let twice = try Tensor(decoded, shape: [decoded.count], dtype: dtype)
            // Storing an already representable value must not change it.
            XCTAssertEqual(try twice.floats().map(\.bitPattern), decoded.map(\.bitPattern), "\(dtype)")
            if dtype == .f32 {
                XCTAssertEqual(decoded.map(\.bitPattern), values.map(\.bitPattern))
            }
        }
    }

    func testNarrowFormatsDecodeEncodeEveryBitPattern() {
        for bits in UInt16.min...UInt16.max {
            let bf16 = float(fromBF16Bits: bits)
            if !bf16.isNaN { XCTAssertEqual(bf16Bits(fromFloat: bf16), bits, "bf16 \(bits)") }
            let f16 = float(fromF16Bits: bits)
            if !f16.isNaN { XCTAssertEqual(f16Bits(fromFloat: f16), bits, "f16 \(bits)") }
        }
        for bits in UInt8.min...UInt8.max {
            let e4m3 = float(fromF8E4M3Bits: bits)
            if !e4m3.isNaN {
                XCTAssertEqual(f8e4m3Bits(fromFloat: e4m3, overflow: .nan), bits, "e4m3 \(bits)")
                XCTAssertEqual(f8e4m3Bits(fromFloat: e4m3, overflow: .saturate), bits, "e4m3 \(bits)")
            }
            let e5m2 = float(fromF8E5M2Bits: bits)
            if !e5m2.isNaN { XCTAssertEqual(f8e5m2Bits(fromFloat: e5m2), bits, "e5m2 \(bits)") }
        }
        XCTAssertTrue(float(fromBF16Bits: bf16Bits(fromFloat: .nan)).isNaN)
        XCTAssertTrue(float(fromF16Bits: f16Bits(fromFloat: .nan)).isNaN)
        XCTAssertTrue(float(fromF8E4M3Bits: f8e4m3Bits(fromFloat: .nan)).isNaN)
        XCTAssertTrue(float(fromF8E5M2Bits: f8e5m2Bits(fromFloat: .nan)).isNaN)
    }

    func testIntegerRoundTrips() throws {
        let cases: [(DType, [Int64])] = [
            (.i64, [Int64.min, -1, 0, 1 << 40, Int64.max]),
            (.i32, [Int64(Int32.min), -7, 0, 123_456_789, Int64(Int32.max)]),
            (.i8, [-128, -1, 0, 5, 127]),
            (.u8, [0, 1, 128, 200, 255]),
            (.bool, [0, 1, 0, 1, 1]),
        ]
        for (dtype, values) in cases {
            let x = try Tensor(integers: values, shape: [values.count], dtype: dtype)
            XCTAssertEqual(try x.integers(), values, "\(dtype)")
            XCTAssertEqual(x.byteCount, values.count * dtype.byteSize)
        }
        // Small integers read back the same through floats.
        let small = try Tensor(integers: [-3, 0, 9], shape: [3], dtype: .i32)
        XCTAssertEqual(try small.floats(), [-3, 0, 9])
        XCTAssertEqual(try Tensor([1.9, -2.9, 300], shape: [3], dtype: .i32).integers(), [1, -2, 300])
    }

    func testFloatToIntegerStoresNeverTrap() throws {
        XCTAssertEqual(HostElements.truncatedInt64(-2.7), -2)
        XCTAssertEqual(HostElements.truncatedInt64(1e20), .max)
        XCTAssertEqual(HostElements.truncatedInt64(-1e20), .min)
        XCTAssertEqual(HostElements.truncatedInt64(9.223372036854775808e18), .max)
        XCTAssertEqual(HostElements.truncatedInt64(-9.223372036854775808e18), .min)
        XCTAssertEqual(HostElements.truncatedInt64(.nan), 0)
        XCTAssertEqual(HostElements.truncatedInt64(.infinity), .max)
        let stored = try Tensor([1e20, -1e20, .nan, -1], shape: [4], dtype: .i32).integers()
        XCTAssertEqual(stored, [Int64(Int32.max), Int64(Int32.min), 0, -1])
        // PyTorch converts float → uint8 through int64: −1 wraps to 255.
        XCTAssertEqual(try Tensor([-1, 1e20], shape: [2], dtype: .u8).integers(), [255, 255])
        XCTAssertEqual(try Tensor([1e20, -1e20], shape: [2], dtype: .i8).integers(), [127, -128])
    }

    func testCreationErrorsAndStridedReads() throws {
        XCTAssertThrowsError(try Tensor([1, 2, 3], shape: [2, 2]))
        XCTAssertThrowsError(try Tensor(integers: [1, 2], shape: [3]))
        XCTAssertThrowsError(try Tensor(integers: [1, 2], shape: [2], dtype: .f32))
        let x = try Tensor((0..<6).map(Float.init), shape: [2, 3], dtype: .bf16)
        XCTAssertEqual(try x.transposed(0, 1).floats(), [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(try Tensor.zeros([2, 0]).floats(), [])
        XCTAssertEqual(try Tensor([7], shape: []).floats(), [7])
        var offsets: [Int] = []
        try x.sliced(axis: 1, start: 0, end: 3, step: 2).forEachElementOffset { offsets.append($0) }
        XCTAssertEqual(offsets, [0, 2, 3, 5])
    }
}
