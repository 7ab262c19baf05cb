import KinemaCore
import XCTest

// Helpers for the CPU op tests: seeded values, tensors with awkward memory layouts but known logical
// contents, and comparisons against the Double-precision "slow twins" each test writes for its op.

typealias SeededRandom = SplitMix64

/// How a test tensor's logical elements are laid out in memory.
enum Layout: CaseIterable {
    case contiguous
    /// Stored with axes reversed, then permuted back (every stride is "wrong").
    case permuted
    /// Embedded in a tensor one larger on each side of every axis (filled with garbage), then narrowed.
    case padded
    /// Every other element of a last axis twice as long (garbage between).
    case stepped
}

/// Poison for memory a view must not read; large enough to show up in any result it leaks into.
let garbage: Float = 1.0e30

func count(of shape: [Int]) -> Int { shape.reduce(1, *) }

/// Row-major multi-index of flat index `index`.
func unravel(_ index: Int, _ shape: [Int]) -> [Int] {
    var rest = index
    var result = [Int](repeating: 0, count: shape.count)
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
        result[axis] = rest % shape[axis]
        rest /= shape[axis]
    }
    return result
}

func ravel(_ index: [Int], _ shape: [Int]) -> Int {
    var flat = 0
    for axis in 0..<shape.count { flat = flat * shape[axis] + index[axis] }
    return flat
}

/// A tensor of `dtype` whose logical elements are `values` (rounded to `dtype`), stored per `layout`.
func makeTensor(_ values: [Float], _ shape: [Int], _ dtype: DType = .f32, _ layout: Layout = .contiguous) throws -> Tensor {
    precondition(values.count == count(of: shape), "test bug: \(values.count) values for \(shape)")
    let rank = shape.count
    switch layout {
    case .contiguous:
        return try Tensor(values, shape: shape, dtype: dtype)
    case .permuted:
        let physicalShape = Array(shape.reversed())
        var physical = [Float](repeating: 0, count: values.count)
        for flat in 0..<values.count {
            physical[ravel(Array(unravel(flat, shape).reversed()), physicalShape)] = values[flat]
        }
        return try Tensor(physical, shape: physicalShape, dtype: dtype).permuted(Array((0..<rank).reversed()))
    case .padded:
        let physicalShape = shape.map { $0 + 2 }
        var physical = [Float](repeating: garbage, count: count(of: physicalShape))
        for flat in 0..<values.count {
            physical[ravel(unravel(flat, shape).map { $0 + 1 }, physicalShape)] = values[flat]
        }
        var view = try Tensor(physical, shape: physicalShape, dtype: dtype)
        for axis in 0..<rank { view = try view.narrowed(axis: axis, start: 1, length: shape[axis]) }
        return view
    case .stepped:
        guard rank > 0 else { return try Tensor(values, shape: shape, dtype: dtype) }
        var physicalShape = shape
        physicalShape[rank - 1] = 2 * shape[rank - 1]
        var physical = [Float](repeating: garbage, count: count(of: physicalShape))
        for flat in 0..<values.count {
            var index = unravel(flat, shape)
            index[rank - 1] *= 2
            physical[ravel(index, physicalShape)] = values[flat]
        }
        return try Tensor(physical, shape: physicalShape, dtype: dtype)
            .sliced(axis: rank - 1, start: 0, end: physicalShape[rank - 1], step: 2)
    }
}

/// The logical elements of `x` in f64 (what the slow twins compute from).
func doubles(_ x: Tensor) throws -> [Double] { try x.floats().map(Double.init) }

/// Result tolerance per output dtype: f32 results should agree with an f64 twin to a few ulp; narrow
/// dtypes are rounded once at the end, so half an ulp of the format plus f32 noise.
func tolerance(_ dtype: DType) -> Double {
    switch dtype {
    case .bf16: return 1.0 / 128
    case .f16: return 1.0 / 1024
    default: return 2e-6
    }
}

/// Asserts |actual − expected| ≤ rtol·|expected| + atol elementwise (NaN must match NaN; infinities
/// must match exactly), reporting the worst element.
func assertClose(
    _ actual: Tensor, _ expected: [Double], shape: [Int], rtol: Double, atol: Double = 0,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) throws {
    XCTAssertEqual(actual.shape, shape, "shape \(message())", file: file, line: line)
    XCTAssertTrue(actual.isContiguous, "result not contiguous \(message())", file: file, line: line)
    let values = try actual.floats()
    guard values.count == expected.count else {
        XCTFail("\(values.count) elements, expected \(expected.count) \(message())", file: file, line: line)
        return
    }
    var worst: (index: Int, excess: Double)?
    for (index, (got, want)) in zip(values, expected).enumerated() {
        let got = Double(got)
        let ok: Bool
        if want.isNaN {
            ok = got.isNaN
        } else if want.isInfinite || got.isInfinite {
            ok = got == want
        } else {
            ok = abs(got - want) <= rtol * abs(want) + atol
        }
        if !ok {
            let excess = (want.isFinite && got.isFinite) ? abs(got - want) - rtol * abs(want) - atol : .infinity
            if worst.map({ excess > $0.excess }) ?? true { worst = (index, excess) }
        }
    }
    if let worst {
        XCTFail("element \(worst.index) \(unravel(worst.index, shape)): got \(values[worst.index]), expected \(expected[worst.index]) (rtol \(rtol), atol \(atol)) \(message())", file: file, line: line)
    }
}

/// The raw bytes of a tensor's logical elements, in order.
func logicalBytes(_ x: Tensor) -> [UInt8] {
    var bytes: [UInt8] = []
    let size = x.dtype.byteSize
    x.forEachElementOffset { element in
        for byte in 0..<size { bytes.append(x.storage.base.load(fromByteOffset: element * size + byte, as: UInt8.self)) }
    }
    return bytes
}

/// Asserts that `body` throws a `KinemaError` (and, if given, that its description mentions each string).
func assertThrowsKinema<T>(
    _ body: @autoclosure () throws -> T, mentioning words: [String] = [],
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("expected a KinemaError", file: file, line: line)
    } catch let error as KinemaError {
        for word in words {
            XCTAssertTrue(error.description.contains(word), "\"\(error)\" does not mention \(word)", file: file, line: line)
        }
    } catch {
        XCTFail("expected a KinemaError, got \(error)", file: file, line: line)
    }
}
