import KinemaCore
import KinemaNN
import XCTest

/// Synthetic benchmark weights: large tensors are generated in parallel chunks and stored straight in their
/// dtype; that must give the values a single f32 draw converted afterwards would, whatever the dtype.
final class SyntheticWeightsTests: XCTestCase {
    /// 2.5 chunks of 2^20 values: the parallel path, with a partial last chunk.
    let shape = [5, 1 << 19]

    func testParallelBF16EqualsF32ConvertedOnce() throws {
        var forF32 = SyntheticWeights(seed: 3)
        var forBF16 = SyntheticWeights(seed: 3)
        let f32 = try forF32.tensor(shape: shape, dtype: .f32)
        let bf16 = try forBF16.tensor(shape: shape, dtype: .bf16)
        XCTAssertEqual(bf16.dtype, .bf16)
        XCTAssertEqual(bf16.shape, shape)
        let values = try f32.floats()
        let rounded = try bf16.floats()
        XCTAssertEqual(values.count, rounded.count)
        var mismatches = 0
        for index in values.indices where float(fromBF16Bits: bf16Bits(fromFloat: values[index])) != rounded[index] { mismatches += 1 }
        XCTAssertEqual(mismatches, 0)
        // Not all equal, inside [-0.05, 0.05), and the generator moved on identically.
        XCTAssertGreaterThan(Set(values.prefix(1000)).count, 900)
        XCTAssertTrue(values.allSatisfy { $0 >= -0.05 && $0 < 0.05 })
        XCTAssertEqual(forF32.next(), forBF16.next())
    }

    func testSameSeedSameValuesAndOtherSeedDiffers() throws {
        var a = SyntheticWeights(seed: 9)
        var b = SyntheticWeights(seed: 9)
        var c = SyntheticWeights(seed: 10)
        let x = try a.tensor(shape: shape, dtype: .f16).floats()
        XCTAssertEqual(x, try b.tensor(shape: shape, dtype: .f16).floats())
        XCTAssertNotEqual(Array(x.suffix(100)), Array(try c.tensor(shape: shape, dtype: .f16).floats().suffix(100)))
    }
}
