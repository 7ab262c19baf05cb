@testable import KinemaCPU
import KinemaCore
import XCTest

// conv3d (im2col + GEMM) against a direct convolution written here in Double, over the Wan shapes and
// awkward strides, paddings, dtypes and views, with each GEMM engine.

final class ConvTests: XCTestCase {
    let backend = CPUBackend.shared

    struct Case {
        var batch = 1, inChannels = 2, outChannels = 3
        var input = [4, 5, 6]
        var kernel = [3, 3, 3], stride = [1, 1, 1], padding = [1, 1, 1]
        var dtype = DType.f32, weightDtype = DType.f32
        var bias = true
        /// Make x a permuted (non-contiguous) view.
        var permuted = false
    }

    /// Direct convolution of the exact stored values, and per-element tolerances.
    func reference(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ c: Case) throws -> (expected: [Double], tolerance: [Double], shape: [Int]) {
        let xs = try x.floats(), ws = try w.floats(), bs = try bias?.floats()
        let (ci, co) = (c.inChannels, c.outChannels)
        let (t, h, wd) = (c.input[0], c.input[1], c.input[2])
        var out = [Int]()
        for axis in 0..<3 {
            let span: Int = c.input[axis] + 2 * c.padding[axis] - c.kernel[axis]
            out.append(span / c.stride[axis] + 1)
        }
        var expected = [Double](), tolerance = [Double]()
        let depth = ci * c.kernel.reduce(1, *)
        for b in 0..<c.batch {
            for o in 0..<co {
                for ot in 0..<out[0] {
                    for oh in 0..<out[1] {
                        for ow in 0..<out[2] {
                            var sum = Double(bs?[o] ?? 0)
                            var magnitude = abs(sum)
                            for i in 0..<ci {
                                for dt in 0..<c.kernel[0] {
                                    let ti = ot * c.stride[0] + dt - c.padding[0]
                                    guard ti >= 0, ti < t else { continue }
                                    for dh in 0..<c.kernel[1] {
                                        let hi = oh * c.stride[1] + dh - c.padding[1]
                                        guard hi >= 0, hi < h else { continue }
                                        for dw in 0..<c.kernel[2] {
                                            let wi = ow * c.stride[2] + dw - c.padding[2]
                                            guard wi >= 0, wi < wd else { continue }
                                            let xIndex: Int = (((b * ci + i) * t + ti) * h + hi) * wd + wi
                                            let wIndex: Int = (((o * ci + i) * c.kernel[0] + dt) * c.kernel[1] + dh) * c.kernel[2] + dw
                                            let xv = Double(xs[xIndex]), wv = Double(ws[wIndex])
                                            sum += xv * wv
                                            magnitude += abs(xv * wv)
                                        }
                                    }
                                }
                            }
                            expected.append(sum)
                            tolerance.append(dotTolerance(length: depth + 1, magnitude: magnitude))
                        }
                    }
                }
            }
        }
        return (expected, tolerance, [c.batch, co] + out)
    }

    func run(_ c: Case, seed: UInt64, _ label: String) throws {
        var x = try randomTensor([c.batch, c.inChannels] + c.input, dtype: c.dtype, seed: seed)
        if c.permuted {
            // Same logical tensor, stored as [B, T, H, W, Cin] and permuted back: no axis is unit-stride
            // except channels.
            let stored = try randomTensor([c.batch] + c.input + [c.inChannels], dtype: c.dtype, seed: seed)
            x = try stored.permuted([0, 4, 1, 2, 3])
        }
        let w = try randomTensor([c.outChannels, c.inChannels] + c.kernel, dtype: c.weightDtype, seed: seed + 1)
        let bias = c.bias ? try randomTensor([c.outChannels], dtype: .f16, seed: seed + 2) : nil
        let (expected, baseTolerance, shape) = try reference(x, w, bias, c)
        // A non-f32 output is rounded once: allow half an ulp of the result on top of the f32 error.
        let rounding = c.dtype == .bf16 ? 1.0 / 256 : (c.dtype == .f16 ? 1.0 / 2048 : 0)
        let tolerance = zip(baseTolerance, expected).map { $0 + rounding * abs($1) }
        for engine in engines() {
            let out = try CPUGemm.$forcedEngine.withValue(engine) {
                try backend.conv3d(x, weight: w, bias: bias, stride: c.stride, padding: c.padding)
            }
            XCTAssertEqual(out.shape, shape, label)
            XCTAssertEqual(out.dtype, c.dtype, label)
            assertClose(try out.floats(), expected, tolerance: tolerance, "\(label) [\(engine)]")
        }
    }

    func engines() -> [GemmEngine] { BLASLibrary.shared == nil ? [.builtin] : [.builtin, .blas] }

    func testVAEShapes() throws {
        try run(Case(batch: 2, inChannels: 3, outChannels: 4, input: [5, 7, 6]), seed: 1, "3×3×3 pad 1")
        try run(Case(inChannels: 5, outChannels: 7, input: [3, 4, 9], kernel: [1, 1, 1], padding: [0, 0, 0]), seed: 2, "1×1×1")
        try run(Case(inChannels: 5, outChannels: 7, input: [3, 4, 9], kernel: [1, 1, 1], padding: [0, 0, 0], permuted: true), seed: 3, "1×1×1 permuted view")
        try run(Case(inChannels: 4, outChannels: 2, input: [1, 5, 5], kernel: [3, 3, 3], padding: [1, 1, 1]), seed: 4, "T = 1 under a 3-tap kernel")
    }

    func testPatchEmbedding() throws {
        // Wan's DiT patch embedding: kernel = stride = (1, 2, 2); odd H/W drop the last row/column.
        try run(Case(inChannels: 16, outChannels: 24, input: [3, 9, 8], kernel: [1, 2, 2], stride: [1, 2, 2], padding: [0, 0, 0]), seed: 5, "patch embed")
        try run(Case(inChannels: 16, outChannels: 24, input: [2, 6, 6], kernel: [1, 2, 2], stride: [1, 2, 2], padding: [0, 0, 0], dtype: .bf16, weightDtype: .bf16), seed: 6, "patch embed bf16")
    }

    func testAwkwardStridesPaddingsAndDtypes() throws {
        try run(Case(batch: 2, inChannels: 3, outChannels: 5, input: [5, 8, 11], kernel: [2, 3, 2], stride: [2, 1, 3], padding: [0, 2, 1]), seed: 7, "mixed stride/padding")
        try run(Case(inChannels: 2, outChannels: 3, input: [4, 6, 7], kernel: [3, 1, 3], stride: [1, 3, 2], padding: [2, 0, 2], dtype: .f16, weightDtype: .bf16, bias: false), seed: 8, "f16 input, bf16 weight")
        try run(Case(inChannels: 3, outChannels: 2, input: [3, 5, 4], kernel: [3, 3, 3], padding: [1, 1, 1], dtype: .bf16, permuted: true), seed: 9, "bf16 permuted view")
        try run(Case(inChannels: 1, outChannels: 1, input: [1, 1, 1], kernel: [1, 1, 1], padding: [0, 0, 0]), seed: 10, "one element")
    }

    func testPositionTiles() throws {
        // K = 512·27 = 13 824 leaves room for ~300 positions per im2col tile: 338 positions need two tiles.
        try run(Case(inChannels: 512, outChannels: 3, input: [2, 13, 13]), seed: 11, "two position tiles")
    }

    func testBadArgumentsThrow() throws {
        let x = try randomTensor([1, 2, 3, 3, 3], seed: 1)
        let w = try randomTensor([4, 2, 3, 3, 3], seed: 2)
        XCTAssertThrowsError(try backend.conv3d(x, weight: try randomTensor([4, 3, 3, 3, 3], seed: 3), bias: nil, stride: [1, 1, 1], padding: [1, 1, 1]))
        XCTAssertThrowsError(try backend.conv3d(x, weight: w, bias: nil, stride: [1, 0, 1], padding: [1, 1, 1]))
        XCTAssertThrowsError(try backend.conv3d(x, weight: w, bias: nil, stride: [1, 1], padding: [1, 1, 1]))
        XCTAssertThrowsError(try backend.conv3d(x, weight: w, bias: nil, stride: [1, 1, 1], padding: [1, -1, 1]))
        XCTAssertThrowsError(try backend.conv3d(try randomTensor([1, 2, 1, 3, 3], seed: 4), weight: w, bias: nil, stride: [1, 1, 1], padding: [0, 0, 0])) { error in
            guard case KinemaError.shapeMismatch = error else { return XCTFail("unexpected error \(error)") }
        }
        XCTAssertThrowsError(try backend.conv3d(x, weight: w, bias: try randomTensor([3], seed: 5), stride: [1, 1, 1], padding: [1, 1, 1]))
    }
}
