import Foundation
import KinemaCore
import XCTest

// Whole-tensor comparison for golden and consistency tests. Statistics are accumulated in Double over
// the elements that are finite in both tensors; NaN and ±inf are matched by class instead (a NaN where
// the reference has a NaN is agreement, a NaN or inf anywhere else is a mismatch), so one stray NaN
// cannot hide inside a relL2 that has itself become NaN.

/// Which elements `compare` lists in `firstMismatches`.
public enum MismatchThreshold: Sendable {
    /// Any element that is not bit-for-bit equal as a Float.
    case exact
    /// |actual − expected| > the given bound.
    case absolute(Double)
    /// |actual − expected| > factor × RMS(expected): elements far off relative to the tensor's scale.
    case relativeToRMS(Double)
}

public struct Comparison: Sendable, CustomStringConvertible {
    public struct Mismatch: Sendable, CustomStringConvertible {
        /// Multi-index in the tensors' shape (row-major).
        public let index: [Int]
        public let actual: Float
        public let expected: Float

        public var description: String { "\(index): actual \(actual), expected \(expected)" }
    }

    public let shape: [Int]
    public let count: Int
    /// Largest |actual − expected| over elements finite in both.
    public let maxAbs: Double
    /// Largest |actual − expected| / max(|expected|, tiny) over elements finite in both.
    public let maxRel: Double
    /// ‖actual − expected‖₂ / max(‖expected‖₂, tiny) over elements finite in both.
    public let relL2: Double
    /// Elements whose NaN / +inf / −inf / finite class differs between the tensors.
    public let nonFiniteMismatches: Int
    /// Elements beyond the threshold (or with mismatched class), counted in full.
    public let mismatchCount: Int
    /// The first few such elements in row-major order.
    public let firstMismatches: [Mismatch]

    public var description: String {
        var text = "shape \(shape): relL2 \(relL2), maxAbs \(maxAbs), maxRel \(maxRel)"
        if nonFiniteMismatches > 0 { text += ", \(nonFiniteMismatches) NaN/inf mismatches" }
        if !firstMismatches.isEmpty {
            text += "; \(mismatchCount) elements off, first: " + firstMismatches.map(\.description).joined(separator: "; ")
        }
        return text
    }

    /// Guards divisions by a zero reference norm or element.
    public static let tiny = 1e-30
}

/// Compares two host tensors of any dtypes element by element (via `Tensor.floats()`).
/// Throws `KinemaError.shapeMismatch` when the shapes differ.
public func compare(
    _ actual: Tensor, _ expected: Tensor, threshold: MismatchThreshold = .exact, limit: Int = 8
) throws -> Comparison {
    guard actual.shape == expected.shape else {
        throw KinemaError.shapeMismatch(context: "compare", expected: "\(expected.shape)", found: "\(actual.shape)")
    }
    let a = try actual.floats()
    let b = try expected.floats()

    let bound: Double
    switch threshold {
    case .exact:
        bound = 0
    case .absolute(let value):
        bound = value
    case .relativeToRMS(let factor):
        var sum = 0.0
        var finite = 0
        for value in b where value.isFinite {
            sum += Double(value) * Double(value)
            finite += 1
        }
        bound = factor * (finite > 0 ? (sum / Double(finite)).squareRoot() : 0)
    }

    func kind(_ value: Float) -> Int {
        if value.isNaN { return 1 }
        if value.isInfinite { return value > 0 ? 2 : 3 }
        return 0
    }

    var diffSquares = 0.0
    var expectedSquares = 0.0
    var maxAbs = 0.0
    var maxRel = 0.0
    var nonFinite = 0
    var mismatchCount = 0
    var mismatches: [Comparison.Mismatch] = []
    for index in 0..<a.count {
        let (x, y) = (a[index], b[index])
        var off: Bool
        let (kindX, kindY) = (kind(x), kind(y))
        if kindX != 0 || kindY != 0 {
            off = kindX != kindY
            if off { nonFinite += 1 }
        } else {
            let difference = abs(Double(x) - Double(y))
            diffSquares += difference * difference
            expectedSquares += Double(y) * Double(y)
            maxAbs = max(maxAbs, difference)
            maxRel = max(maxRel, difference / max(abs(Double(y)), Comparison.tiny))
            if case .exact = threshold { off = x != y } else { off = difference > bound }
        }
        if off {
            mismatchCount += 1
            if mismatches.count < limit {
                mismatches.append(.init(index: unravel(index, shape: actual.shape), actual: x, expected: y))
            }
        }
    }
    return Comparison(
        shape: actual.shape, count: a.count, maxAbs: maxAbs, maxRel: maxRel,
        relL2: diffSquares.squareRoot() / max(expectedSquares.squareRoot(), Comparison.tiny),
        nonFiniteMismatches: nonFinite, mismatchCount: mismatchCount, firstMismatches: mismatches)
}

/// Row-major flat index → multi-index.
private func unravel(_ flat: Int, shape: [Int]) -> [Int] {
    var remaining = flat
    var index = [Int](repeating: 0, count: shape.count)
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
        index[axis] = remaining % shape[axis]
        remaining /= shape[axis]
    }
    return index
}

/// Fails the test unless `actual` matches `expected`: same shape, the same NaN/inf pattern, relative L2
/// error ≤ `relL2`, and (when given) every element within `maxAbs`. The failure message gives the
/// shape, the measured relL2 / maxAbs / maxRel and the first mismatching indices — elements beyond
/// `maxAbs` when given, else elements off by more than `relL2` × RMS(expected).
public func assertClose(
    _ actual: Tensor, _ expected: Tensor, relL2: Double, maxAbs: Double? = nil, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    let threshold: MismatchThreshold = maxAbs.map { .absolute($0) } ?? .relativeToRMS(relL2)
    let result: Comparison
    do {
        result = try compare(actual, expected, threshold: threshold)
    } catch {
        XCTFail("\(message.isEmpty ? "" : message + ": ")\(error)", file: file, line: line)
        return
    }
    var problems: [String] = []
    if result.nonFiniteMismatches > 0 { problems.append("\(result.nonFiniteMismatches) NaN/inf mismatches") }
    if !(result.relL2 <= relL2) { problems.append("relL2 \(result.relL2) > \(relL2)") }
    if let maxAbs, !(result.maxAbs <= maxAbs) { problems.append("maxAbs \(result.maxAbs) > \(maxAbs)") }
    guard !problems.isEmpty else { return }
    let shown = result.firstMismatches.map { "    \($0)" }.joined(separator: "\n")
    XCTFail(
        """
        \(message.isEmpty ? "" : message + ": ")tensors differ (\(problems.joined(separator: ", ")))
          shape \(result.shape) (actual \(actual.dtype.rawValue), expected \(expected.dtype.rawValue)), relL2 \(result.relL2), \
        maxAbs \(result.maxAbs), maxRel \(result.maxRel)
          \(result.mismatchCount) elements off; first:
        \(shown)
        """, file: file, line: line)
}
