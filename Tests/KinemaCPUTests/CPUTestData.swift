import KinemaCore
import XCTest

// Deterministic test data and comparison helpers for the CPU op tests.

/// SplitMix64: a tiny seeded generator so every test sees the same numbers on every machine.
struct SeededNumbers {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    mutating func float(scale: Float = 1) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }

    mutating func floats(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in float(scale: scale) }
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
