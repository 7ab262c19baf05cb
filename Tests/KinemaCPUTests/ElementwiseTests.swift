import Foundation
import KinemaCore
import KinemaCPU
import XCTest

// unary / binary / affine against f64 slow twins, on odd shapes, strided and broadcast views, and the
// float dtypes the models use.

final class ElementwiseTests: XCTestCase {
    let backend = CPUBackend.shared
    let dtypes: [DType] = [.f32, .bf16, .f16]
    let shapes: [[Int]] = [[1], [], [13], [3, 5, 7], [2, 1, 9], [0, 4]]

    /// The slow twin of every unary op, in f64.
    static func twin(_ op: UnaryOp, _ x: Double) -> Double {
        switch op {
        case .silu: return x / (1 + Foundation.exp(-x))
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
        case .geluExact: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
        case .exp: return Foundation.exp(x)
        case .neg: return -x
        case .sqrt: return x.squareRoot()
        case .rsqrt: return 1 / x.squareRoot()
        case .tanh: return Foundation.tanh(x)
        case .square: return x * x
        case .abs: return Swift.abs(x)
        case .sin: return Foundation.sin(x)
        case .cos: return Foundation.cos(x)
        }
    }

    static func twin(_ op: BinaryOp, _ a: Double, _ b: Double) -> Double {
        switch op {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        case .maximum: return (a.isNaN || b.isNaN) ? .nan : Swift.max(a, b)
        case .minimum: return (a.isNaN || b.isNaN) ? .nan : Swift.min(a, b)
        }
    }

    func testUnaryOpsAgainstTwin() throws {
        var random = SeededRandom(seed: 10)
        for op in UnaryOp.allCases {
            // sqrt/rsqrt only on their domain; the rest over a range where every op is well-conditioned.
            let (low, high): (Float, Float) = (op == .sqrt || op == .rsqrt) ? (0.01, 50) : (-8, 8)
            for dtype in dtypes {
                for shape in shapes {
                    let values = random.values(count(of: shape), low, high)
                    for layout in Layout.allCases {
                        let x = try makeTensor(values, shape, dtype, layout)
                        let expected = try doubles(x).map { Self.twin(op, $0) }
                        // Absolute slack for ops whose f32 form cancels (1 + tanh, 1 + erf for x ≪ 0, sin
                        // near its zeros): a few f32 ulps of the inputs' scale.
                        try assertClose(backend.unary(op, x), expected, shape: shape, rtol: tolerance(dtype),
                                        atol: dtype == .f32 ? 2e-6 : tolerance(dtype) * 1e-2, "\(op) \(dtype) \(shape) \(layout)")
                    }
                }
            }
        }
    }

    func testUnaryLargeParallelAndExpanded() throws {
        var random = SeededRandom(seed: 11)
        let shape = [5, 129, 67]  // > one thread's grain
        let x = try makeTensor(random.values(count(of: shape), -6, 6), shape, .bf16, .permuted)
        for op in [UnaryOp.geluTanh, .silu, .exp] {
            try assertClose(backend.unary(op, x), try doubles(x).map { Self.twin(op, $0) }, shape: shape,
                            rtol: tolerance(.bf16), atol: 1e-4, "\(op)")
        }
        let row = try makeTensor(random.values(7, -3, 3), [1, 7])
        let expanded = try row.expanded(to: [4, 3, 7])
        try assertClose(backend.unary(.tanh, expanded), try doubles(expanded).map(Foundation.tanh), shape: [4, 3, 7],
                        rtol: 2e-6, atol: 1e-7)
    }

    func testSigmoidAndSiluStayFiniteAtLargeMagnitudes() throws {
        let values: [Float] = [-1e4, -200, -88.8, -20, 0, 20, 88.8, 200, 1e4, -.infinity, .infinity]
        let x = try Tensor(values, shape: [values.count])
        let sigmoid = try backend.unary(.sigmoid, x).floats()
        let silu = try backend.unary(.silu, x).floats()
        for (index, value) in values.enumerated() {
            XCTAssertFalse(sigmoid[index].isNaN, "sigmoid(\(value))")
            if value.isFinite { XCTAssertTrue(silu[index].isFinite, "silu(\(value))") }
            XCTAssertGreaterThanOrEqual(sigmoid[index], 0)
            XCTAssertLessThanOrEqual(sigmoid[index], 1)
        }
        XCTAssertEqual(sigmoid[0], 0)
        XCTAssertEqual(sigmoid[8], 1)
        XCTAssertEqual(silu[0], 0)
        XCTAssertEqual(silu[8], 1e4)
        XCTAssertEqual(silu[10], .infinity)
        // The tiny negative tail is still accurate, not flushed early.
        let tail = Double(values[2])
        XCTAssertEqual(Double(silu[2]), tail / (1 + Foundation.exp(-tail)), accuracy: 1e-42)
        let gelu = try backend.gelu(try Tensor([-1e4, 1e4], shape: [2]), approximate: .tanh).floats()
        XCTAssertEqual(gelu, [0, 1e4])
        XCTAssertEqual(try backend.gelu(try Tensor([-1e4, 1e4], shape: [2]), approximate: .none).floats(), [0, 1e4])
    }

    /// exp and the split-form sigmoid over the whole f32 range at 1/1000 spacing, including the overflow
    /// edge and subnormal results.
    func testExpAndSigmoidSweepTheWholeRange() throws {
        let inputs = (0...205_000).map { Float(-110 + Double($0) * 0.001) }
            + [0, -0.0, 88.72283, 88.72284, -87.33655, -103.97, 1e-30, -1e-30, .infinity, -.infinity, .nan]
        let x = try Tensor(inputs, shape: [inputs.count])
        let exps = try backend.unary(.exp, x).floats()
        let sigmoids = try backend.unary(.sigmoid, x).floats()
        func check(_ got: Float, _ want: Double, _ what: String, _ input: Float) {
            if want.isNaN { XCTAssertTrue(got.isNaN, "\(what)(\(input))"); return }
            let rounded = Float(want)
            if rounded.isInfinite || rounded == 0 {
                // Past the ends of the format the result must round the same way (to inf or to 0),
                // except within one subnormal step of 0.
                XCTAssertTrue(got == rounded || Swift.abs(Double(got) - want) <= 1.5e-45, "\(what)(\(input)) = \(got), want \(want)")
            } else if Swift.abs(want) < Double(Float.leastNormalMagnitude) {
                XCTAssertLessThanOrEqual(Swift.abs(Double(got) - want), 1.5e-45, "\(what)(\(input)) subnormal")
            } else {
                XCTAssertLessThanOrEqual(Swift.abs(Double(got) - want), 2.5e-7 * Swift.abs(want), "\(what)(\(input)) = \(got), want \(want)")
            }
        }
        for (index, input) in inputs.enumerated() {
            let value = Double(input)
            check(exps[index], Foundation.exp(value), "exp", input)
            let sigmoid = value >= 0 ? 1 / (1 + Foundation.exp(-value)) : Foundation.exp(value) / (1 + Foundation.exp(value))
            check(sigmoids[index], sigmoid, "sigmoid", input)
        }
    }

    func testBinaryOpsWithBroadcastingAgainstTwin() throws {
        var random = SeededRandom(seed: 12)
        // (a shape, b shape): equal, broadcasting either way, scalars, missing leading axes, empty.
        let cases: [([Int], [Int])] = [
            ([3, 5, 7], [3, 5, 7]), ([4, 1, 5], [3, 1]), ([5], [2, 3, 5]), ([2, 3, 4], []), ([], [6]),
            ([1], [1]), ([2, 1, 3], [1, 4, 1]), ([0, 3], [3]), ([3, 1], [0]),
        ]
        let dtypePairs: [(DType, DType)] = [(.f32, .f32), (.bf16, .bf16), (.bf16, .f32), (.f32, .bf16), (.f16, .bf16)]
        for op in BinaryOp.allCases {
            for (shapeA, shapeB) in cases {
                let shape = try broadcast(shapeA, shapeB)
                for (dtypeA, dtypeB) in dtypePairs {
                    let layoutA = Layout.allCases[Int(random.next() % 4)]
                    let layoutB = Layout.allCases[Int(random.next() % 4)]
                    let a = try makeTensor(random.values(count(of: shapeA), -10, 10), shapeA, dtypeA, layoutA)
                    // Keep divisors away from zero so div stays well-conditioned.
                    let bValues = random.values(count(of: shapeB), 0.5, 10).map { random.next() % 2 == 0 ? $0 : -$0 }
                    let b = try makeTensor(bValues, shapeB, dtypeB, layoutB)
                    let y = try backend.binary(op, a, b)
                    let outDType: DType = (dtypeA == .f32 || dtypeB == .f32) ? .f32 : dtypeA
                    XCTAssertEqual(y.dtype, outDType)
                    let expected = try twinBinary(op, a, b, shape)
                    try assertClose(y, expected, shape: shape, rtol: tolerance(outDType),
                                    "\(op) \(shapeA)·\(shapeB) \(dtypeA)/\(dtypeB) \(layoutA)/\(layoutB)")
                }
            }
        }
    }

    func testBinaryLargeAndBiasLike() throws {
        var random = SeededRandom(seed: 13)
        let x = try makeTensor(random.values(3 * 50 * 300, -4, 4), [3, 50, 300], .bf16, .padded)
        let bias = try makeTensor(random.values(300, -1, 1), [300], .f32)
        let scale = try makeTensor(random.values(3 * 300, -1, 1), [3, 1, 300], .bf16, .permuted)
        try assertClose(backend.add(x, bias), try twinBinary(.add, x, bias, [3, 50, 300]), shape: [3, 50, 300], rtol: 2e-6)
        try assertClose(backend.mul(x, scale), try twinBinary(.mul, x, scale, [3, 50, 300]), shape: [3, 50, 300], rtol: 1.0 / 128)
        try assertClose(backend.sub(scale, x), try twinBinary(.sub, scale, x, [3, 50, 300]), shape: [3, 50, 300], rtol: 1.0 / 128)
        try assertClose(backend.div(x, scale), try twinBinary(.div, x, scale, [3, 50, 300]), shape: [3, 50, 300], rtol: 1.0 / 128)
    }

    func testMaximumMinimumPropagateNaN() throws {
        let a = try Tensor([1, .nan, 3, -.infinity], shape: [4])
        let b = try Tensor([.nan, 2, 1, 5], shape: [4])
        let maximum = try backend.binary(.maximum, a, b).floats()
        let minimum = try backend.binary(.minimum, a, b).floats()
        XCTAssertTrue(maximum[0].isNaN && maximum[1].isNaN && minimum[0].isNaN && minimum[1].isNaN)
        XCTAssertEqual(Array(maximum[2...]), [3, 5])
        XCTAssertEqual(Array(minimum[2...]), [1, -.infinity])
    }

    func testBroadcastErrorsNameBothShapes() throws {
        let a = try Tensor.zeros([2, 3])
        let b = try Tensor.zeros([4])
        assertThrowsKinema(try self.backend.add(a, b), mentioning: ["[2, 3]", "[4]"])
        assertThrowsKinema(try self.backend.binary(.mul, try Tensor.zeros([2, 3, 4]), try Tensor.zeros([3, 3, 4])),
                           mentioning: ["[2, 3, 4]", "[3, 3, 4]"])
        assertThrowsKinema(try self.backend.add(a, try Tensor(integers: [1, 2, 3], shape: [3], dtype: .i64)), mentioning: ["i64"])
        assertThrowsKinema(try self.backend.unary(.exp, try Tensor.zeros([2], dtype: .i32)))
    }

    func testAffine() throws {
        var random = SeededRandom(seed: 14)
        for dtype in dtypes {
            for layout in Layout.allCases {
                let x = try makeTensor(random.values(3 * 4 * 5, -100, 100), [3, 4, 5], dtype, layout)
                let expected = try doubles(x).map { $0 * 0.37 + 2.5 }
                try assertClose(backend.affine(x, scale: 0.37, shift: 2.5), expected, shape: [3, 4, 5],
                                rtol: tolerance(dtype), atol: dtype == .f32 ? 1e-5 : 0.05, "\(dtype) \(layout)")
            }
        }
        let empty = try backend.affine(try Tensor.zeros([0, 2]), scale: 2, shift: 1)
        XCTAssertEqual(empty.shape, [0, 2])
    }

    // MARK: - twins

    private func broadcast(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let rank = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: rank - a.count) + a
        let pb = [Int](repeating: 1, count: rank - b.count) + b
        return zip(pa, pb).map { $0 == 1 ? $1 : $0 }
    }

    /// Indexes both operands per output element the slow way (no strides, no merging).
    private func twinBinary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ shape: [Int]) throws -> [Double] {
        let valuesA = try doubles(a), valuesB = try doubles(b)
        func element(_ values: [Double], _ operandShape: [Int], _ index: [Int]) -> Double {
            let lead = index.count - operandShape.count
            let local = operandShape.indices.map { operandShape[$0] == 1 ? 0 : index[lead + $0] }
            return values[ravel(local, operandShape)]
        }
        return (0..<count(of: shape)).map { flat in
            let index = unravel(flat, shape)
            return Self.twin(op, element(valuesA, a.shape, index), element(valuesB, b.shape, index))
        }
    }
}
