import Foundation
import KinemaCore

// Decoded still images for image-to-video conditioning. The decoders (PNGDecoder, JPEGDecoder) treat
// their input as untrusted: every length is bounds-checked, work is bounded by the input size and
// the declared pixel count, and failures are `KinemaError.badFile` naming the file and offset.

/// An 8-bit RGB image, row-major, 3 bytes per pixel (no alpha: decoders drop it).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` bytes, R G B per pixel, rows top to bottom.
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// [3, H, W] f32 in [-1, 1]: x / 127.5 − 1, as Wan's `TF.to_tensor(img).sub_(0.5).div_(0.5)`.
    /// (to_tensor divides by 255 first; (x/255 − 0.5)/0.5 and x/127.5 − 1 agree to f32 rounding.)
    public func tensor() throws -> Tensor {
        let plane = width * height
        var values = [Float](repeating: 0, count: plane * 3)
        for index in 0..<plane {
            for channel in 0..<3 {
                values[channel * plane + index] = (Float(pixels[index * 3 + channel]) / 255 - 0.5) / 0.5
            }
        }
        return try Tensor(values, shape: [3, height, width], dtype: .f32)
    }
}

/// Image file decoding, dispatched on the magic bytes (not the file extension).
public enum ImageDecoder {
    public enum Format: Sendable, Equatable {
        case png, jpeg
    }

    /// The format named by the leading bytes, or nil.
    public static func format(of data: [UInt8]) -> Format? {
        if data.count >= 8 && Array(data[0..<8]) == PNGDecoder.signature { return .png }
        if data.count >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF { return .jpeg }
        return nil
    }

    public static func decode(path: String, orientation: ImageOrientation = .applyEXIF) throws -> RGBImage {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KinemaError.io(path: path, reason: "cannot read image: \(error.localizedDescription)")
        }
        return try decode(data: [UInt8](data), origin: path, orientation: orientation)
    }

    /// Decodes PNG or JPEG bytes; `origin` names the source in errors. The default orientation mode
    /// matches diffusers' `load_image` (EXIF applied: a JPEG's APP1 segment or a PNG's eXIf chunk).
    public static func decode(data: [UInt8], origin: String, orientation: ImageOrientation = .applyEXIF) throws -> RGBImage {
        switch format(of: data) {
        case .png:
            let (image, exif) = try PNGDecoder.decodeWithOrientation(data, origin: origin)
            return orientation == .applyEXIF ? EXIFOrientation.apply(exif, to: image) : image
        case .jpeg:
            let (image, exif) = try JPEGDecoder.decode(data, origin: origin)
            return orientation == .applyEXIF ? EXIFOrientation.apply(exif, to: image) : image
        case nil:
            let head = data.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw KinemaError.badFile(path: origin, location: "byte 0",
                                      reason: "not a PNG or JPEG image (starts with \(head.isEmpty ? "nothing" : head))")
        }
    }
}
