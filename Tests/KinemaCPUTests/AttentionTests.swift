import Foundation
@testable import KinemaCPU
import KinemaCore
import KinemaVectorMath
import XCTest

// CPU attention against a naive softmax(Q·Kᵀ·scale)·V evaluated in Double, with tolerances derived from the
// f32 error of the two products and the exponential.

final class AttentionTests: XCTestCase {
    let backend = CPUBackend.shared

    /// Reference output rows and per-element tolerances for heads × `rows` (all query rows when nil).
    func reference(
        _ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float, rows: [Int]? = nil
    ) throws -> (rows: [Int], expected: [Double], tolerance: [Double]) {
        let (batch, heads, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let lk = k.shape[2], dv = v.shape[3]
        let qv = try q.floats(), kv = try k.floats(), vv = try v.floats()  // logical order of the views
        let selected = rows ?? Array(0..<lq)
        let u = f32Epsilon
        var expected = [Double](), tolerance = [Double]()
        for head in 0..<(batch * heads) {
            for i in selected {
                var scores = [Double](repeating: 0, count: lk)
                var worstDot = 0.0
                for j in 0..<lk {
                    var dot = 0.0, magnitude = 0.0
                    for c in 0..<d {
                        let product = Double(qv[(head * lq + i) * d + c]) * Double(kv[(head * lk + j) * d + c])
                        dot += product
                        magnitude += abs(product)
                    }
                    scores[j] = dot * Double(scale)
                    worstDot = max(worstDot, magnitude * abs(Double(scale)))
                }
                let top = scores.max() ?? 0
                let weights = scores.map { Foundation.exp($0 - top) }
                let total = weights.reduce(0, +)
                // Score error from the f32 QKᵀ plus rounding of the scaled scores; weights inherit it.
                let scoreError = (4 * Double(d).squareRoot() + 4) * u * worstDot + 4 * u * abs(top)
                let relative = 4 * scoreError + (4 * Double(lk).squareRoot() + 12) * u
                for c in 0..<dv {
                    var value = 0.0, magnitude = 0.0
                    for j in 0..<lk {
                        let x = Double(vv[(head * lk + j) * dv + c])
                        value += weights[j] * x
                        magnitude += weights[j] * abs(x)
                    }
                    expected.append(value / total)
                    tolerance.append(relative * magnitude / total + 1e-30)
                }
            }
        }
        return (selected, expected, tolerance)
    }

    /// Runs the backend and compares the selected rows.
    func check(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float, rows: [Int]? = nil, extraRelative: Double = 0, _ label: String) throws {
        let out = try backend.attention(query: q, key: k, value: v, scale: scale)
        XCTAssertEqual(out.shape, [q.shape[0], q.shape[1], q.shape[2], v.shape[3]], label)
        XCTAssertEqual(out.dtype, q.dtype, label)
        XCTAssertTrue(out.isContiguous, label)
        let (selected, expected, baseTolerance) = try reference(q, k, v, scale: scale, rows: rows)
        let all = try out.floats()
        let (lq, dv) = (q.shape[2], v.shape[3])
        var actual = [Float]()
        for head in 0..<(q.shape[0] * q.shape[1]) {
            for i in selected { actual.append(contentsOf: all[((head * lq + i) * dv)..<((head * lq + i + 1) * dv)]) }
        }
        let tolerance = zip(baseTolerance, expected).map { $0 + extraRelative * abs($1) }
        assertClose(actual, expected, tolerance: tolerance, label)
    }

    func qkv(batch: Int, heads: Int, lq: Int, lk: Int, d: Int, dv: Int, dtype: DType = .f32, seed: UInt64, scale: Float = 1) throws -> (Tensor, Tensor, Tensor) {
        (try randomTensor([batch, heads, lq, d], dtype: dtype, seed: seed, scale: scale),
         try randomTensor([batch, heads, lk, d], dtype: dtype, seed: seed + 1, scale: scale),
         try randomTensor([batch, heads, lk, dv], dtype: dtype, seed: seed + 2))
    }

    func testOddShapes() throws {
        let cases: [(b: Int, h: Int, lq: Int, lk: Int, d: Int, dv: Int)] = [
            (2, 3, 37, 53, 19, 23),  // nothing aligned to a tile
            (1, 2, 5, 1, 8, 7),  // one key: the output is that key's value row
            (1, 1, 1, 300, 16, 33),  // one query, two key tiles
            (1, 1, 200, 260, 64, 64),  // several query and key tiles
            (3, 1, 13, 17, 1, 1),  // D = Dv = 1
        ]
        for (index, c) in cases.enumerated() {
            let (q, k, v) = try qkv(batch: c.b, heads: c.h, lq: c.lq, lk: c.lk, d: c.d, dv: c.dv, seed: UInt64(10 * index + 1))
            try check(q, k, v, scale: 1 / Float(c.d).squareRoot(), "odd shape \(c)")
        }
    }

    func testPermutedAndFusedViews() throws {
        // Wan lays out heads as [B, L, H, D] and permutes to [B, H, L, D]: strided, unit last stride.
        let (b, l, h, d) = (2, 41, 3, 16)
        let q = try randomTensor([b, l, h, d], seed: 1).permuted([0, 2, 1, 3])
        // K and V as slices of one fused [B, L, 2, H, D] projection.
        let kv = try randomTensor([b, l + 4, 2, h, d], seed: 2)
        let k = try kv.narrowed(axis: 2, start: 0, length: 1).squeezed(2).narrowed(axis: 1, start: 4, length: l).permuted([0, 2, 1, 3])
        let v = try kv.narrowed(axis: 2, start: 1, length: 1).squeezed(2).narrowed(axis: 1, start: 0, length: l).permuted([0, 2, 1, 3])
        XCTAssertFalse(q.isContiguous)
        try check(q, k, v, scale: 0.25, "permuted views")
    }

    func testBF16InputsRoundOnceToBF16() throws {
        let (q, k, v) = try qkv(batch: 1, heads: 2, lq: 29, lk: 70, d: 32, dv: 24, dtype: .bf16, seed: 7)
        // The reference reads the same bf16 values; the output is rounded once to bf16 (half an ulp, 2⁻⁹).
        try check(q, k, v, scale: 1 / Float(32).squareRoot(), extraRelative: 1.0 / 256, "bf16")
    }

    func testLargeScoresStayFinite() throws {
        // Scores up to ~±1600: exp would overflow without subtracting the running maximum.
        let (q, k, v) = try qkv(batch: 1, heads: 1, lq: 9, lk: 300, d: 16, dv: 8, seed: 11, scale: 10)
        let out = try backend.attention(query: q, key: k, value: v, scale: 1)
        XCTAssertTrue(try out.floats().allSatisfy(\.isFinite))
        try check(q, k, v, scale: 1, "large scores")
    }

    func testLongSequenceOnRowSubset() throws {
        // 3000 × 3000 in bounded memory; compare 24 rows spread over every query tile boundary region.
        let (q, k, v) = try qkv(batch: 1, heads: 1, lq: 3000, lk: 3000, d: 64, dv: 64, seed: 21)
        let rows = [0, 1, 95, 96, 97, 1000, 1499, 1500, 2015, 2016, 2500, 2879, 2880, 2900, 2990, 2999]
        try check(q, k, v, scale: 0.125, rows: rows, "long sequence")
    }

    func testBadInputsThrow() throws {
        let (q, k, v) = try qkv(batch: 1, heads: 2, lq: 4, lk: 5, d: 8, dv: 8, seed: 1)
        let wrongD = try randomTensor([1, 2, 5, 7], seed: 2)
        XCTAssertThrowsError(try backend.attention(query: q, key: wrongD, value: v, scale: 1))
        XCTAssertThrowsError(try backend.attention(query: q, key: k, value: try randomTensor([1, 2, 6, 8], seed: 3), scale: 1))
        XCTAssertThrowsError(try backend.attention(query: try randomTensor([2, 4, 8], seed: 4), key: k, value: v, scale: 1))
        let noKeys = try Tensor.zeros([1, 2, 0, 8])
        XCTAssertThrowsError(try backend.attention(query: q, key: noKeys, value: noKeys, scale: 1)) { error in
            guard case KinemaError.invalidArgument = error else { return XCTFail("unexpected error \(error)") }
        }
        let ints = try Tensor(integers: Array(repeating: 1, count: 64), shape: [1, 2, 4, 8], dtype: .i32)
        XCTAssertThrowsError(try backend.attention(query: ints, key: k, value: v, scale: 1))
        // No queries: an empty result, not an error.
        XCTAssertEqual(try backend.attention(query: try Tensor.zeros([1, 2, 0, 8]), key: k, value: v, scale: 1).shape, [1, 2, 0, 8])
    }

    func testExp2Accuracy() {
        // Both arithmetic variants over the whole clamped range, 16 points per call.
        for (name, exp2) in [
            ("fused", { OnlineSoftmax.exp2($0, FusedMultiplyAdd.self) }),
            ("separate", { OnlineSoftmax.exp2($0, SeparateMultiplyAdd.self) }),
        ] as [(String, (FloatVector) -> FloatVector)] {
            var worst: Double = 0
            var x: Float = -126
            while x <= 127 {
                var input = FloatVector()
                for lane in 0..<16 { input[lane] = x + Float(lane) * 0.0011 }
                let output = exp2(input)
                for lane in 0..<16 {
                    let exact = Foundation.exp2(Double(input[lane]))
                    worst = max(worst, abs(Double(output[lane]) - exact) / exact)
                }
                x += 0.0137 * 16
            }
            XCTAssertLessThan(worst, 4 * Double(Float.ulpOfOne), "exp2 (\(name)) worst relative error")
        }
    }
}
