import Foundation
import KinemaCore

/// Where the channel axis sits in a video tensor handed to the writers.
public enum VideoTensorLayout: Sendable, Equatable {
    /// [3, T, H, W], or [1, 3, T, H, W] as Wan's VAE decoder returns it ([B, C, T, H, W] with B = 1).
    case channelsFirst
    /// [T, H, W, 3], as diffusers' `VideoProcessor.postprocess_video(output_type="np")` returns a video.
    case channelsLast
}

/// How a value in [0, 1] becomes a byte.
public enum PixelQuantization: Sendable, Equatable {
    /// round-half-to-even(v·255): diffusers `numpy_to_pil` / `VideoProcessor` with output_type "pil" and
    /// `encode_video`. The default.
    case nearest
    /// truncate(v·255): diffusers `export_to_video` (`(frame * 255).astype(np.uint8)`), bit-for-bit.
    case truncate
}

/// An 8-bit RGB video held in memory: `frames[t]` is H·W·3 bytes, row-major, RGB interleaved.
public struct RGBVideo: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let frames: [[UInt8]]

    public var frameCount: Int { frames.count }

    public init(width: Int, height: Int, frames: [[UInt8]]) throws {
        guard width > 0, height > 0, width <= 1 << 16, height <= 1 << 16 else {
            throw KinemaError.invalidArgument("video size must be 1...65536 on each side, got \(width)×\(height)")
        }
        guard !frames.isEmpty else { throw KinemaError.invalidArgument("a video needs at least one frame") }
        for (index, frame) in frames.enumerated() where frame.count != width * height * 3 {
            throw KinemaError.shapeMismatch(
                context: "RGBVideo frame \(index)", expected: "\(width * height * 3) bytes (\(width)×\(height)×3)",
                found: "\(frame.count) bytes")
        }
        self.width = width
        self.height = height
        self.frames = frames
    }

    /// Converts a float video in [-1, 1] (values outside are clamped; NaN becomes 0) to bytes the way
    /// diffusers post-processes Wan output: v = clamp(x·0.5 + 0.5, 0, 1) in float32, then `quantization`.
    public init(tensor: Tensor, layout: VideoTensorLayout, quantization: PixelQuantization = .nearest) throws {
        guard tensor.device == .cpu else {
            throw KinemaError.deviceMismatch(context: "RGBVideo(tensor:)", expected: .cpu, found: tensor.device)
        }
        guard tensor.dtype.isFloatingPoint else {
            throw KinemaError.dtypeMismatch(context: "RGBVideo(tensor:)", expected: "a floating-point dtype", found: tensor.dtype)
        }
        var shape = tensor.shape
        if layout == .channelsFirst, shape.count == 5 {
            guard shape[0] == 1 else {
                throw KinemaError.shapeMismatch(
                    context: "RGBVideo(tensor:) batch", expected: "[1, 3, T, H, W]", found: "\(shape)")
            }
            shape.removeFirst()
        }
        let channelAxis = layout == .channelsFirst ? 0 : 3
        guard shape.count == 4, shape[channelAxis] == 3 else {
            let expected = layout == .channelsFirst ? "[3, T, H, W] or [1, 3, T, H, W]" : "[T, H, W, 3]"
            throw KinemaError.shapeMismatch(context: "RGBVideo(tensor:)", expected: expected, found: "\(tensor.shape)")
        }
        let (t, h, w) = layout == .channelsFirst ? (shape[1], shape[2], shape[3]) : (shape[0], shape[1], shape[2])
        let values = try tensor.floats()
        let plane = h * w
        var frames: [[UInt8]] = []
        frames.reserveCapacity(t)
        for frame in 0..<t {
            var bytes = [UInt8](repeating: 0, count: plane * 3)
            for pixel in 0..<plane {
                for channel in 0..<3 {
                    let index = layout == .channelsFirst
                        ? (channel * t + frame) * plane + pixel
                        : (frame * plane + pixel) * 3 + channel
                    bytes[pixel * 3 + channel] = Self.quantize(values[index], quantization)
                }
            }
            frames.append(bytes)
        }
        try self.init(width: w, height: h, frames: frames)
    }

    @inline(__always)
    static func quantize(_ x: Float, _ mode: PixelQuantization) -> UInt8 {
        var v = x * 0.5 + 0.5
        if !(v >= 0) { v = 0 } // also maps NaN to 0
        if v > 1 { v = 1 }
        let scaled = v * 255
        switch mode {
        case .nearest: return UInt8(scaled.rounded(.toNearestOrEven))
        case .truncate: return UInt8(scaled.rounded(.towardZero))
        }
    }
}
