@testable import KinemaCPU
import KinemaCore
import XCTest

// matmul (batched, broadcast, strided) and linear (weight [out, in] in any float dtype, bias) through the
// backend, against Double evaluations of the same stored values, with each GEMM engine.

final class MatmulTests: XCTestCase {
    let backend = CPUBackend.shared

    func engines() -> [GemmEngine] { BLASLibrary.shared == nil ? [.builtin] : [.builtin, .blas] }

    /// Double matmul of the logical values with NumPy batch broadcasting; tolerances per element.
    func reference(_ a: Tensor, _ b: Tensor, outDtype: DType) throws -> (shape: [Int], expected: [Double], tolerance: [Double]) {
        let av = try a.floats(), bv = try b.floats()
        let (m, k, n) = (a.shape[a.rank - 2], a.shape[a.rank - 1], b.shape[b.rank - 1])
        let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
        let rank = max(aBatch.count, bBatch.count)
        let pa = [Int](repeating: 1, count: rank - aBatch.count) + aBatch
        let pb = [Int](repeating: 1, count: rank - bBatch.count) + bBatch
        let batch = zip(pa, pb).map { max($0, $1) }
        let count = batch.reduce(1, *)
        var expected = [Double](), tolerance = [Double]()
        let rounding = outDtype == .bf16 ? 1.0 / 256 : (outDtype == .f16 ? 1.0 / 2048 : 0)
        for flat in 0..<count {
            // Unravel the batch index and map it into each operand (size-1 axes broadcast).
            var rest = flat, ia = 0, ib = 0, sa = 1, sb = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let index = rest % batch[axis]
                rest /= batch[axis]
                ia += (pa[axis] == 1 ? 0 : index) * sa
                ib += (pb[axis] == 1 ? 0 : index) * sb
                sa *= pa[axis]
                sb *= pb[axis]
            }
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, magnitude = 0.0
                    for p in 0..<k {
                        let product = Double(av[(ia * m + i) * k + p]) * Double(bv[(ib * k + p) * n + j])
                        sum += product
                        magnitude += abs(product)
                    }
                    expected.append(sum)
                    tolerance.append(dotTolerance(length: k, magnitude: magnitude) + rounding * abs(sum))
                }
            }
        }
        return (batch + [m, n], expected, tolerance)
    }

    func checkMatmul(_ a: Tensor, _ b: Tensor, _ label: String) throws {
        let (shape, expected, tolerance) = try reference(a, b, outDtype: a.dtype)
        for engine in engines() {
            let out = try CPUGemm.$forcedEngine.withValue(engine) { try backend.matmul(a, b) }
            XCTAssertEqual(out.shape, shape, label)
            XCTAssertEqual(out.dtype, a.dtype, label)
            assertClose(try out.floats(), expected, tolerance: tolerance, "\(label) [\(engine)]")
        }
    }

    func testMatmulShapesAndBroadcasting() throws {
        try checkMatmul(try randomTensor([1, 1], seed: 1), try randomTensor([1, 1], seed: 2), "1×1·1×1")
        try checkMatmul(try randomTensor([37, 53], seed: 3), try randomTensor([53, 29], seed: 4), "37×53·53×29")
        try checkMatmul(try randomTensor([2, 3, 37, 53], seed: 5), try randomTensor([53, 29], seed: 6), "batch · matrix")
        try checkMatmul(try randomTensor([3, 1, 5, 7], seed: 7), try randomTensor([1, 4, 7, 6], seed: 8), "both batch axes broadcast")
        try checkMatmul(try randomTensor([6, 1, 40], seed: 9), try randomTensor([6, 40, 1], seed: 10), "batched dot products")
        try checkMatmul(try randomTensor([2, 0, 5], seed: 11), try randomTensor([2, 5, 3], seed: 12), "empty M")
    }

    func testMatmulViewsAndDtypes() throws {
        // Transposed and sliced views (no copies), bf16/f16 operands, bf16 output rounded once.
        let a = try randomTensor([4, 29, 2, 31], seed: 13).permuted([0, 2, 3, 1])  // [4, 2, 31, 29]
        let b = try randomTensor([2, 29, 50], seed: 14).sliced(axis: 2, start: 1, end: 50, step: 2)  // [2, 29, 25]
        try checkMatmul(a, b, "permuted · sliced")
        try checkMatmul(try randomTensor([3, 17, 33], dtype: .bf16, seed: 15), try randomTensor([33, 9], dtype: .f16, seed: 16), "bf16 · f16")
        let expandedB = try randomTensor([1, 12, 10], seed: 17).expanded(to: [5, 12, 10])
        try checkMatmul(try randomTensor([5, 8, 12], dtype: .f16, seed: 18), expandedB, "f16 · expanded")
    }

    func testLinear() throws {
        let cases: [(x: [Int], out: Int, xDtype: DType, wDtype: DType, bias: Bool)] = [
            ([37], 29, .f32, .f32, true),
            ([2, 5, 37], 29, .f32, .bf16, true),
            ([3, 64], 130, .bf16, .bf16, false),
            ([1, 1, 1], 1, .f32, .f16, true),
            ([7, 300], 45, .f16, .f32, true),
        ]
        for (index, c) in cases.enumerated() {
            let inFeatures = c.x.last ?? 0
            let x = try randomTensor(c.x, dtype: c.xDtype, seed: UInt64(30 + index))
            let w = try randomTensor([c.out, inFeatures], dtype: c.wDtype, seed: UInt64(40 + index))
            let bias = c.bias ? try randomTensor([c.out], dtype: .bf16, seed: UInt64(50 + index)) : nil
            try checkLinear(x, w, bias, "linear \(c)")
        }
        // A permuted input whose leading axes do not merge into one stride (gathered to f32 first).
        let x = try randomTensor([4, 3, 2, 19], seed: 60).permuted([1, 0, 2, 3])
        try checkLinear(x, try randomTensor([11, 19], dtype: .bf16, seed: 61), nil, "linear on a permuted view")
        // A weight that is itself a transposed view.
        try checkLinear(try randomTensor([6, 23], seed: 62), try randomTensor([23, 14], seed: 63).transposed(0, 1), nil, "transposed weight")
    }

    func checkLinear(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ label: String) throws {
        let xs = try x.floats(), ws = try w.floats(), bs = try bias?.floats()
        let (inF, outF) = (w.shape[1], w.shape[0])
        let rows = xs.count / max(inF, 1)
        let rounding = x.dtype == .bf16 ? 1.0 / 256 : (x.dtype == .f16 ? 1.0 / 2048 : 0)
        var expected = [Double](), tolerance = [Double]()
        for r in 0..<rows {
            for o in 0..<outF {
                var sum = Double(bs?[o] ?? 0)
                var magnitude = abs(sum)
                for i in 0..<inF {
                    let product = Double(xs[r * inF + i]) * Double(ws[o * inF + i])
                    sum += product
                    magnitude += abs(product)
                }
                expected.append(sum)
                tolerance.append(dotTolerance(length: inF + 1, magnitude: magnitude) + rounding * abs(sum))
            }
        }
        for engine in engines() {
            let out = try CPUGemm.$forcedEngine.withValue(engine) { try backend.linear(x, weight: w, bias: bias) }
            XCTAssertEqual(out.shape, Array(x.shape.dropLast()) + [outF], label)
            XCTAssertEqual(out.dtype, x.dtype, label)
            assertClose(try out.floats(), expected, tolerance: tolerance, "\(label) [\(engine)]")
        }
    }

    func testBadArgumentsThrow() throws {
        let a = try randomTensor([3, 4], seed: 1)
        XCTAssertThrowsError(try backend.matmul(a, try randomTensor([5, 2], seed: 2))) { error in
            guard case KinemaError.shapeMismatch = error else { return XCTFail("unexpected error \(error)") }
        }
        XCTAssertThrowsError(try backend.matmul(try randomTensor([4], seed: 3), a))
        XCTAssertThrowsError(try backend.matmul(try randomTensor([2, 3, 4], seed: 4), try randomTensor([3, 4, 2], seed: 5)))
        XCTAssertThrowsError(try backend.linear(a, weight: try randomTensor([2, 5], seed: 6), bias: nil))
        XCTAssertThrowsError(try backend.linear(a, weight: try randomTensor([2, 4], seed: 7), bias: try randomTensor([3], seed: 8)))
        let ints = try Tensor(integers: [1, 2, 3, 4], shape: [2, 2], dtype: .i64)
        XCTAssertThrowsError(try backend.matmul(ints, ints)) { error in
            guard case KinemaError.dtypeMismatch = error else { return XCTFail("unexpected error \(error)") }
        }
    }
}
