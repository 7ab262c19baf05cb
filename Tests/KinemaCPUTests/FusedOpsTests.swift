import KinemaCPU
import KinemaCore
import KinemaTestSupport
import XCTest

// The fused DiT-block ops against the unfused compositions of the ops they replace (each of those is
// tested against torch and f64 twins elsewhere). With f32 activations the fused op does the same f32
// arithmetic in the same order, so the results must be identical; with bf16 activations the fused op
// rounds once where the composition rounds several times, so it is compared with the f32 composition
// (the more accurate reference) at the single-op bf16 tolerance.

final class FusedOpsTests: XCTestCase {
    let b = CPUBackend.shared

    private func assertIdentical(_ actual: Tensor, _ expected: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.dtype, expected.dtype, message, file: file, line: line)
        assertClose(actual, expected, relL2: 0, maxAbs: 0, message, file: file, line: line)
    }

    // MARK: - linear + GELU epilogue

    func testLinearGELUEqualsLinearThenGELU() throws {
        let x = try makeTensor(randomTensor([3, 5, 37], seed: 1, scale: 2).floats(), [3, 5, 37], .f32, .padded)
        let weight = try randomTensor([41, 37], seed: 2, scale: 0.3)
        let bias = try randomTensor([41], seed: 3)
        for withBias in [true, false] {
            let fused = try b.linear(x, weight: weight, bias: withBias ? bias : nil, activation: .geluTanh)
            let unfused = try b.unary(.geluTanh, try b.linear(x, weight: weight, bias: withBias ? bias : nil))
            assertIdentical(fused, unfused, "f32, bias \(withBias)")
        }
        XCTAssertEqual(try b.linear(x, weight: weight, bias: bias, activation: .none).floats(), try b.linear(x, weight: weight, bias: bias).floats())
    }

    func testLinearGELUInBF16RoundsOnce() throws {
        let x = try randomTensor([7, 64], dtype: .bf16, seed: 4, scale: 2)
        let weight = try randomTensor([33, 64], dtype: .bf16, seed: 5, scale: 0.3)
        let bias = try randomTensor([33], seed: 6)
        let fused = try b.linear(x, weight: weight, bias: bias, activation: .geluTanh)
        XCTAssertEqual(fused.dtype, .bf16)
        let reference = try b.unary(.geluTanh, try b.linear(try b.cast(x, to: .f32), weight: try b.cast(weight, to: .f32), bias: bias))
        assertClose(fused, try b.cast(reference, to: .bf16), relL2: 0, maxAbs: 0, "bf16 = f32 result rounded once")
    }

    // MARK: - modulatedLayerNorm

    private func composedModulatedLayerNorm(
        _ x: Tensor, weight: Tensor?, bias: Tensor?, shift: Tensor?, scale: Tensor?, eps: Float, outDType: DType
    ) throws -> Tensor {
        var y = try b.layerNorm(x, weight: weight, bias: bias, eps: eps)
        if let scale { y = try b.mul(y, try b.affine(scale, scale: 1, shift: 1)) }
        if let shift { y = try b.add(y, shift) }
        return try b.cast(y, to: outDType)
    }

    func testModulatedLayerNormEqualsComposition() throws {
        let shape = [2, 9, 131]
        let modulation = try randomTensor([2, 6, 131], seed: 10, scale: 0.5)
        let parts = try modulation.chunked(6, axis: 1)  // strided [2, 1, D] views, as the block uses
        let shared = try randomTensor([1, 1, 131], seed: 11, scale: 0.5)
        let weight = try randomTensor([131], seed: 12)
        let bias = try randomTensor([131], seed: 13)
        let values = try randomTensor(shape, seed: 14, scale: 30).floats().map { $0 + 100 }  // |mean| ≫ spread
        for layout in Layout.allCases {
            let x = try makeTensor(values, shape, .f32, layout)
            for outDType in [DType.f32, .bf16] {
                let variants: [(String, Tensor?, Tensor?, Tensor?, Tensor?)] = [
                    ("adaLN", nil, nil, parts[0], parts[1]),
                    ("affine", weight, bias, nil, nil),
                    ("affine + shared scale", weight, bias, nil, shared),
                    ("shift only", nil, nil, shared, nil),
                    ("plain", nil, nil, nil, nil),
                ]
                for (name, w, bi, shift, scale) in variants {
                    let fused = try b.modulatedLayerNorm(x, weight: w, bias: bi, shift: shift, scale: scale, eps: 1e-6, outDType: outDType)
                    let unfused = try composedModulatedLayerNorm(x, weight: w, bias: bi, shift: shift, scale: scale, eps: 1e-6, outDType: outDType)
                    assertIdentical(fused, unfused, "\(name), \(layout), → \(outDType.rawValue)")
                }
            }
        }
    }

    func testModulatedLayerNormFromBF16RoundsOnce() throws {
        let x = try randomTensor([2, 5, 64], dtype: .bf16, seed: 15, scale: 3)
        let parts = try randomTensor([2, 2, 64], seed: 16, scale: 0.5).chunked(2, axis: 1)
        let fused = try b.modulatedLayerNorm(x, weight: nil, bias: nil, shift: parts[0], scale: parts[1], eps: 1e-6, outDType: .bf16)
        let reference = try composedModulatedLayerNorm(
            try b.cast(x, to: .f32), weight: nil, bias: nil, shift: parts[0], scale: parts[1], eps: 1e-6, outDType: .bf16)
        assertIdentical(fused, reference, "bf16 input, statistics and modulation in f32, one rounding")
    }

    func testModulatedLayerNormRejectsBadShapes() throws {
        let x = try randomTensor([2, 3, 8], seed: 17)
        XCTAssertThrowsError(try b.modulatedLayerNorm(
            x, weight: nil, bias: nil, shift: try randomTensor([3, 1, 8], seed: 18), scale: nil, eps: 1e-6, outDType: .f32))
        XCTAssertThrowsError(try b.modulatedLayerNorm(
            x, weight: nil, bias: nil, shift: nil, scale: try randomTensor([2, 8], seed: 19), eps: 1e-6, outDType: .f32))
        XCTAssertThrowsError(try b.modulatedLayerNorm(
            x, weight: try randomTensor([7], seed: 20), bias: nil, shift: nil, scale: nil, eps: 1e-6, outDType: .f32))
        XCTAssertThrowsError(try b.modulatedLayerNorm(
            try randomTensor([6, 8], seed: 21), weight: nil, bias: nil, shift: nil, scale: nil, eps: 1e-6, outDType: .f32))
        XCTAssertThrowsError(try b.modulatedLayerNorm(x, weight: nil, bias: nil, shift: nil, scale: nil, eps: 1e-6, outDType: .i32))
    }

    // MARK: - gatedResidual

    func testGatedResidualEqualsAddOfProduct() throws {
        let shape = [2, 7, 45]
        let gates = try randomTensor([2, 3, 45], seed: 30, scale: 2).chunked(3, axis: 1)
        let shared = try randomTensor([1, 1, 45], seed: 31, scale: 2)
        for layout in Layout.allCases {
            let x = try makeTensor(try randomTensor(shape, seed: 32, scale: 10).floats(), shape, .f32, layout)
            for yType in [DType.f32, .bf16] {
                let y = try makeTensor(try randomTensor(shape, seed: 33, scale: 3).floats(), shape, yType, layout)
                for gate in [gates[2], shared] {
                    assertIdentical(try b.gatedResidual(x, y, gate: gate), try b.add(x, try b.mul(y, gate)), "\(layout), y \(yType.rawValue), gate \(gate.shape)")
                }
                assertIdentical(try b.gatedResidual(x, y, gate: nil), try b.add(x, y), "\(layout), y \(yType.rawValue), no gate")
            }
        }
    }

    func testGatedResidualRejectsBadShapes() throws {
        let x = try randomTensor([2, 3, 8], seed: 34)
        XCTAssertThrowsError(try b.gatedResidual(x, try randomTensor([2, 3, 7], seed: 35), gate: nil))
        XCTAssertThrowsError(try b.gatedResidual(x, x, gate: try randomTensor([2, 3, 8], seed: 36)))
    }

    // MARK: - rmsNormRope

    func testRMSNormRopeEqualsRMSNormThenRope() throws {
        let (batch, length, heads, headDim) = (2, 11, 3, 10)
        let width = heads * headDim
        // q as the first third of a fused [B, L, 3·D] projection: rows strided by 3·D.
        let fused = try randomTensor([batch, length, 3 * width], seed: 40, scale: 4)
        let q = try fused.narrowed(axis: 2, start: width, length: width)
        let weight = try randomTensor([width], seed: 41)
        let cos = try randomTensor([length, headDim / 2], seed: 42)
        let sin = try randomTensor([length, headDim / 2], seed: 43)
        for w in [weight, nil] {
            let result = try b.rmsNormRope(q, weight: w, eps: 1e-6, cos: cos, sin: sin, heads: heads)
            XCTAssertEqual(result.shape, [batch, length, width])
            let normed = try b.rmsNorm(q, weight: w, eps: 1e-6)
            let rotated = try b.rope(try b.reshape(normed, [batch, length, heads, headDim]), cos: cos, sin: sin)
            assertIdentical(result, try b.reshape(rotated, [batch, length, width]), "weight \(w != nil)")
        }
        let bf16 = try b.cast(q, to: .bf16)
        let once = try b.rmsNormRope(bf16, weight: weight, eps: 1e-6, cos: cos, sin: sin, heads: heads)
        let reference = try b.rmsNormRope(try b.cast(bf16, to: .f32), weight: weight, eps: 1e-6, cos: cos, sin: sin, heads: heads)
        assertIdentical(once, try b.cast(reference, to: .bf16), "bf16: f32 result rounded once")
    }

    func testRMSNormRopeRejectsBadShapes() throws {
        let x = try randomTensor([1, 4, 12], seed: 44)
        let table = try randomTensor([4, 2], seed: 45)
        XCTAssertThrowsError(try b.rmsNormRope(x, weight: nil, eps: 1e-6, cos: table, sin: table, heads: 5))  // 12 ∤ 10
        XCTAssertThrowsError(try b.rmsNormRope(x, weight: nil, eps: 1e-6, cos: table, sin: table, heads: 2))  // tables [4, 3] needed
        XCTAssertThrowsError(try b.rmsNormRope(x, weight: nil, eps: 1e-6, cos: table, sin: table, heads: 0))
    }
}
