import KinemaCPU
import KinemaCore
import KinemaTestSupport
import XCTest

// The channels-last VAE ops' shared pieces: ChannelsLastConvolution.validate's shapes and errors, the CPU
// conv3dChannelsLast against a direct convolution written here in Double on [B, T, H, W, C]
// indexing (plus bias and residual), and composedRMSNorm(silu:) against rmsNorm then silu. The CUDA
// implementations are compared with the CPU backend by `kinema doctor` (OpConsistency+ChannelsLast).

final class ChannelsLastOpsTests: XCTestCase {
    let b = CPUBackend.shared

    // MARK: - validate

    func testValidateGivesTheOutputShape() throws {
        func out(_ x: [Int], _ w: [Int], stride: [Int], padding: [Int]) throws -> [Int] {
            try ChannelsLastConvolution.validate(
                try Tensor.zeros(x), weight: try Tensor.zeros(w), bias: nil, residual: nil, stride: stride, padding: padding)
        }
        XCTAssertEqual(try out([1, 5, 9, 11, 16], [8, 3, 3, 3, 16], stride: [1, 1, 1], padding: [0, 1, 1]), [1, 3, 9, 11, 8])
        // The 2-D downsample after its (0, 1, 0, 1) zero pad: odd sizes round down.
        XCTAssertEqual(try out([2, 3, 10, 14, 8], [12, 1, 3, 3, 8], stride: [1, 2, 2], padding: [0, 0, 0]), [2, 3, 4, 6, 12])
        // The temporal downsample: 3 taps, stride 2 in time.
        XCTAssertEqual(try out([1, 7, 6, 5, 8], [8, 3, 1, 1, 8], stride: [2, 1, 1], padding: [0, 0, 0]), [1, 3, 6, 5, 8])
        XCTAssertEqual(try out([1, 1, 1, 1, 1], [1, 1, 1, 1, 1], stride: [1, 1, 1], padding: [0, 0, 0]), [1, 1, 1, 1, 1])
    }

    func testValidateRejectsBadShapes() throws {
        let x = try Tensor.zeros([1, 4, 6, 7, 8])
        let w = try Tensor.zeros([5, 3, 3, 3, 8])
        func check(
            _ x: Tensor, _ w: Tensor, bias: Tensor? = nil, residual: Tensor? = nil, stride: [Int] = [1, 1, 1], padding: [Int] = [1, 1, 1],
            mentioning words: [String], line: UInt = #line
        ) {
            assertThrowsKinema(
                try ChannelsLastConvolution.validate(x, weight: w, bias: bias, residual: residual, stride: stride, padding: padding),
                mentioning: words, line: line)
            // The backend entry point refuses the same input before touching memory.
            assertThrowsKinema(
                try b.conv3dChannelsLast(x, weight: w, bias: bias, residual: residual, stride: stride, padding: padding), mentioning: words, line: line)
        }
        check(try Tensor.zeros([4, 6, 7, 8]), w, mentioning: ["conv3dChannelsLast", "[B, T, H, W, Cin]"])  // rank 4
        check(x, try Tensor.zeros([5, 3, 3, 8]), mentioning: ["[Cout, kT, kH, kW, Cin]"])  // weight rank 4
        check(x, try Tensor.zeros([5, 3, 3, 3, 7]), mentioning: ["[1, 4, 6, 7, 8]", "[5, 3, 3, 3, 7]"])  // Cin mismatch
        check(try Tensor.zeros([1, 8, 4, 6, 7]), w, mentioning: ["conv3dChannelsLast"])  // channels-first x
        check(x, w, stride: [1, 1], mentioning: ["stride"])
        check(x, w, stride: [1, 0, 1], mentioning: ["stride"])
        check(x, w, padding: [1, -1, 1], mentioning: ["padding"])
        check(x, w, bias: try Tensor.zeros([4]), mentioning: ["bias", "[5]"])
        check(x, w, bias: try Tensor.zeros([1, 5]), mentioning: ["bias"])
        check(try Tensor.zeros([1, 2, 6, 7, 8]), w, padding: [0, 1, 1], mentioning: ["kernel", "padded"])  // T 2 < 3 taps
        check(x, w, residual: try Tensor.zeros([1, 4, 6, 7, 4]), mentioning: ["residual", "[1, 4, 6, 7, 5]"])
        check(x, w, residual: try Tensor.zeros([1, 5, 6, 7, 4]), mentioning: ["residual"])  // channels-first residual
    }

    // MARK: - conv3dChannelsLast

    struct Conv {
        var input: [Int]  // [B, T, H, W, Cin]
        var filter: [Int]  // [Cout, kT, kH, kW, Cin]
        var stride = [1, 1, 1], padding = [0, 0, 0]
        var bias = true, residual = true
    }

    /// Direct convolution of the stored values on channels-last indexing, + bias + residual, with a
    /// per-element f32 error allowance (dot product, then the residual add rounded once more).
    private func reference(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ residual: Tensor?, _ c: Conv) throws -> (values: [Double], tolerance: [Double], shape: [Int], conv: [Double]) {
        let xs = try x.floats(), ws = try w.floats(), bs = try bias?.floats(), rs = try residual?.floats()
        let (batch, cin, cout) = (c.input[0], c.input[4], c.filter[0])
        let spatial = Array(c.input[1...3]), kernel = Array(c.filter[1...3])
        var out: [Int] = []
        for axis in 0..<3 {
            let span: Int = spatial[axis] + 2 * c.padding[axis] - kernel[axis]
            out.append(span / c.stride[axis] + 1)
        }
        let shape: [Int] = [batch] + out + [cout]
        var values: [Double] = [], tolerance: [Double] = [], convs: [Double] = []
        for n in 0..<batch {
            for ot in 0..<out[0] {
                for oh in 0..<out[1] {
                    for ow in 0..<out[2] {
                        for o in 0..<cout {
                            var sum = Double(bs?[o] ?? 0), magnitude = abs(sum)
                            for dt in 0..<kernel[0] {
                                let t = ot * c.stride[0] + dt - c.padding[0]
                                guard t >= 0, t < spatial[0] else { continue }
                                for dh in 0..<kernel[1] {
                                    let h = oh * c.stride[1] + dh - c.padding[1]
                                    guard h >= 0, h < spatial[1] else { continue }
                                    for dw in 0..<kernel[2] {
                                        let wi = ow * c.stride[2] + dw - c.padding[2]
                                        guard wi >= 0, wi < spatial[2] else { continue }
                                        for i in 0..<cin {
                                            let xv = Double(xs[(((n * spatial[0] + t) * spatial[1] + h) * spatial[2] + wi) * cin + i])
                                            let wv = Double(ws[(((o * kernel[0] + dt) * kernel[1] + dh) * kernel[2] + dw) * cin + i])
                                            sum += xv * wv
                                            magnitude += abs(xv * wv)
                                        }
                                    }
                                }
                            }
                            let index = values.count
                            let total = sum + (rs.map { Double($0[index]) } ?? 0)
                            convs.append(sum)
                            values.append(total)
                            tolerance.append(dotTolerance(length: kernel.reduce(1, *) * cin + 1, magnitude: magnitude) + 2 * f32Epsilon * abs(total))
                        }
                    }
                }
            }
        }
        return (values, tolerance, shape, convs)
    }

    private func run(_ c: Conv, dtype: DType, seed: UInt64, _ label: String) throws {
        let x = try randomTensor(c.input, dtype: dtype, seed: seed)
        let w = try randomTensor(c.filter, dtype: dtype, seed: seed + 1, scale: 0.3)
        let bias = c.bias ? try randomTensor([c.filter[0]], seed: seed + 2) : nil
        let outShape = try ChannelsLastConvolution.validate(x, weight: w, bias: bias, residual: nil, stride: c.stride, padding: c.padding)
        let residual = c.residual ? try randomTensor(outShape, dtype: dtype, seed: seed + 3) : nil
        let (expected, f32Tolerance, shape, convs) = try reference(x, w, bias, residual, c)
        // bf16: the convolution's output and the residual sum are each rounded to bf16 (half an ulp: up to
        // 2⁻⁸ relative, bf16's unit roundoff, each) on top of the f32 error.
        let rounding = dtype == .bf16 ? 1.0 / 256 : 0
        let tolerance = (0..<expected.count).map { f32Tolerance[$0] + rounding * (abs(convs[$0]) + abs(expected[$0])) }
        let y = try b.conv3dChannelsLast(x, weight: w, bias: bias, residual: residual, stride: c.stride, padding: c.padding)
        XCTAssertEqual(y.shape, shape, label)
        XCTAssertEqual(y.dtype, dtype, label)
        XCTAssertTrue(y.isContiguous, label)
        assertClose(try y.floats(), expected, tolerance: tolerance, "\(label) \(dtype.rawValue)")
    }

    func testConvMatchesDirectChannelsLastReference() throws {
        let cases: [(String, Conv)] = [
            ("3×3×3 causal pad [0,1,1] +bias +residual", Conv(input: [1, 5, 6, 7, 5], filter: [4, 3, 3, 3, 5], padding: [0, 1, 1])),
            ("3×3×3 pad 1, conv_in's 3 channels, no bias", Conv(input: [2, 3, 5, 4, 3], filter: [6, 3, 3, 3, 3], padding: [1, 1, 1], bias: false, residual: false)),
            ("1×3×3 stride [1,2,2] odd sizes +bias", Conv(input: [1, 2, 9, 7, 4], filter: [5, 1, 3, 3, 4], stride: [1, 2, 2], residual: false)),
            ("3×1×1 stride [2,1,1] (time downsample) +bias", Conv(input: [1, 7, 3, 4, 4], filter: [4, 3, 1, 1, 4], stride: [2, 1, 1], residual: false)),
            ("1×1×1 shortcut +bias +residual", Conv(input: [1, 2, 3, 5, 6], filter: [7, 1, 1, 1, 6])),
            ("3×3×3 +residual, no bias", Conv(input: [1, 4, 4, 5, 4], filter: [4, 3, 3, 3, 4], padding: [0, 1, 1], bias: false)),
        ]
        for (index, (label, conv)) in cases.enumerated() {
            for dtype in [DType.f32, .bf16] {
                try run(conv, dtype: dtype, seed: UInt64(10 * index + 1), label)
            }
        }
    }

    func testConvTakesStridedViews() throws {
        // x as a frame range of a longer clip viewed through a permutation (im2col reads its strides).
        let clip = try randomTensor([1, 6, 5, 7, 9], seed: 70)  // stored [B, H, W, T, C]
        let x = try clip.permuted([0, 3, 1, 2, 4]).narrowed(axis: 1, start: 2, length: 5)  // [B, T, H, W, C] = [1, 5, 6, 5, 9]
        let w = try randomTensor([3, 3, 3, 3, 9], seed: 71, scale: 0.3)
        let y = try b.conv3dChannelsLast(x, weight: w, bias: nil, residual: nil, stride: [1, 1, 1], padding: [0, 1, 1])
        let dense = try b.conv3dChannelsLast(try b.contiguous(x), weight: w, bias: nil, residual: nil, stride: [1, 1, 1], padding: [0, 1, 1])
        assertClose(y, dense, relL2: 0, maxAbs: 0, "strided view = its contiguous copy")
    }

    // MARK: - rmsNorm(silu:)

    func testRMSNormSiLUEqualsRMSNormThenSiLU() throws {
        let weight = try randomTensor([96], seed: 80)
        for dtype in [DType.f32, .bf16] {
            let x = try randomTensor([2, 3, 4, 5, 96], dtype: dtype, seed: 81, scale: 3)
            for w in [weight, nil] as [Tensor?] {
                let fused = try b.rmsNorm(x, weight: w, eps: 1e-6, silu: true)
                let composed = try b.silu(try b.rmsNorm(x, weight: w, eps: 1e-6))
                XCTAssertEqual(fused.dtype, dtype)
                assertClose(fused, composed, relL2: 0, maxAbs: 0, "silu, weight \(w != nil), \(dtype.rawValue)")
                let plain = try b.rmsNorm(x, weight: w, eps: 1e-6, silu: false)
                assertClose(plain, try b.rmsNorm(x, weight: w, eps: 1e-6), relL2: 0, maxAbs: 0, "no silu, \(dtype.rawValue)")
            }
        }
    }

    func testRMSNormSiLUAgainstTwin() throws {
        // f64 twin: x / sqrt(mean(x²) + eps) · w, then y · sigmoid(y).
        let (rows, width) = (7, 384)
        let x = try randomTensor([rows, width], seed: 82, scale: 5)
        let w = try randomTensor([width], seed: 83)
        let (xs, ws) = (try x.floats().map(Double.init), try w.floats().map(Double.init))
        var expected: [Double] = [], normalized: [Double] = []
        for r in 0..<rows {
            let row = xs[(r * width)..<((r + 1) * width)]
            let scale = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(width) + 1e-6).squareRoot()
            for (j, v) in row.enumerated() {
                let y = v * scale * ws[j]
                normalized.append(y)
                expected.append(y / (1 + exp(-y)))
            }
        }
        let y = try b.rmsNorm(x, weight: w, eps: 1e-6, silu: true)
        // The f32 scale's relative error is about half the sum of squares' (a dot product of length 384), plus
        // a few roundings for the products; SiLU's slope is at most 1.1, then its own few ulps.
        let relative = dotTolerance(length: width, magnitude: 1) / 2 + 8 * f32Epsilon
        let tolerance = zip(normalized, expected).map { 1.1 * relative * abs($0) + 4 * f32Epsilon * abs($1) + 1e-30 }
        assertClose(try y.floats(), expected, tolerance: tolerance, "rmsNorm+SiLU f32 vs f64 twin")
    }
}
