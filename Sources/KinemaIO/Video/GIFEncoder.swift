import Foundation
import KinemaCore

/// Dithering applied when mapping pixels to a GIF frame's palette.
public enum GIFDithering: Sendable, Hashable {
    /// Nearest palette colour: exact for frames with ≤ 256 colours, banding on smooth gradients.
    case none
    /// 4×4 Bayer ordered dither of ±half a palette step: stable from frame to frame (no crawling noise,
    /// unlike error diffusion), which suits video.
    case ordered
}

// Animated GIF89a writer: per-frame adaptive palette (median cut over a 5-bit-per-channel histogram,
// up to 256 colours, stored as a local colour table), optional ordered dither, and GIF's variable-width
// LZW (min code size 8, codes up to 12 bits, a clear code when the table fills). Frames loop forever via
// the NETSCAPE2.0 extension; delays are in centiseconds, spread so that their running sum tracks
// frame/fps (16 fps → 6, 6, 6, 7, … cs).

public enum GIFEncoder {
    public static func encode(_ video: RGBVideo, fps: Int, dithering: GIFDithering = .ordered) throws -> [UInt8] {
        guard fps >= 1, fps <= 100 else { throw KinemaError.invalidArgument("GIF frame rate must be 1...100, got \(fps)") }
        guard video.width <= 65535, video.height <= 65535 else {
            throw KinemaError.invalidArgument("GIF size must be ≤ 65535 on each side, got \(video.width)×\(video.height)")
        }
        var out = Array("GIF89a".utf8)
        // Logical screen descriptor: size, no global colour table, background 0, aspect 0.
        out += le16(video.width) + le16(video.height) + [0, 0, 0]
        // NETSCAPE2.0 application extension: loop count 0 = forever.
        out += [0x21, 0xFF, 0x0B] + Array("NETSCAPE2.0".utf8) + [0x03, 0x01, 0x00, 0x00, 0x00]
        var elapsed = 0 // centiseconds written so far
        for (index, frame) in video.frames.enumerated() {
            let target = ((index + 1) * 100 + fps / 2) / fps
            let delay = max(1, target - elapsed)
            elapsed += delay
            // Graphic control extension: disposal 1 (leave in place), no transparency.
            out += [0x21, 0xF9, 0x04, 0x04] + le16(delay) + [0x00, 0x00]
            let palette = GIFPalette.medianCut(frame)
            let indices = palette.map(frame, width: video.width, dithering: dithering)
            // Image descriptor with a local colour table of 2^(n+1) entries (always 256 here).
            out += [0x2C] + le16(0) + le16(0) + le16(video.width) + le16(video.height) + [0x87]
            var table = [UInt8](repeating: 0, count: 256 * 3)
            for (slot, colour) in palette.colours.enumerated() {
                table[slot * 3] = colour.0
                table[slot * 3 + 1] = colour.1
                table[slot * 3 + 2] = colour.2
            }
            out += table
            out.append(8) // LZW minimum code size
            let compressed = GIFLZW.encode(indices, minimumCodeSize: 8)
            var start = 0
            while start < compressed.count {
                let length = min(255, compressed.count - start)
                out.append(UInt8(length))
                out += compressed[start..<(start + length)]
                start += length
            }
            out.append(0) // block terminator
        }
        out.append(0x3B) // trailer
        return out
    }

    static func le16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF)] }
}

/// A frame's palette and the pixel → index mapping.
struct GIFPalette {
    var colours: [(UInt8, UInt8, UInt8)]
    /// True when every colour of the frame is in the palette (≤ 256 colours): no dithering is needed.
    var isExact = false

    /// Median cut: start from one box holding the frame's 15-bit colour histogram, repeatedly split the
    /// box with the largest (pixel-weighted) range along its widest channel at the weighted median, then
    /// take each box's weighted mean colour. Exact colours are kept when the frame has ≤ 256 of them.
    static func medianCut(_ rgb: [UInt8]) -> GIFPalette {
        var exact: [UInt32: Int] = [:]
        var overflow = false
        for pixel in stride(from: 0, to: rgb.count, by: 3) where !overflow {
            let key = UInt32(rgb[pixel]) << 16 | UInt32(rgb[pixel + 1]) << 8 | UInt32(rgb[pixel + 2])
            exact[key, default: 0] += 1
            if exact.count > 256 { overflow = true }
        }
        if !overflow {
            let colours = exact.keys.sorted().map { (UInt8($0 >> 16), UInt8(($0 >> 8) & 0xFF), UInt8($0 & 0xFF)) }
            return GIFPalette(colours: colours, isExact: true)
        }

        // Histogram over 5-bit channels, with per-bin colour sums for accurate means.
        struct Bin { var count = 0; var r = 0; var g = 0; var b = 0 }
        var bins = [Bin](repeating: Bin(), count: 1 << 15)
        for pixel in stride(from: 0, to: rgb.count, by: 3) {
            let (r, g, b) = (Int(rgb[pixel]), Int(rgb[pixel + 1]), Int(rgb[pixel + 2]))
            let key = (r >> 3) << 10 | (g >> 3) << 5 | (b >> 3)
            bins[key].count += 1
            bins[key].r += r
            bins[key].g += g
            bins[key].b += b
        }
        var boxes: [[Int]] = [bins.indices.filter { bins[$0].count > 0 }]
        func channel(_ key: Int, _ axis: Int) -> Int { (key >> (10 - 5 * axis)) & 31 }
        func extent(_ box: [Int]) -> (range: Int, axis: Int) {
            var best = (range: -1, axis: 0)
            for axis in 0..<3 {
                var low = 31
                var high = 0
                for key in box {
                    let value = channel(key, axis)
                    low = min(low, value)
                    high = max(high, value)
                }
                if high - low > best.range { best = (high - low, axis) }
            }
            return best
        }
        while boxes.count < 256 {
            // The splittable box with the largest range × weight.
            var choice = -1
            var score = -1
            for (index, box) in boxes.enumerated() where box.count > 1 {
                let weight = box.reduce(0) { $0 + bins[$1].count }
                let value = extent(box).range * weight
                if value > score {
                    score = value
                    choice = index
                }
            }
            guard choice >= 0 else { break }
            let axis = extent(boxes[choice]).axis
            let sorted = boxes[choice].sorted { channel($0, axis) < channel($1, axis) }
            let total = sorted.reduce(0) { $0 + bins[$1].count }
            var running = 0
            var cut = 1
            for (position, key) in sorted.enumerated() {
                running += bins[key].count
                if running * 2 >= total {
                    cut = max(1, min(sorted.count - 1, position + 1))
                    break
                }
            }
            boxes[choice] = Array(sorted[..<cut])
            boxes.append(Array(sorted[cut...]))
        }
        let colours = boxes.map { box -> (UInt8, UInt8, UInt8) in
            var (count, r, g, b) = (0, 0, 0, 0)
            for key in box {
                count += bins[key].count
                r += bins[key].r
                g += bins[key].g
                b += bins[key].b
            }
            let n = max(count, 1)
            return (UInt8((r + n / 2) / n), UInt8((g + n / 2) / n), UInt8((b + n / 2) / n))
        }
        return GIFPalette(colours: colours)
    }

    /// Bayer 4×4 thresholds, centred: (m + 0.5)/16 − 0.5 ∈ (−0.5, 0.5).
    static let bayer: [Float] = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5].map { (Float($0) + 0.5) / 16 - 0.5 }

    /// Fraction of the palette spacing used as dither amplitude.
    static let ditherStrength: Float = 1

    /// Median over palette entries of the Euclidean RGB distance to the nearest other entry.
    func typicalSpacing() -> Float {
        guard colours.count > 1 else { return 0 }
        var distances: [Float] = []
        distances.reserveCapacity(colours.count)
        for (i, a) in colours.enumerated() {
            var best = Int.max
            for (j, b) in colours.enumerated() where j != i {
                let (dr, dg, db) = (Int(a.0) - Int(b.0), Int(a.1) - Int(b.1), Int(a.2) - Int(b.2))
                best = min(best, dr * dr + dg * dg + db * db)
            }
            distances.append(Float(best).squareRoot())
        }
        distances.sort()
        return distances[distances.count / 2]
    }

    /// Nearest palette entry (squared RGB distance) for every pixel; dithered pixels are offset first.
    func map(_ rgb: [UInt8], width: Int, dithering: GIFDithering) -> [UInt8] {
        let pixelCount = rgb.count / 3
        var out = [UInt8](repeating: 0, count: pixelCount)
        // Memoised nearest-colour search keyed by the exact 24-bit colour.
        var cache: [UInt32: UInt8] = [:]
        func nearest(_ r: Int, _ g: Int, _ b: Int) -> UInt8 {
            let key = UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
            if let hit = cache[key] { return hit }
            var best = 0
            var bestDistance = Int.max
            for (index, colour) in colours.enumerated() {
                let dr = r - Int(colour.0)
                let dg = g - Int(colour.1)
                let db = b - Int(colour.2)
                let distance = dr * dr + dg * dg + db * db
                if distance < bestDistance {
                    bestDistance = distance
                    best = index
                }
            }
            cache[key] = UInt8(best)
            return UInt8(best)
        }
        // Dither amplitude: the palette's typical spacing (median distance from a colour to its nearest
        // neighbour), so the offsets reach the next palette entry but no further. A fixed amplitude is
        // wrong for an adaptive palette: dense clusters would get noise far coarser than their spacing.
        let amplitude: Float = isExact ? 0 : typicalSpacing() * Self.ditherStrength
        for pixel in 0..<pixelCount {
            var (r, g, b) = (Int(rgb[pixel * 3]), Int(rgb[pixel * 3 + 1]), Int(rgb[pixel * 3 + 2]))
            if dithering == .ordered, amplitude > 0 {
                let (x, y) = (pixel % width, pixel / width)
                let offset = Int((Self.bayer[(y & 3) * 4 + (x & 3)] * amplitude).rounded())
                r = min(255, max(0, r + offset))
                g = min(255, max(0, g + offset))
                b = min(255, max(0, b + offset))
            }
            out[pixel] = nearest(r, g, b)
        }
        return out
    }
}

/// GIF's LZW (GIF89a spec appendix F): codes are written least-significant-bit first; the code width
/// starts at minimumCodeSize + 1 and grows when the next code to be assigned needs another bit; at 4096
/// entries a clear code resets the table.
enum GIFLZW {
    static func encode(_ indices: [UInt8], minimumCodeSize: Int) -> [UInt8] {
        let clear = 1 << minimumCodeSize
        let end = clear + 1
        var out: [UInt8] = []
        out.reserveCapacity(indices.count)
        var bitBuffer: UInt32 = 0
        var bitCount = 0
        var width = minimumCodeSize + 1
        func emit(_ code: Int) {
            bitBuffer |= UInt32(code) << UInt32(bitCount)
            bitCount += width
            while bitCount >= 8 {
                out.append(UInt8(bitBuffer & 0xFF))
                bitBuffer >>= 8
                bitCount -= 8
            }
        }
        // Open-addressing table from (prefix code, next byte) to code; 5003 is the prime classic
        // compress(1)/GIF encoders use for a 4096-entry dictionary (load factor ≤ 0.82).
        let tableSize = 5003
        var keys = [Int32](repeating: -1, count: tableSize)
        var values = [Int16](repeating: 0, count: tableSize)
        var nextCode = end + 1

        emit(clear)
        guard var prefix = indices.first.map(Int.init) else {
            emit(end)
            if bitCount > 0 { out.append(UInt8(bitBuffer & 0xFF)) }
            return out
        }
        for byte in indices.dropFirst() {
            let key = Int32(prefix << 8 | Int(byte))
            var slot = Int(key) % tableSize
            var found = -1
            while keys[slot] != -1 {
                if keys[slot] == key {
                    found = Int(values[slot])
                    break
                }
                slot = (slot + 1) % tableSize
            }
            if found >= 0 {
                prefix = found
                continue
            }
            emit(prefix)
            if nextCode < 4096 {
                keys[slot] = key
                values[slot] = Int16(nextCode)
                // The decoder adds this entry after reading the *next* code, so the width grows once
                // the code just assigned no longer fits.
                if nextCode == (1 << width) && width < 12 { width += 1 }
                nextCode += 1
            } else {
                emit(clear)
                for index in 0..<tableSize { keys[index] = -1 }
                nextCode = end + 1
                width = minimumCodeSize + 1
            }
            prefix = Int(byte)
        }
        emit(prefix)
        emit(end)
        if bitCount > 0 { out.append(UInt8(bitBuffer & 0xFF)) }
        return out
    }
}
