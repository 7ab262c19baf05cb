import KinemaCore
import KinemaCPU
import XCTest

// sum / mean / max over axis sets, both loop orders (rows and columns), keepDims, strided inputs,
// empty reductions, and NaN propagation, against an f64 twin that visits elements one by one.

final class ReduceTests: XCTestCase {
    let backend = CPUBackend.shared

    /// The slow twin: every input element is added into the output cell its kept indices name.
    private func twin(_ op: ReduceOp, _ x: Tensor, axes: [Int]) throws -> (shape: [Int], values: [Double]) {
        let values = try doubles(x)
        let kept = (0..<x.rank).filter { !axes.contains($0) }
        let outShape = kept.map { x.shape[$0] }
        let reducedCount = axes.reduce(1) { $0 * x.shape[$1] }
        var out = [Double](repeating: op == .max ? -.infinity : 0, count: count(of: outShape))
        for flat in 0..<values.count {
            let index = unravel(flat, x.shape)
            let cell = ravel(kept.map { index[$0] }, outShape)
            switch op {
            case .sum, .mean: out[cell] += values[flat]
            case .max: out[cell] = (out[cell].isNaN || values[flat].isNaN) ? .nan : max(out[cell], values[flat])
            }
        }
        if op == .mean { out = out.map { $0 / Double(reducedCount) } }
        return (outShape, out)
    }

    private func check(
        _ op: ReduceOp, _ x: Tensor, axes: [Int], keepDims: Bool, rtol: Double, atol: Double = 0, _ context: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let resolved = axes.map { $0 < 0 ? $0 + x.rank : $0 }
        let (keptShape, expected) = try twin(op, x, axes: resolved)
        let shape = keepDims ? (0..<x.rank).map { resolved.contains($0) ? 1 : x.shape[$0] } : keptShape
        let y = try backend.reduce(op, x, axes: axes, keepDims: keepDims)
        XCTAssertEqual(y.dtype, x.dtype, file: file, line: line)
        try assertClose(y, expected, shape: shape, rtol: rtol, atol: atol, context, file: file, line: line)
    }

    func testAxisSetsLayoutsAndDTypes() throws {
        var random = SeededRandom(seed: 20)
        let shape = [3, 5, 17, 2]
        let axisSets: [[Int]] = [[3], [2], [1], [0], [-1], [1, 2], [0, 2], [2, 0], [0, 1, 2, 3], [1, 3], [0, 3]]
        for dtype in [DType.f32, .bf16, .f16] {
            let values = random.values(count(of: shape), -3, 5)
            for layout in Layout.allCases {
                let x = try makeTensor(values, shape, dtype, layout)
                for axes in axisSets {
                    for op in ReduceOp.allCases {
                        // A sum of many values can cancel toward zero: allow f32-noise of the summands' scale.
                        let atol = op == .max ? 0 : (dtype == .f32 ? 1e-5 : 0.05)
                        try check(op, x, axes: axes, keepDims: axes.count % 2 == 0, rtol: tolerance(dtype), atol: atol,
                                  "\(op) \(axes) \(dtype) \(layout)")
                    }
                }
            }
        }
    }

    func testColumnAndRowPathsOnLargeTensors() throws {
        var random = SeededRandom(seed: 21)
        // [B, L, D] mean over L: the column path (unit-stride kept axis), with one outer row split over
        // threads, and with many outer rows.
        for shape in [[1, 300, 130], [4, 97, 64]] {
            let x = try makeTensor(random.values(count(of: shape), -2, 3), shape, .f32)
            for op in ReduceOp.allCases {
                try check(op, x, axes: [1], keepDims: true, rtol: 1e-6, atol: 1e-6, "\(op) \(shape) over L")
                try check(op, x, axes: [0, 1], keepDims: false, rtol: 1e-6, atol: 1e-6, "\(op) \(shape) over B, L")
            }
        }
        // Row path over a long last axis, split into scratch blocks and over threads.
        let long = try makeTensor(random.values(6 * 9001, -2, 3), [6, 9001], .bf16, .stepped)
        for op in ReduceOp.allCases {
            try check(op, long, axes: [1], keepDims: false, rtol: 1.0 / 128, "\(op) long rows")
        }
        // Many short rows, split over threads.
        let short = try makeTensor(random.values(40_000 * 3, -2, 3), [40_000, 3], .f32, .permuted)
        try check(.sum, short, axes: [-1], keepDims: false, rtol: 1e-6, atol: 1e-6, "short rows")
    }

    func testSumsAccumulateInDoubleAndLargeMagnitudes() throws {
        // 1e8 + many ones: an f32 running sum would lose every one of the ones.
        var values = [Float](repeating: 1, count: 4097)
        values[0] = 1e8
        let x = try Tensor(values, shape: [4097])
        XCTAssertEqual(try backend.reduce(.sum, x, axes: [0], keepDims: false).floats(), [Float(1e8 + 4096)])
        var random = SeededRandom(seed: 22)
        let big = try makeTensor(random.values(7 * 33, -1e4, 1e4), [7, 33], .f32, .padded)
        for op in ReduceOp.allCases {
            try check(op, big, axes: [0], keepDims: false, rtol: 1e-6, atol: 1e-3, "\(op) ±1e4")
        }
    }

    func testEmptyReductionsNaNAndExpandedInput() throws {
        let empty = try Tensor.zeros([3, 0, 2])
        XCTAssertEqual(try backend.reduce(.sum, empty, axes: [1], keepDims: false).floats(), [0, 0, 0, 0, 0, 0])
        XCTAssertTrue(try backend.reduce(.mean, empty, axes: [1], keepDims: false).floats().allSatisfy(\.isNaN))
        assertThrowsKinema(try self.backend.reduce(.max, empty, axes: [1], keepDims: false), mentioning: ["max"])
        let keptEmpty = try backend.reduce(.max, empty, axes: [0], keepDims: true)
        XCTAssertEqual(keptEmpty.shape, [1, 0, 2])

        let withNaN = try Tensor([1, .nan, 3, 4, 5, 6], shape: [2, 3])
        let maxima = try backend.reduce(.max, withNaN, axes: [1], keepDims: false).floats()
        XCTAssertTrue(maxima[0].isNaN)
        XCTAssertEqual(maxima[1], 6)
        let negatives = try Tensor([-.infinity, -.infinity], shape: [2])
        XCTAssertEqual(try backend.reduce(.max, negatives, axes: [0], keepDims: false).floats(), [-.infinity])

        let expanded = try Tensor([1, 2, 3], shape: [3, 1]).expanded(to: [3, 50])
        try check(.sum, expanded, axes: [1], keepDims: false, rtol: 1e-7, "expanded")
        try check(.mean, expanded, axes: [0], keepDims: true, rtol: 1e-7, "expanded columns")
        let scalar = try backend.reduce(.sum, try Tensor([2, 3], shape: [2]), axes: [0], keepDims: false)
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(try scalar.floats(), [5])
    }

    func testAxisErrors() throws {
        let x = try Tensor.zeros([2, 3])
        assertThrowsKinema(try self.backend.reduce(.sum, x, axes: [], keepDims: false))
        assertThrowsKinema(try self.backend.reduce(.sum, x, axes: [2], keepDims: false), mentioning: ["axis 2"])
        assertThrowsKinema(try self.backend.reduce(.sum, x, axes: [1, -1], keepDims: false), mentioning: ["twice"])
        assertThrowsKinema(try self.backend.reduce(.mean, try Tensor.zeros([2], dtype: .i64), axes: [0], keepDims: false))
    }
}
