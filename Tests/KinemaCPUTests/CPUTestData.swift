import KinemaCore
import XCTest

// Deterministic test data and comparison helpers for the CPU op tests.

/// Seeded numbers for the op tests (KinemaCore's SplitMix64), the same on every machine.
typealias SeededNumbers = SplitMix64

extension SplitMix64 {
    /// Uniform in [-scale, scale).
    mutating func float(scale: Float = 1) -> Float { (unitFloat() * 2 - 1) * scale }

    mutating func floats(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in float(scale: scale) }
    }

    mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * unitFloat() }

    mutating func values(_ count: Int, _ low: Float, _ high: Float) -> [Float] {
        (0..<count).map { _ in uniform(low, high) }
    }
}

/// A contiguous host tensor of random values (rounded to `dtype`).
func randomTensor(_ shape: [Int], dtype: DType = .f32, seed: UInt64, scale: Float = 1) throws -> Tensor {
    var numbers = SeededNumbers(seed: seed)
    return try Tensor(numbers.floats(shape.reduce(1, *), scale: scale), shape: shape, dtype: dtype)
}

/// Asserts |actual − expected| ≤ tolerance[i] elementwise, reporting the worst element.
func assertClose(
    _ actual: [Float], _ expected: [Double], tolerance: [Double], _ message: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "\(message): element count", file: file, line: line)
    var worst = 0.0
    var worstIndex = -1
    for index in 0..<min(actual.count, expected.count) {
        let error = abs(Double(actual[index]) - expected[index])
        let ratio = error / max(tolerance[index], .leastNonzeroMagnitude)
        if !(ratio <= worst) {  // also catches NaN
            worst = ratio
            worstIndex = index
        }
    }
    if worst > 1 || worst.isNaN {
        XCTFail(
            "\(message): element \(worstIndex) is \(actual[worstIndex]), expected \(expected[worstIndex]) "
                + "(tolerance \(tolerance[worstIndex]), \(worst)× over)", file: file, line: line)
    }
}

/// Unit roundoff of f32.
let f32Epsilon = Double(Float.ulpOfOne) / 2

/// Error allowance for a dot product of length k with Σ|aᵢbᵢ| = magnitude, accumulated in f32: a
/// probabilistic √k bound (the worst case is k·u) with a small safety factor, plus output rounding.
func dotTolerance(length k: Int, magnitude: Double) -> Double {
    (4 * Double(k).squareRoot() + 2) * f32Epsilon * magnitude + 1e-37
}
