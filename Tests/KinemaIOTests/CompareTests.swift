import KinemaCore
import KinemaTestSupport
import XCTest

/// The comparison helpers every golden test relies on.
final class CompareTests: XCTestCase {
    func testIdenticalTensorsAcrossDTypes() throws {
        let values: [Float] = [1, -2, 0.5, 4]
        let result = try compare(try Tensor(values, shape: [2, 2], dtype: .bf16), try Tensor(values, shape: [2, 2]))
        XCTAssertEqual(result.maxAbs, 0)
        XCTAssertEqual(result.relL2, 0)
        XCTAssertTrue(result.firstMismatches.isEmpty)
        assertClose(try Tensor(values, shape: [2, 2]), try Tensor(values, shape: [2, 2]), relL2: 0, maxAbs: 0)
    }

    func testStatisticsAndMismatchIndices() throws {
        let expected = try Tensor([3, 0, 0, 4, 0, 0], shape: [2, 3])
        let actual = try Tensor([3, 0, 0, 4, 0, 1], shape: [2, 3])
        let result = try compare(actual, expected)
        XCTAssertEqual(result.maxAbs, 1)
        XCTAssertEqual(result.relL2, 0.2, accuracy: 1e-12)  // ‖(0,0,0,0,0,1)‖ / ‖(3,0,0,4,0,0)‖
        XCTAssertEqual(result.maxRel, 1 / Comparison.tiny)
        XCTAssertEqual(result.firstMismatches.map(\.index), [[1, 2]])
        XCTAssertEqual(result.mismatchCount, 1)
        XCTAssertEqual(try compare(actual, expected, threshold: .absolute(1)).mismatchCount, 0)
        XCTAssertEqual(try compare(actual, expected, threshold: .relativeToRMS(0.1)).mismatchCount, 1)
        assertClose(actual, expected, relL2: 0.25)
    }

    func testNonFiniteValuesAreMatchedByClass() throws {
        let expected = try Tensor([.nan, .infinity, 1, 2], shape: [4])
        let same = try compare(try Tensor([.nan, .infinity, 1, 2], shape: [4]), expected)
        XCTAssertEqual(same.nonFiniteMismatches, 0)
        XCTAssertEqual(same.relL2, 0)
        let stray = try compare(try Tensor([.nan, -.infinity, .nan, 2], shape: [4]), expected)
        XCTAssertEqual(stray.nonFiniteMismatches, 2)
        XCTAssertEqual(stray.firstMismatches.map(\.index), [[1], [2]])
        XCTAssertFalse(stray.relL2.isNaN, "non-finite elements stay out of the norms")
    }

    func testShapesMustMatch() throws {
        XCTAssertThrowsError(try compare(try Tensor([1, 2], shape: [2]), try Tensor([1, 2], shape: [1, 2]))) { error in
            guard case KinemaError.shapeMismatch? = error as? KinemaError else { return XCTFail("\(error)") }
        }
    }
}
