import Foundation
import KinemaCore
import KinemaIO

// The two bicubic resamplers the CLIP image paths need, reproduced operation by operation because the
// conditioning image is the one input whose exact pixels reach every I2V frame.
//
// 1. Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit RGB (libImaging/Resample.c), used by transformers'
//    CLIPImageProcessor (PIL backend). Separable, horizontal pass first, an 8-bit intermediate image, a
//    cubic kernel with a = −0.5 stretched by the scale when shrinking (antialiasing), per-output-pixel
//    weights normalised to sum 1 and rounded to 22-bit fixed point, results rounded and clamped to 0…255.
// 2. PyTorch `F.interpolate(mode="bicubic", align_corners=False)` on float tensors (Wan's clip.py
//    `CLIPModel.visual`): cubic convolution with A = −0.75, no antialiasing, edge indices clamped, f32.

enum PillowBicubic {
    /// Bits of the fixed-point weights (Pillow: PRECISION_BITS = 32 − 8 − 2).
    static let precisionBits = 22

    /// Pillow's bicubic filter, a = −0.5, support 2.
    static func filter(_ value: Double) -> Double {
        let a = -0.5
        let x = abs(value)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Per output pixel: the first input index, the tap count, and `ksize` fixed-point weights
    /// (Pillow's precompute_coeffs + normalize_coeffs_8bpc over the whole input extent).
    static func coefficients(inSize: Int, outSize: Int) -> (ksize: Int, bounds: [(start: Int, count: Int)], weights: [Int32]) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var bounds: [(start: Int, count: Int)] = []
        bounds.reserveCapacity(outSize)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var taps = [Double](repeating: 0, count: ksize)
        for out in 0..<outSize {
            let center = (Double(out) + 0.5) * scale
            let inverse = 1 / filterScale
            // C's (int) truncates toward zero; the clamps make the sign irrelevant for the lower bound.
            let start = max(Int(center - support + 0.5), 0)
            let end = min(Int(center + support + 0.5), inSize)
            let count = end - start
            var total = 0.0
            for tap in 0..<count {
                let weight = filter((Double(tap + start) - center + 0.5) * inverse)
                taps[tap] = weight
                total += weight
            }
            for tap in 0..<count {
                let normalized = total != 0 ? taps[tap] / total : taps[tap]
                let scaled = normalized * Double(1 << precisionBits)
                weights[out * ksize + tap] = Int32(normalized < 0 ? (scaled - 0.5).rounded(.towardZero) : (scaled + 0.5).rounded(.towardZero))
            }
            bounds.append((start, count))
        }
        return (ksize, bounds, weights)
    }

    /// Pillow's clip8: round-half-up was folded into the accumulator's initial value.
    @inline(__always)
    static func clip8(_ sum: Int) -> UInt8 {
        let shifted = sum >> precisionBits
        return UInt8(clamping: shifted)
    }

    /// `image.resize((width, height), Image.BICUBIC)` for an RGB image.
    static func resize(_ image: RGBImage, width: Int, height: Int) throws -> RGBImage {
        guard width > 0, height > 0, image.width > 0, image.height > 0,
            image.pixels.count == image.width * image.height * 3
        else {
            throw KinemaError.invalidArgument(
                "bicubic resize of a \(image.width)×\(image.height) image (\(image.pixels.count) bytes) to \(width)×\(height)")
        }
        if width == image.width, height == image.height { return image }
        let rounding = 1 << (precisionBits - 1)
        // Horizontal pass over only the rows the vertical pass reads (Pillow does the same; the result is
        // identical either way since rows are independent).
        var intermediate = image.pixels
        var intermediateWidth = image.width
        if width != image.width {
            let (ksize, bounds, weights) = coefficients(inSize: image.width, outSize: width)
            var out = [UInt8](repeating: 0, count: width * image.height * 3)
            image.pixels.withUnsafeBufferPointer { source in
                for row in 0..<image.height {
                    let inRow = row * image.width * 3
                    for x in 0..<width {
                        let (start, count) = bounds[x]
                        var sums = (rounding, rounding, rounding)
                        for tap in 0..<count {
                            let weight = Int(weights[x * ksize + tap])
                            let pixel = inRow + (start + tap) * 3
                            sums.0 += Int(source[pixel]) * weight
                            sums.1 += Int(source[pixel + 1]) * weight
                            sums.2 += Int(source[pixel + 2]) * weight
                        }
                        let target = (row * width + x) * 3
                        out[target] = clip8(sums.0)
                        out[target + 1] = clip8(sums.1)
                        out[target + 2] = clip8(sums.2)
                    }
                }
            }
            intermediate = out
            intermediateWidth = width
        }
        guard height != image.height else { return RGBImage(width: width, height: height, pixels: intermediate) }
        let (ksize, bounds, weights) = coefficients(inSize: image.height, outSize: height)
        var out = [UInt8](repeating: 0, count: width * height * 3)
        intermediate.withUnsafeBufferPointer { source in
            let stride = intermediateWidth * 3
            for y in 0..<height {
                let (start, count) = bounds[y]
                for x in 0..<(width * 3) {
                    var sum = rounding
                    for tap in 0..<count {
                        sum += Int(source[(start + tap) * stride + x]) * Int(weights[y * ksize + tap])
                    }
                    out[y * width * 3 + x] = clip8(sum)
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}

enum TorchBicubic {
    /// PyTorch's cubic-convolution weights for the fractional offset t (upsample_bicubic2d, A = −0.75).
    static func weights(_ t: Float) -> (Float, Float, Float, Float) {
        let a: Float = -0.75
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }  // |x| ≤ 1
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }  // 1 < |x| < 2
        return (far(t + 1), near(t), near(1 - t), far(2 - t))
    }

    /// For each output index: the four clamped input indices and their weights (align_corners = False:
    /// source = scale · (i + 0.5) − 0.5, scale = in / out in f32, not clamped at 0 for cubic).
    static func taps(inSize: Int, outSize: Int) -> [(indices: (Int, Int, Int, Int), weights: (Float, Float, Float, Float))] {
        let scale = Float(inSize) / Float(outSize)
        return (0..<outSize).map { out in
            let source = scale * (Float(out) + 0.5) - 0.5
            let floor = source.rounded(.down)
            let t = min(max(source - floor, 0), 1)
            let base = Int(floor) - 1
            func clamped(_ offset: Int) -> Int { min(max(base + offset, 0), inSize - 1) }
            return ((clamped(0), clamped(1), clamped(2), clamped(3)), weights(t))
        }
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
            for (y, row) in rows.enumerated() {
                let ys = [row.indices.0, row.indices.1, row.indices.2, row.indices.3]
                let wy = [row.weights.0, row.weights.1, row.weights.2, row.weights.3]
                for (x, column) in columns.enumerated() {
                    let xs = [column.indices.0, column.indices.1, column.indices.2, column.indices.3]
                    let wx = [column.weights.0, column.weights.1, column.weights.2, column.weights.3]
                    var total: Float = 0
                    for i in 0..<4 {
                        let line = plane + ys[i] * inWidth
                        var inner = values[line + xs[0]] * wx[0]
                        for j in 1..<4 { inner += values[line + xs[j]] * wx[j] }
                        total = i == 0 ? inner * wy[0] : total + inner * wy[i]
                    }
                    out[(channel * height + y) * width + x] = total
                }
            }
        }
        return try Tensor(out, shape: [channels, height, width], dtype: .f32)
    }
}
