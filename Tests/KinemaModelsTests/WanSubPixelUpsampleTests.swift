import KinemaCPU
import KinemaCore
import KinemaNN
import KinemaTestSupport
import XCTest

@testable import KinemaModels

// The decoder's upsampling as four 2×2 phase convolutions equals nearest ×2 followed by the 3×3 conv (pad 1),
// on odd sizes, with a bias, in f32 (to rounding) and in bf16 (the phase weights are rounded once more).
final class WanSubPixelUpsampleTests: XCTestCase {
    func reference(_ x: Tensor, weight: Tensor, bias: Tensor, backend: any Backend) throws -> Tensor {
        let (b, t, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let repeated = try x.unsqueezed(3).unsqueezed(5).expanded(to: [b, t, h, 2, w, 2, c])
        let doubled = try backend.reshape(try backend.contiguous(repeated), [b, t, 2 * h, 2 * w, c])
        return try backend.conv3dChannelsLast(doubled, weight: weight, bias: bias, residual: nil, stride: [1, 1, 1], padding: [0, 1, 1])
    }

    func check(dtype: DType, tolerance: Double) throws {
        let backend = CPUBackend.shared
        var random = SyntheticWeights(seed: 77)
        let (cin, cout) = (6, 5)
        let x = try backend.cast(try random.tensor(shape: [1, 2, 5, 7, cin], dtype: .f32), to: dtype)
        let weight = try backend.cast(try random.tensor(shape: [cout, 1, 3, 3, cin], dtype: .f32), to: dtype)
        let bias = try random.tensor(shape: [cout], dtype: .f32)
        let expected = try reference(x, weight: weight, bias: bias, backend: backend)
        let actual = try WanSubPixelUpsample(weight: weight, bias: bias, backend: backend)(x)
        XCTAssertEqual(actual.shape, [1, 2, 10, 14, cout])
        assertClose(try backend.cast(actual, to: .f32), try backend.cast(expected, to: .f32), relL2: tolerance, "sub-pixel upsample \(dtype.rawValue)")
    }

    func testMatchesNearestThenConvF32() throws { try check(dtype: .f32, tolerance: 1e-6) }

    // bf16: both sides round to bf16 at the output; the phase weights (sums of up to four bf16 taps) are rounded
    // once more, a relative 2⁻⁹ per weight.
    func testMatchesNearestThenConvBF16() throws { try check(dtype: .bf16, tolerance: 1e-2) }
}
