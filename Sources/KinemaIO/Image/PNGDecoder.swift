import KinemaCore

// PNG decoding (ISO/IEC 15948 / W3C PNG 2nd ed.) for image-to-video inputs: every colour type
// (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), every legal bit depth, the five row filters and
// Adam7 interlacing. Output is 8-bit RGB matching Pillow's `Image.open(p).convert("RGB")`:
//   * alpha (colour types 4/6, tRNS) is DROPPED, not composited — exactly what convert("RGB") does;
//   * 16-bit samples keep their high byte;
//   * grey at 1/2/4 bits is scaled to 0...255 (v · 255 / (2^d − 1), exact for these depths).
// Every chunk's CRC is checked; the decompressed size is fixed by IHDR and enforced while inflating.

enum PNGDecoder {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Largest accepted pixel count (2^28 ≈ 268 M pixels), so sizes below stay far from overflow.
    static let maxPixels = 1 << 28

    struct Header {
        var width = 0, height = 0, depth = 0, colorType = 0, interlaced = false
        var channels: Int {
            switch colorType {
            case 2: return 3
            case 4: return 2
            case 6: return 4
            default: return 1
            }
        }
        var bitsPerPixel: Int { channels * depth }
        /// Filter unit: bytes per complete pixel, at least 1.
        var filterStride: Int { max(1, bitsPerPixel / 8) }
        func rowBytes(_ width: Int) -> Int { (width * bitsPerPixel + 7) / 8 }
    }

    static let adam7: [(x: Int, y: Int, dx: Int, dy: Int)] = [
        (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
    ]

    static func decode(_ data: [UInt8], origin: String, engine: InflateEngine = .automatic) throws -> RGBImage {
        try decodeWithOrientation(data, origin: origin, engine: engine).image
    }

    /// The decoded image (as stored) and the EXIF orientation of its eXIf chunk (1 when absent or unreadable).
    static func decodeWithOrientation(_ data: [UInt8], origin: String, engine: InflateEngine = .automatic) throws -> (image: RGBImage, orientation: Int) {
        func fail(_ offset: Int, _ reason: String) -> KinemaError {
            KinemaError.badFile(path: origin, location: "PNG byte \(offset)", reason: reason)
        }
        guard data.count >= 8, Array(data[0..<8]) == signature else { throw fail(0, "not a PNG signature") }
        var position = 8
        var header: Header?
        var palette: [UInt8] = []
        var compressed: [UInt8] = []
        var sawEnd = false
        var sawData = false
        var orientation: Int?
        while !sawEnd {
            guard position + 12 <= data.count else { throw fail(position, "truncated chunk (no IEND)") }
            let length = data[position..<(position + 4)].reduce(0) { $0 << 8 | Int($1) }
            guard length <= 0x7FFF_FFFF, position + 12 + length <= data.count else {
                throw fail(position, "chunk length \(length) runs past the end of the file (\(data.count) bytes)")
            }
            let typeBytes = Array(data[(position + 4)..<(position + 8)])
            let type = String(decoding: typeBytes, as: UTF8.self)
            let body = (position + 8)..<(position + 8 + length)
            let stored = data[body.upperBound..<(body.upperBound + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let computed = CRC32.update(CRC32.checksum(typeBytes), data[body])
            guard stored == computed else {
                throw fail(position, "CRC mismatch in chunk '\(type)': stored \(stored), computed \(computed)")
            }
            guard typeBytes.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw fail(position, "invalid chunk type bytes \(typeBytes)")
            }
            if header == nil && type != "IHDR" { throw fail(position, "first chunk is '\(type)', expected IHDR") }
            switch type {
            case "IHDR":
                guard header == nil, length == 13 else { throw fail(position, "IHDR repeated or of length \(length)") }
                let b = Array(data[body])
                var h = Header()
                h.width = b[0..<4].reduce(0) { $0 << 8 | Int($1) }
                h.height = b[4..<8].reduce(0) { $0 << 8 | Int($1) }
                h.depth = Int(b[8])
                h.colorType = Int(b[9])
                let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
                guard let depths = allowed[h.colorType], depths.contains(h.depth) else {
                    throw fail(position, "colour type \(h.colorType) with bit depth \(h.depth) is not valid PNG")
                }
                guard b[10] == 0, b[11] == 0, b[12] <= 1 else {
                    throw fail(position, "unknown compression/filter/interlace method \(b[10])/\(b[11])/\(b[12])")
                }
                h.interlaced = b[12] == 1
                guard h.width > 0, h.height > 0, h.width <= 0x7FFF_FFFF, h.height <= 0x7FFF_FFFF,
                      h.width.multipliedReportingOverflow(by: h.height).partialValue <= maxPixels,
                      !h.width.multipliedReportingOverflow(by: h.height).overflow else {
                    throw fail(position, "image size \(h.width)x\(h.height) is empty or above \(maxPixels) pixels")
                }
                header = h
            case "PLTE":
                guard length % 3 == 0, length > 0, length <= 768, palette.isEmpty, !sawData else {
                    throw fail(position, "bad PLTE (length \(length), or repeated / after IDAT)")
                }
                palette = Array(data[body])
            case "IDAT":
                compressed += data[body]
                sawData = true
            case "IEND":
                sawEnd = true
            case "eXIf" where orientation == nil:
                // Like Pillow: a malformed EXIF block is ignored, never fails the decode.
                orientation = EXIFOrientation.parsePNGChunk(data, body) ?? 1
            default:
                // tRNS only carries alpha, which is dropped. Unknown critical chunks (upper-case first
                // letter) cannot be skipped safely.
                if typeBytes[0] & 0x20 == 0 && type != "tRNS" {
                    throw fail(position, "unknown critical chunk '\(type)'")
                }
            }
            position = body.upperBound + 4
        }
        guard let h = header else { throw fail(8, "no IHDR") }
        guard sawData else { throw fail(position, "no IDAT chunk") }
        if h.colorType == 3 && palette.isEmpty { throw fail(position, "palette image without PLTE") }

        // Expected inflated size: one filter byte per row of each (sub)image.
        var passes: [(x: Int, y: Int, dx: Int, dy: Int, w: Int, h: Int)] = []
        if h.interlaced {
            for p in adam7 {
                let w = (h.width - p.x + p.dx - 1) / p.dx, hh = (h.height - p.y + p.dy - 1) / p.dy
                if w > 0 && hh > 0 { passes.append((p.x, p.y, p.dx, p.dy, w, hh)) }
            }
        } else {
            passes = [(0, 0, 1, 1, h.width, h.height)]
        }
        var expected = 0
        for p in passes {
            let (rows, overflow) = (h.rowBytes(p.w) + 1).multipliedReportingOverflow(by: p.h)
            guard !overflow, expected <= Int.max - rows else { throw fail(8, "image too large") }
            expected += rows
        }
        let raw = try Inflate.zlib(compressed, expectedSize: expected, engine: engine, origin: origin)

        var pixels = [UInt8](repeating: 0, count: h.width * h.height * 3)
        var offset = 0
        for p in passes {
            let rowBytes = h.rowBytes(p.w)
            let stride = h.filterStride
            var previous = [UInt8](repeating: 0, count: rowBytes)
            var current = [UInt8](repeating: 0, count: rowBytes)
            for row in 0..<p.h {
                let filter = raw[offset]
                for i in 0..<rowBytes { current[i] = raw[offset + 1 + i] }
                try unfilter(filter, &current, previous, stride: stride, fail: { fail(8, "IDAT row \(row): \($0)") })
                expand(current, header: h, palette: palette, count: p.w) { column, r, g, b in
                    let index = ((p.y + row * p.dy) * h.width + p.x + column * p.dx) * 3
                    pixels[index] = r
                    pixels[index + 1] = g
                    pixels[index + 2] = b
                }
                swap(&previous, &current)
                offset += rowBytes + 1
            }
        }
        return (RGBImage(width: h.width, height: h.height, pixels: pixels), orientation ?? 1)
    }

    /// Reverses one row's filter in place (§9.2). `previous` is the unfiltered row above (zeros first).
    static func unfilter(_ filter: UInt8, _ row: inout [UInt8], _ previous: [UInt8], stride: Int,
                         fail: (String) -> KinemaError) throws {
        let n = row.count
        switch filter {
        case 0: break
        case 1:
            if stride < n { for i in stride..<n { row[i] &+= row[i - stride] } }
        case 2:
            for i in 0..<n { row[i] &+= previous[i] }
        case 3:
            for i in 0..<n {
                let left = i >= stride ? Int(row[i - stride]) : 0
                row[i] &+= UInt8((left + Int(previous[i])) >> 1)
            }
        case 4:
            for i in 0..<n {
                let a = i >= stride ? Int(row[i - stride]) : 0
                let b = Int(previous[i])
                let c = i >= stride ? Int(previous[i - stride]) : 0
                let p = a + b - c
                let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                let predictor = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c)
                row[i] &+= UInt8(predictor)
            }
        default:
            throw fail("unknown filter type \(filter)")
        }
    }

    /// Converts one unfiltered row of `count` pixels to RGB. Out-of-range palette indices give black
    /// (libpng treats them as an error; Pillow as black — we follow Pillow rather than fail a decode).
    static func expand(_ row: [UInt8], header h: Header, palette: [UInt8], count: Int,
                       _ put: (Int, UInt8, UInt8, UInt8) -> Void) {
        let channels = h.channels
        switch h.depth {
        case 8, 16:
            let bytes = h.depth / 8
            for x in 0..<count {
                let base = x * channels * bytes
                // High byte of each sample (for 8-bit, the sample itself).
                func sample(_ c: Int) -> UInt8 { row[base + c * bytes] }
                switch h.colorType {
                case 0, 4: let v = sample(0); put(x, v, v, v)
                case 3:
                    let index = Int(sample(0)) * 3
                    if index + 2 < palette.count { put(x, palette[index], palette[index + 1], palette[index + 2]) } else { put(x, 0, 0, 0) }
                default: put(x, sample(0), sample(1), sample(2))
                }
            }
        default:
            let depth = h.depth
            let mask = (1 << depth) - 1
            let scale = 255 / mask
            for x in 0..<count {
                let bit = x * depth
                let v = (Int(row[bit >> 3]) >> (8 - depth - (bit & 7))) & mask
                if h.colorType == 3 {
                    let index = v * 3
                    if index + 2 < palette.count { put(x, palette[index], palette[index + 1], palette[index + 2]) } else { put(x, 0, 0, 0) }
                } else {
                    let g = UInt8(v * scale)
                    put(x, g, g, g)
                }
            }
        }
    }
}
