import Foundation
import KinemaCore
import KinemaCPU
import XCTest

// softmax / layerNorm / rmsNorm over the last axis against f64 twins, including rows of large magnitude
// (|x| ~ 1e4, and 1e4 offsets with small spread), strided inputs and parameters, and every combination of
// optional weight and bias.

final class NormTests: XCTestCase {
    let backend = CPUBackend.shared
    let shapes: [[Int]] = [[1], [1, 1], [3, 7], [2, 3, 129], [5, 2]]

    // MARK: - twins (one row at a time, f64 throughout)

    private func rows(_ x: Tensor) throws -> [[Double]] {
        let values = try doubles(x)
        let length = x.shape.last ?? 1
        guard length > 0 else { return [] }
        return stride(from: 0, to: values.count, by: length).map { Array(values[$0..<($0 + length)]) }
    }

    private func softmaxTwin(_ row: [Double]) -> [Double] {
        let m = row.max() ?? 0
        let e = row.map { Foundation.exp($0 - m) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }

    private func layerNormTwin(_ row: [Double], _ weight: [Double]?, _ bias: [Double]?, eps: Double) -> [Double] {
        let mean = row.reduce(0, +) / Double(row.count)
        let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(row.count)
        return row.indices.map { j in
            (row[j] - mean) / (variance + eps).squareRoot() * (weight?[j] ?? 1) + (bias?[j] ?? 0)
        }
    }

    private func rmsNormTwin(_ row: [Double], _ weight: [Double]?, eps: Double) -> [Double] {
        let meanSquare = row.map { $0 * $0 }.reduce(0, +) / Double(row.count)
        return row.indices.map { j in row[j] / (meanSquare + eps).squareRoot() * (weight?[j] ?? 1) }
    }

    // MARK: - softmax

    func testSoftmaxAgainstTwin() throws {
        var random = SeededRandom(seed: 30)
        for dtype in [DType.f32, .bf16, .f16] {
            for shape in shapes {
                for scale: Float in [3, 1e4] {
                    let values = random.values(count(of: shape), -scale, scale)
                    for layout in Layout.allCases {
                        let x = try makeTensor(values, shape, dtype, layout)
                        let expected = try rows(x).flatMap(softmaxTwin)
                        try assertClose(backend.softmax(x), expected, shape: shape, rtol: tolerance(dtype), atol: 1e-7,
                                        "\(dtype) \(shape) ±\(scale) \(layout)")
                    }
                }
            }
        }
    }

    func testSoftmaxEdgeRows() throws {
        let x = try Tensor([-.infinity, 0, -.infinity, /**/ 1e4, 1e4, -1e4, /**/ .nan, 1, 2], shape: [3, 3])
        let y = try backend.softmax(x).floats()
        XCTAssertEqual(Array(y[0..<3]), [0, 1, 0])
        XCTAssertEqual(Array(y[3..<6]), [0.5, 0.5, 0])
        XCTAssertTrue(y[6..<9].allSatisfy(\.isNaN))
        let allMasked = try backend.softmax(try Tensor([-.infinity, -.infinity], shape: [1, 2])).floats()
        XCTAssertTrue(allMasked.allSatisfy(\.isNaN), "PyTorch gives NaN for a row of −inf")
        let empty = try backend.softmax(try Tensor.zeros([3, 0]))
        XCTAssertEqual(empty.shape, [3, 0])
        assertThrowsKinema(try self.backend.softmax(try Tensor([1], shape: [])))
    }

    func testSoftmaxLargeParallel() throws {
        var random = SeededRandom(seed: 31)
        let x = try makeTensor(random.values(2 * 12 * 40 * 40, -20, 20), [2, 12, 40, 40], .f32, .permuted)
        try assertClose(backend.softmax(x), try rows(x).flatMap(softmaxTwin), shape: x.shape, rtol: 2e-6, atol: 1e-9)
    }

    // MARK: - layerNorm

    func testLayerNormEveryParameterCombination() throws {
        var random = SeededRandom(seed: 32)
        for dtype in [DType.f32, .bf16, .f16] {
            for shape in shapes {
                let d = shape[shape.count - 1]
                let values = random.values(count(of: shape), -4, 6)
                let weightValues = random.values(d, -2, 2)
                let biasValues = random.values(d, -1, 1)
                for layout in Layout.allCases {
                    let x = try makeTensor(values, shape, dtype, layout)
                    // Parameters in another dtype and with strides, as checkpoints may give them.
                    let weight = try makeTensor(weightValues, [d], .bf16, .stepped)
                    let bias = try makeTensor(biasValues, [d], .f32, .padded)
                    for (useWeight, useBias) in [(false, false), (true, false), (false, true), (true, true)] {
                        let w = useWeight ? weight : nil
                        let b = useBias ? bias : nil
                        let expected = try rows(x).flatMap {
                            layerNormTwin($0, try w.map(doubles), try b.map(doubles), eps: 1e-6)
                        }
                        try assertClose(backend.layerNorm(x, weight: w, bias: b, eps: 1e-6), expected, shape: shape,
                                        rtol: tolerance(dtype), atol: dtype == .f32 ? 2e-6 : 0.02,
                                        "\(dtype) \(shape) \(layout) weight \(useWeight) bias \(useBias)")
                    }
                }
            }
        }
    }

    func testLayerNormLargeMagnitudes() throws {
        var random = SeededRandom(seed: 33)
        // Wide spread at 1e4: well-conditioned, so f32 must agree to a few ulp.
        let wide = try makeTensor(random.values(4 * 1536, -1e4, 1e4), [4, 1536], .f32, .padded)
        try assertClose(backend.layerNorm(wide, weight: nil, bias: nil, eps: 1e-6),
                        try rows(wide).flatMap { layerNormTwin($0, nil, nil, eps: 1e-6) }, shape: [4, 1536], rtol: 2e-6, atol: 2e-6)
        // A 1e4 offset with spread ~1: the inputs themselves only resolve 1e4 to ±5e-4, so no f32 kernel can
        // do better than ~ulp(1e4)/std. The bound below is that conditioning, not slack: a one-pass
        // E[x²] − E[x]² variance would be wrong by orders of magnitude more (or negative).
        let offsetValues = random.values(3 * 1000, -1, 1).map { 1e4 + $0 }
        let offset = try makeTensor(offsetValues, [3, 1000], .f32)
        let expected = try rows(offset).flatMap { layerNormTwin($0, nil, nil, eps: 1e-6) }
        let ulp = Double(Float(1e4).ulp)
        try assertClose(backend.layerNorm(offset, weight: nil, bias: nil, eps: 1e-6), expected, shape: [3, 1000],
                        rtol: 2e-6, atol: ulp / 0.577)
    }

    func testLayerNormLargeParallelAndErrors() throws {
        var random = SeededRandom(seed: 34)
        let x = try makeTensor(random.values(60 * 1536, -3, 3), [1, 60, 1536], .bf16)
        let weight = try makeTensor(random.values(1536, 0.5, 1.5), [1536], .f32)
        let bias = try makeTensor(random.values(1536, -0.5, 0.5), [1536], .f32)
        let expected = try rows(x).flatMap { layerNormTwin($0, try doubles(weight), try doubles(bias), eps: 1e-6) }
        try assertClose(backend.layerNorm(x, weight: weight, bias: bias, eps: 1e-6), expected, shape: x.shape,
                        rtol: 1.0 / 128, atol: 1e-3)
        // A constant row normalizes to 0 (eps keeps it finite) and then to the bias.
        let constant = try backend.layerNorm(try Tensor([7, 7, 7], shape: [1, 3]), weight: nil,
                                             bias: try Tensor([1, 2, 3], shape: [3]), eps: 1e-5)
        XCTAssertEqual(try constant.floats(), [1, 2, 3])
        assertThrowsKinema(try self.backend.layerNorm(x, weight: try Tensor.zeros([1535]), bias: nil, eps: 1e-6),
                           mentioning: ["[1536]", "[1535]"])
        assertThrowsKinema(try self.backend.layerNorm(x, weight: nil, bias: try Tensor.zeros([1, 1536]), eps: 1e-6))
        assertThrowsKinema(try self.backend.layerNorm(x, weight: try Tensor.zeros([1536], dtype: .i32), bias: nil, eps: 1e-6))
        XCTAssertEqual(try backend.layerNorm(try Tensor.zeros([0, 4]), weight: nil, bias: nil, eps: 1e-6).shape, [0, 4])
    }

    // MARK: - rmsNorm

    func testRMSNormAgainstTwin() throws {
        var random = SeededRandom(seed: 35)
        for dtype in [DType.f32, .bf16, .f16] {
            for shape in shapes {
                let d = shape[shape.count - 1]
                let values = random.values(count(of: shape), -5, 4)
                let weightValues = random.values(d, -2, 2)
                for layout in Layout.allCases {
                    let x = try makeTensor(values, shape, dtype, layout)
                    let weight = try makeTensor(weightValues, [d], .bf16, .stepped)
                    for w in [nil, weight] {
                        let expected = try rows(x).flatMap { rmsNormTwin($0, try w.map(doubles), eps: 1e-6) }
                        try assertClose(backend.rmsNorm(x, weight: w, eps: 1e-6), expected, shape: shape,
                                        rtol: tolerance(dtype), "\(dtype) \(shape) \(layout) weight \(w != nil)")
                    }
                }
            }
        }
    }

    func testRMSNormMagnitudes() throws {
        var random = SeededRandom(seed: 36)
        for (low, high) in [(Float(-1e4), Float(1e4)), (9_990, 10_010), (-1e-4, 1e-4)] {
            let x = try makeTensor(random.values(5 * 5120, low, high), [5, 5120], .f32, .stepped)
            let expected = try rows(x).flatMap { rmsNormTwin($0, nil, eps: 1e-6) }
            try assertClose(backend.rmsNorm(x, weight: nil, eps: 1e-6), expected, shape: [5, 5120], rtol: 2e-6,
                            "range \(low)…\(high)")
        }
        XCTAssertEqual(try backend.rmsNorm(try Tensor.zeros([2, 3]), weight: nil, eps: 1e-6).floats(), [0, 0, 0, 0, 0, 0])
        assertThrowsKinema(try self.backend.rmsNorm(try Tensor.zeros([2, 3]), weight: try Tensor.zeros([2]), eps: 1e-6))
    }
}
