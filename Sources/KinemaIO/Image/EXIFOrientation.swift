import KinemaCore

// EXIF orientation (TIFF tag 0x0112 in a JPEG APP1 "Exif" segment) and the eight transposes it names,
// matching Pillow's `ImageOps.exif_transpose`, which diffusers' `load_image` applies before
// `convert("RGB")`. (The original Wan scripts use `Image.open(...).convert("RGB")` without it: hence
// the choice is an explicit `ImageOrientation` mode.)

/// Whether a decoder applies the file's EXIF orientation.
public enum ImageOrientation: Sendable, Equatable {
    /// Rotate/flip as the EXIF orientation tag says (diffusers `load_image`; what viewers show).
    case applyEXIF
    /// Pixels as stored in the file (official Wan's `Image.open(p).convert("RGB")`).
    case asStored
}

enum EXIFOrientation {
    /// The orientation value (1...8) from an APP1 segment body, or nil when the body is not EXIF or is
    /// malformed — a broken EXIF block never fails a decode (Pillow likewise ignores it).
    static func parse(_ data: [UInt8], _ range: Range<Int>) -> Int? {
        let body = Array(data[range])
        guard body.count >= 14, Array(body[0..<6]) == [0x45, 0x78, 0x69, 0x66, 0, 0] else { return nil }
        return parseTIFF(body, at: 6)
    }

    /// The orientation from a PNG eXIf chunk body: the TIFF structure itself, with no "Exif" prefix.
    static func parsePNGChunk(_ data: [UInt8], _ range: Range<Int>) -> Int? {
        let body = Array(data[range])
        guard body.count >= 8 else { return nil }
        return parseTIFF(body, at: 0)
    }

    /// Tag 0x0112 of IFD0 of the TIFF structure starting at `tiff` in `body`.
    private static func parseTIFF(_ body: [UInt8], at tiff: Int) -> Int? {
        let little: Bool
        switch (body[tiff], body[tiff + 1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= body.count else { return nil }
            return little ? Int(body[at]) | Int(body[at + 1]) << 8 : Int(body[at]) << 8 | Int(body[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(tiff + 2) == 42, let ifd = u32(tiff + 4), ifd <= body.count,
              let entries = u16(tiff + ifd) else { return nil }
        for index in 0..<entries {
            let entry = tiff + ifd + 2 + index * 12
            guard let tag = u16(entry), let type = u16(entry + 2) else { return nil }
            if tag == 0x0112 {
                guard type == 3, let value = u16(entry + 8), (1...8).contains(value) else { return nil }
                return value
            }
        }
        return nil
    }

    /// `image` transposed as EXIF orientation `value` prescribes (1 or unknown: unchanged).
    static func apply(_ value: Int, to image: RGBImage) -> RGBImage {
        guard (2...8).contains(value) else { return image }
        let w = image.width, h = image.height
        let swaps = value >= 5
        let outW = swaps ? h : w, outH = swaps ? w : h
        var pixels = [UInt8](repeating: 0, count: image.pixels.count)
        for y in 0..<outH {
            for x in 0..<outW {
                // Source pixel for output (x, y); PIL's ROTATE_90/270 are counter-clockwise.
                let (sx, sy): (Int, Int)
                switch value {
                case 2: (sx, sy) = (w - 1 - x, y)          // FLIP_LEFT_RIGHT
                case 3: (sx, sy) = (w - 1 - x, h - 1 - y)  // ROTATE_180
                case 4: (sx, sy) = (x, h - 1 - y)          // FLIP_TOP_BOTTOM
                case 5: (sx, sy) = (y, x)                  // TRANSPOSE
                case 6: (sx, sy) = (y, h - 1 - x)          // ROTATE_270
                case 7: (sx, sy) = (w - 1 - y, h - 1 - x)  // TRANSVERSE
                default: (sx, sy) = (w - 1 - y, x)         // 8: ROTATE_90
                }
                let from = (sy * w + sx) * 3, to = (y * outW + x) * 3
                pixels[to] = image.pixels[from]
                pixels[to + 1] = image.pixels[from + 1]
                pixels[to + 2] = image.pixels[from + 2]
            }
        }
        return RGBImage(width: outW, height: outH, pixels: pixels)
    }
}
