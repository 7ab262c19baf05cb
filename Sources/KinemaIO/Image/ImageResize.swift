import Foundation
import KinemaCore

// Resizing of 8-bit RGB images, following Pillow's `Image.resize` for 8-bit images (libImaging/Resample.c)
// so that an image resized here equals one resized by the reference pipelines (diffusers' Wan I2V example
// calls `image.resize((w, h))`, Pillow's default bicubic filter):
//   - separable: one pass along each axis that changes size, into an 8-bit intermediate image;
//   - each output sample is a weighted sum over the input samples whose centres fall within the filter's
//     support, scaled by the reduction factor when downscaling (antialiasing);
//   - the normalized weights are turned into fixed point with 22 fractional bits, rounded away from zero,
//     and each sum starts at one half and is clamped to 0…255 after the shift.
// Pass order: Pillow up to its August 2026 sources always runs the horizontal pass first. The reference
// environment's Pillow 13.0.0 runs the vertical pass first in some cases (measured against it on 700 random
// size pairs, Tests/Fixtures/wan_i2v): always when the height shrinks and the width grows, never when the
// height does not shrink, and for about a quarter of the pairs where both shrink, by a rule not identified.
// Here: vertical first when the height shrinks and the width grows, horizontal first otherwise; so when
// both sides shrink a result can differ from Pillow 13.0.0 by one step in some samples.
// The algorithm is re-derived from Pillow's behaviour, not copied.

public enum ResampleFilter: String, Sendable, CaseIterable {
    /// Keys' cubic convolution with a = −0.5 (Pillow BICUBIC), support 2.
    case bicubic
    /// Lanczos windowed sinc, a = 3 (Pillow LANCZOS), support 3.
    case lanczos

    var support: Double {
        switch self {
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    func weight(_ x: Double) -> Double {
        switch self {
        case .bicubic:
            let a = -0.5
            let t = abs(x)
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return (((t - 5) * t + 8) * t - 4) * a }
            return 0
        case .lanczos:
            guard x >= -3, x < 3 else { return 0 }
            return Self.sinc(x) * Self.sinc(x / 3)
        }
    }

    private static func sinc(_ x: Double) -> Double {
        if x == 0 { return 1 }
        let y = x * Double.pi
        return sin(y) / y
    }
}

/// Fixed-point weights of one resampling pass along one axis: for every output index in `outputs` (entry i
/// for index outputs.lowerBound + i), the first input index it reads and its integer weights (22 fractional bits).
struct ResampleWeights {
    static let precisionBits = 22
    let first: [Int]
    let weights: [[Int32]]

    init(inputSize: Int, outputSize: Int, filter: ResampleFilter, outputs: Range<Int>? = nil) {
        let outputs = outputs ?? 0..<outputSize
        let scale = Double(inputSize) / Double(outputSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let inverseScale = 1 / filterScale
        var first: [Int] = []
        var weights: [[Int32]] = []
        first.reserveCapacity(outputs.count)
        weights.reserveCapacity(outputs.count)
        let one = Double(1 << Self.precisionBits)
        for out in outputs {
            let center = (Double(out) + 0.5) * scale
            // Truncation toward zero, then clamped to the image (as Pillow's (int) casts).
            let lo = max(0, Int(center - support + 0.5))
            let hi = min(inputSize, Int(center + support + 0.5))
            var real: [Double] = []
            var total = 0.0
            if hi > lo {
                for x in lo..<hi {
                    let w = filter.weight((Double(x) - center + 0.5) * inverseScale)
                    real.append(w)
                    total += w
                }
            }
            if total != 0 { real = real.map { $0 / total } }
            first.append(lo)
            weights.append(real.map { w in Int32(w < 0 ? (-0.5 + w * one).rounded(.towardZero) : (0.5 + w * one).rounded(.towardZero)) })
        }
        self.first = first
        self.weights = weights
    }

    /// The weighted sum of `count` samples read by `sample(i)` for output index `out`, back to 8 bits.
    @inline(__always)
    func apply(_ out: Int, _ sample: (Int) -> UInt8) -> UInt8 {
        var sum: Int32 = 1 << (Self.precisionBits - 1)
        let start = first[out]
        for (offset, w) in weights[out].enumerated() {
            sum &+= Int32(sample(start + offset)) &* w
        }
        let shifted = sum >> Int32(Self.precisionBits)
        return UInt8(clamping: min(255, max(0, shifted)))
    }
}

extension RGBImage {
    /// The largest image `resized` makes.
    public static let maximumResizedPixels = 1 << 28

    /// This image resampled to `width` × `height` (aspect ratio not kept), as Pillow's
    /// `Image.resize((width, height), filter)` computes it for an RGB image.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResampleFilter = .bicubic) throws -> RGBImage {
        try resized(width: newWidth, height: newHeight, filter: filter, columns: 0..<newWidth, rows: 0..<newHeight)
    }

    /// `resized(width:height:filter:)` cropped to `columns` × `rows` of the resized image, computing only the
    /// kept samples (each output of a pass depends only on its own index), so that cropping a very large
    /// resize (CLIP's shortest-edge resize of a long, thin frame: 16×8192 → 224×114688) costs only the crop.
    public func resized(
        width newWidth: Int, height newHeight: Int, filter: ResampleFilter = .bicubic, columns: Range<Int>, rows: Range<Int>
    ) throws -> RGBImage {
        guard newWidth > 0, newHeight > 0, newWidth <= 1 << 24, newHeight <= 1 << 24, !columns.isEmpty, !rows.isEmpty,
            columns.lowerBound >= 0, columns.upperBound <= newWidth, rows.lowerBound >= 0, rows.upperBound <= newHeight,
            columns.count * rows.count <= Self.maximumResizedPixels
        else {
            throw KinemaError.invalidArgument(
                "cannot resize an image to \(newWidth)×\(newHeight) keeping columns \(columns), rows \(rows) "
                    + "(sides up to 2^24, at most 2^28 pixels kept)")
        }
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw KinemaError.invalidArgument("cannot resize an empty or malformed \(width)×\(height) image")
        }
        if newWidth == width && newHeight == height && columns.count == width && rows.count == height { return self }
        let verticalFirst = newHeight < height && newWidth > width
        var current = self
        if verticalFirst { current = current.resampledVertically(to: newHeight, rows: rows, filter: filter) }
        current = newWidth != width
            ? current.resampledHorizontally(to: newWidth, columns: columns, filter: filter)
            : current.cropped(columns: columns, rows: 0..<current.height)
        if !verticalFirst {
            current = newHeight != height
                ? current.resampledVertically(to: newHeight, rows: rows, filter: filter)
                : current.cropped(columns: 0..<current.width, rows: rows)
        }
        return current
    }

    /// The pixels in `columns` × `rows` (both within the image).
    func cropped(columns: Range<Int>, rows: Range<Int>) -> RGBImage {
        if columns == 0..<width && rows == 0..<height { return self }
        var out: [UInt8] = []
        out.reserveCapacity(columns.count * rows.count * 3)
        for y in rows { out += pixels[((y * width + columns.lowerBound) * 3)..<((y * width + columns.upperBound) * 3)] }
        return RGBImage(width: columns.count, height: rows.count, pixels: out)
    }

    /// One pass along x: width → `newWidth`, keeping output columns `columns`, same height.
    func resampledHorizontally(to newWidth: Int, columns: Range<Int>, filter: ResampleFilter) -> RGBImage {
        let table = ResampleWeights(inputSize: width, outputSize: newWidth, filter: filter, outputs: columns)
        let kept = columns.count
        var out = [UInt8](repeating: 0, count: kept * height * 3)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<height {
                let row = y * width * 3
                for x in 0..<kept {
                    for c in 0..<3 {
                        out[(y * kept + x) * 3 + c] = table.apply(x) { src[row + $0 * 3 + c] }
                    }
                }
            }
        }
        return RGBImage(width: kept, height: height, pixels: out)
    }

    /// One pass along y: height → `newHeight`, keeping output rows `rows`, same width.
    func resampledVertically(to newHeight: Int, rows: Range<Int>, filter: ResampleFilter) -> RGBImage {
        let table = ResampleWeights(inputSize: height, outputSize: newHeight, filter: filter, outputs: rows)
        let kept = rows.count
        var out = [UInt8](repeating: 0, count: width * kept * 3)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<kept {
                for x in 0..<width {
                    for c in 0..<3 {
                        out[(y * width + x) * 3 + c] = table.apply(y) { src[($0 * width + x) * 3 + c] }
                    }
                }
            }
        }
        return RGBImage(width: width, height: kept, pixels: out)
    }
}
