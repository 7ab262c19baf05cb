import Foundation
import KinemaCore

// PNG (ISO/IEC 15948, W3C PNG 3rd ed.) and APNG writers for 8-bit RGB frames.
//
// Layout: signature, IHDR (8-bit truecolour, no interlace), [acTL] , per frame [fcTL] IDAT|fdAT, IEND.
// Each scanline gets the filter (None/Sub/Up/Average/Paeth) with the smallest sum of |signed residuals|,
// the heuristic the PNG spec recommends for truecolour images. Every chunk carries a CRC-32 over its
// type and data.

public enum PNGEncoder {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Colour type 2 = truecolour (RGB), bit depth 8.
    static let colourTypeRGB: UInt8 = 2

    /// One RGB frame as a complete PNG file.
    public static func encode(rgb: [UInt8], width: Int, height: Int, deflate: DeflateMode = .zlib(level: 6)) throws -> [UInt8] {
        try checkFrame(rgb, width: width, height: height)
        var out = signature
        appendChunk("IHDR", header(width: width, height: height), to: &out)
        appendChunk("IDAT", try ZlibStream.encode(filteredScanlines(rgb: rgb, width: width, height: height), mode: deflate), to: &out)
        appendChunk("IEND", [], to: &out)
        return out
    }

    /// An animated PNG: every frame full-size at (0, 0), dispose NONE, blend SOURCE, delay 1/fps s,
    /// looping forever. Viewers without APNG support show the first frame (it is also the IDAT image).
    public static func encodeAnimated(_ video: RGBVideo, fps: Int, deflate: DeflateMode = .zlib(level: 6)) throws -> [UInt8] {
        guard fps >= 1, fps <= 65535 else { throw KinemaError.invalidArgument("APNG frame rate must be 1...65535, got \(fps)") }
        var out = signature
        appendChunk("IHDR", header(width: video.width, height: video.height), to: &out)
        // acTL: num_frames, num_plays (0 = infinite).
        appendChunk("acTL", be32(UInt32(video.frameCount)) + be32(0), to: &out)
        var sequence: UInt32 = 0
        for (index, frame) in video.frames.enumerated() {
            var control = be32(sequence) + be32(UInt32(video.width)) + be32(UInt32(video.height))
            control += be32(0) + be32(0) // x, y offset
            control += be16(1) + be16(UInt16(fps)) // delay = 1/fps s
            control += [0, 0] // dispose_op NONE, blend_op SOURCE
            appendChunk("fcTL", control, to: &out)
            sequence += 1
            let data = try ZlibStream.encode(filteredScanlines(rgb: frame, width: video.width, height: video.height), mode: deflate)
            if index == 0 {
                appendChunk("IDAT", data, to: &out)
            } else {
                appendChunk("fdAT", be32(sequence) + data, to: &out)
                sequence += 1
            }
        }
        appendChunk("IEND", [], to: &out)
        return out
    }

    static func checkFrame(_ rgb: [UInt8], width: Int, height: Int) throws {
        guard width > 0, height > 0, width <= Int(Int32.max) / 3, height <= Int(Int32.max) else {
            throw KinemaError.invalidArgument("PNG size must be positive, got \(width)×\(height)")
        }
        guard rgb.count == width * height * 3 else {
            throw KinemaError.shapeMismatch(context: "PNG frame", expected: "\(width * height * 3) bytes", found: "\(rgb.count) bytes")
        }
    }

    static func header(width: Int, height: Int) -> [UInt8] {
        // width, height, bit depth 8, colour type, compression 0, filter method 0, interlace 0.
        be32(UInt32(width)) + be32(UInt32(height)) + [8, colourTypeRGB, 0, 0, 0]
    }

    static func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }

    static func appendChunk(_ type: String, _ data: [UInt8], to out: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        out += be32(UInt32(data.count))
        out += typeBytes
        out += data
        out += be32(CRC32.update(CRC32.checksum(typeBytes), data))
    }

    /// The IDAT payload before compression: each row is a filter-type byte followed by the filtered row.
    /// Filters work on bytes with bpp = 3 (the left neighbour is the same channel of the previous pixel).
    /// `only` restricts the choice to one filter type (tests exercise each filter through it).
    static func filteredScanlines(rgb: [UInt8], width: Int, height: Int, only: Int? = nil) -> [UInt8] {
        let stride = width * 3
        var out = [UInt8](repeating: 0, count: (stride + 1) * height)
        var candidate = [[UInt8]](repeating: [UInt8](repeating: 0, count: stride), count: 5)
        rgb.withUnsafeBufferPointer { pixels in
            for row in 0..<height {
                let current = row * stride
                let above = (row - 1) * stride
                var bestFilter = 0
                var bestCost = Int.max
                for filter in only.map({ $0...$0 }) ?? 0...4 {
                    var cost = 0
                    for index in 0..<stride {
                        let x = Int(pixels[current + index])
                        let a = index >= 3 ? Int(pixels[current + index - 3]) : 0
                        let b = row > 0 ? Int(pixels[above + index]) : 0
                        let c = (row > 0 && index >= 3) ? Int(pixels[above + index - 3]) : 0
                        let predictor: Int
                        switch filter {
                        case 0: predictor = 0
                        case 1: predictor = a
                        case 2: predictor = b
                        case 3: predictor = (a + b) >> 1
                        default: predictor = paeth(a, b, c)
                        }
                        let residual = UInt8(truncatingIfNeeded: x - predictor)
                        candidate[filter][index] = residual
                        cost += abs(Int(Int8(bitPattern: residual)))
                    }
                    if cost < bestCost {
                        bestCost = cost
                        bestFilter = filter
                    }
                }
                let start = row * (stride + 1)
                out[start] = UInt8(bestFilter)
                for index in 0..<stride { out[start + 1 + index] = candidate[bestFilter][index] }
            }
        }
        return out
    }

    /// The Paeth predictor (PNG spec §9.4): the neighbour closest to a + b − c, ties to a, then b.
    @inline(__always)
    static func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
        let p = a + b - c
        let (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }
}
