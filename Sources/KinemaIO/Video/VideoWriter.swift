import Foundation
import KinemaCore

/// Output container, chosen from the file extension unless given explicitly.
public enum VideoFormat: String, Sendable, CaseIterable {
    /// `out.png` → a numbered sequence `out_00000.png`, `out_00001.png`, … beside it (one file per frame,
    /// also for a single frame, so the names never depend on the frame count).
    case pngSequence = "png"
    /// `out.apng` → one animated PNG (APNG); the file is a valid PNG showing frame 0 to non-APNG viewers.
    case apng
    /// `out.gif` → animated GIF89a, adaptive 256-colour palette per frame, looping.
    case gif
    /// `out.y4m` → YUV4MPEG2, 4:2:0, limited range, BT.601 unless the options say BT.709.
    case y4m
    /// `out.mp4` → H.264 via an external ffmpeg.
    case mp4

    /// The format a path's extension names (case-insensitive).
    public static func from(path: String) throws -> VideoFormat {
        let ext = (path as NSString).pathExtension.lowercased()
        guard let format = VideoFormat(rawValue: ext) else {
            throw KinemaError.invalidArgument(
                "cannot tell the video format of '\(path)' from its extension; use one of "
                    + allCases.map { ".\($0.rawValue)" }.joined(separator: ", "))
        }
        return format
    }
}

/// Options shared by the writers; defaults suit Wan output (16 fps).
public struct VideoWriteOptions: Sendable {
    /// Frames per second; Wan2.1 is trained on 16 fps clips (`sample_fps = 16`).
    public var fps: Int = 16
    /// Overrides the extension-derived format.
    public var format: VideoFormat?
    /// PNG / APNG compression.
    public var deflate: DeflateMode = .zlib(level: 6)
    public var gifDithering: GIFDithering = .ordered
    public var y4mMatrix: YCbCrMatrix = .bt601
    /// x264 constant rate factor for .mp4 (0 lossless … 51; 18 is visually near-lossless).
    public var crf: Int = 18
    /// ffmpeg executable; nil searches PATH.
    public var ffmpegPath: String?

    public init() {}
}

public enum VideoWriter {
    /// Writes `video` to `path` and returns the files written (several for a PNG sequence).
    @discardableResult
    public static func write(_ video: RGBVideo, to path: String, options: VideoWriteOptions = VideoWriteOptions()) throws -> [String] {
        let format = try options.format ?? VideoFormat.from(path: path)
        switch format {
        case .pngSequence:
            let paths = sequencePaths(for: path, count: video.frameCount)
            for (frame, framePath) in zip(video.frames, paths) {
                try store(try PNGEncoder.encode(rgb: frame, width: video.width, height: video.height, deflate: options.deflate), framePath)
            }
            return paths
        case .apng:
            try store(try PNGEncoder.encodeAnimated(video, fps: options.fps, deflate: options.deflate), path)
        case .gif:
            try store(try GIFEncoder.encode(video, fps: options.fps, dithering: options.gifDithering), path)
        case .y4m:
            try store(try Y4MWriter.encode(video, fps: options.fps, matrix: options.y4mMatrix), path)
        case .mp4:
            try FFmpegWriter.write(video, to: path, fps: options.fps, crf: options.crf, ffmpeg: options.ffmpegPath)
        }
        return [path]
    }

    /// Converts a [-1, 1] float video tensor (see `RGBVideo(tensor:layout:quantization:)`) and writes it.
    @discardableResult
    public static func write(
        _ tensor: Tensor, layout: VideoTensorLayout, to path: String, options: VideoWriteOptions = VideoWriteOptions(),
        quantization: PixelQuantization = .nearest
    ) throws -> [String] {
        try write(RGBVideo(tensor: tensor, layout: layout, quantization: quantization), to: path, options: options)
    }

    /// `dir/name.png` → `dir/name_00000.png` … (five digits; more if the count needs them).
    public static func sequencePaths(for path: String, count: Int) -> [String] {
        let stem = (path as NSString).deletingPathExtension
        let digits = max(5, String(max(count - 1, 0)).count)
        return (0..<count).map { index in
            let number = String(index)
            return "\(stem)_\(String(repeating: "0", count: digits - number.count))\(number).png"
        }
    }

    static func store(_ bytes: [UInt8], _ path: String) throws {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw KinemaError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
