import Foundation
import KinemaCore
import KinemaIO

// The two bicubic resamplers the CLIP image paths need, reproduced operation by operation because the
// conditioning image is the one input whose exact pixels reach every I2V frame.
//
// 1. Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit RGB (libImaging/Resample.c), used by transformers'
//    CLIPImageProcessor (PIL backend); it lives in KinemaIO (`RGBImage.resized`), shared with the VAE input
//    path. Separable (pass order as Pillow 13 picks it), an 8-bit intermediate image, a
//    cubic kernel with a = −0.5 stretched by the scale when shrinking (antialiasing), per-output-pixel
//    weights normalised to sum 1 and rounded to 22-bit fixed point, results rounded and clamped to 0…255.
// 2. PyTorch `F.interpolate(mode="bicubic", align_corners=False)` on float tensors (Wan's clip.py
//    `CLIPModel.visual`): cubic convolution with A = −0.75, no antialiasing, edge indices clamped, f32.

enum TorchBicubic {
    /// PyTorch's cubic-convolution weights for the fractional offset t (upsample_bicubic2d, A = −0.75).
    static func weights(_ t: Float) -> (Float, Float, Float, Float) {
        let a: Float = -0.75
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }  // |x| ≤ 1
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }  // 1 < |x| < 2
        return (far(t + 1), near(t), near(1 - t), far(2 - t))
    }

    /// For each output index, four clamped input indices and their weights, flattened [out · 4]
    /// (align_corners = False: source = scale · (i + 0.5) − 0.5 with scale = in / out in f32, not clamped at
    /// 0 for cubic; t = source − floor(source)).
    static func taps(inSize: Int, outSize: Int) -> (indices: [Int], weights: [Float]) {
        let scale = Float(inSize) / Float(outSize)
        var indices = [Int](repeating: 0, count: outSize * 4)
        var weights = [Float](repeating: 0, count: outSize * 4)
        for out in 0..<outSize {
            let source = scale * (Float(out) + 0.5) - 0.5
            let floor = source.rounded(.down)
            let t = min(max(source - floor, 0), 1)
            let w = self.weights(t)
            let taps = [w.0, w.1, w.2, w.3]
            for tap in 0..<4 {
                indices[out * 4 + tap] = min(max(Int(floor) - 1 + tap, 0), inSize - 1)
                weights[out * 4 + tap] = taps[tap]
            }
        }
        return (indices, weights)
    }

    /// `F.interpolate(x[None], size=(height, width), mode="bicubic", align_corners=False)` for a host
    /// f32 tensor [C, H, W] → [C, height, width] f32. Each output is Σ_y w_y · (Σ_x w_x · in[y, x]), summed in
    /// tap order as PyTorch's CPU kernel does.
    static func resize(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        guard x.rank == 3, height > 0, width > 0, x.shape[1] > 0, x.shape[2] > 0 else {
            throw KinemaError.shapeMismatch(context: "bicubic interpolate", expected: "[C, H, W] and a positive size", found: "\(x.shape) → \(height)×\(width)")
        }
        let (channels, inHeight, inWidth) = (x.shape[0], x.shape[1], x.shape[2])
        let values = try x.floats()
        let rows = taps(inSize: inHeight, outSize: height)
        let columns = taps(inSize: inWidth, outSize: width)
        var out = [Float](repeating: 0, count: channels * height * width)
        for channel in 0..<channels {
            let plane = channel * inHeight * inWidth
            for y in 0..<height {
                for x in 0..<width {
                    var total: Float = 0
                    for i in 0..<4 {
                        let line = plane + rows.indices[y * 4 + i] * inWidth
                        var inner = values[line + columns.indices[x * 4]] * columns.weights[x * 4]
                        for j in 1..<4 { inner += values[line + columns.indices[x * 4 + j]] * columns.weights[x * 4 + j] }
                        total = i == 0 ? inner * rows.weights[y * 4] : total + inner * rows.weights[y * 4 + i]
                    }
                    out[(channel * height + y) * width + x] = total
                }
            }
        }
        return try Tensor(out, shape: [channels, height, width], dtype: .f32)
    }
}
