import Foundation
import KinemaCore

// JPEG decoding (ITU-T T.81: baseline/extended SOF0/SOF1 and progressive SOF2, 8-bit, Huffman) for
// image-to-video inputs, aiming at Pillow/libjpeg-turbo's output within a few levels:
//   * float separable IDCT (libjpeg's default is the "islow" integer IDCT; the two differ by ≤ 1–2);
//   * "fancy" triangle upsampling for 2×1 and 2×2 chroma (libjpeg's default, what Pillow uses), plain
//     replication for any other sampling factors;
//   * JFIF YCbCr → RGB (BT.601 full range), grey for one component.
// Scans are entropy-decoded in JPEGScan.swift. Not supported (typed `.unsupported` error): arithmetic coding, 12-bit,
// lossless, CMYK/4-component. EXIF orientation is parsed here and applied by ImageDecoder (EXIFOrientation.swift).
//
// Work bound: every Huffman decode consumes at least one bit of entropy-coded data and the decoder
// stops at the first marker or the end of the data inside a scan, so corrupt input cannot loop.

enum JPEGDecoder {
    struct Component {
        var id = 0, h = 1, v = 1, table = 0
        var dcTable = 0, acTable = 0
        /// Blocks per line / column allocated (a whole number of MCUs).
        var blocksWide = 0, blocksHigh = 0
        /// Real sample dimensions of this component: ceil(W · h / hmax) × ceil(H · v / vmax).
        var width = 0, height = 0
        /// Dequantized-later coefficients, 64 per block, natural (not zigzag) order.
        var coefficients: [Int32] = []
        var prediction: Int32 = 0
    }

    struct Huffman {
        // T.81 Annex C/F: canonical codes as (maxcode, valptr, mincode) per length, values in order.
        var maxCode = [Int](repeating: -1, count: 18)
        var valueOffset = [Int](repeating: 0, count: 17)
        var values: [UInt8] = []
        var defined = false
    }

    static let zigzag: [Int] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
        28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
        54, 47, 55, 62, 63,
    ]

    /// Entropy-coded segment reader: removes FF00 stuffing, stops at markers.
    struct BitReader {
        let data: [UInt8]
        var position: Int
        var buffer: UInt32 = 0
        var count = 0
        /// Marker found inside the data (position points at its 0xFF), or nil.
        var hitMarker = false

        mutating func bit() -> Int? {
            if count == 0 {
                var byte: UInt8 = 0
                while true {
                    guard !hitMarker, position < data.count else { return nil }
                    byte = data[position]
                    if byte != 0xFF { position += 1; break }
                    guard position + 1 < data.count else { return nil }
                    let next = data[position + 1]
                    if next == 0x00 { position += 2; break }
                    if next == 0xFF { position += 1; continue }  // fill byte
                    hitMarker = true
                    return nil
                }
                buffer = UInt32(byte)
                count = 8
            }
            count -= 1
            return Int((buffer >> UInt32(count)) & 1)
        }

        mutating func bits(_ n: Int) -> Int? {
            var value = 0
            for _ in 0..<n {
                guard let b = bit() else { return nil }
                value = value << 1 | b
            }
            return value
        }

        mutating func decode(_ table: Huffman) -> Int? {
            var code = 0
            for length in 1...16 {
                guard let b = bit() else { return nil }
                code = code << 1 | b
                if code <= table.maxCode[length] {
                    let index = table.valueOffset[length] + code
                    return index >= 0 && index < table.values.count ? Int(table.values[index]) : nil
                }
            }
            return nil
        }

        /// Sign-extends an n-bit magnitude category value (T.81 F.2.2.1 EXTEND).
        mutating func receiveExtend(_ n: Int) -> Int? {
            if n == 0 { return 0 }
            guard n <= 16, let value = bits(n) else { return nil }
            return value < (1 << (n - 1)) ? value - (1 << n) + 1 : value
        }
    }

    /// The decoded image (as stored) and its EXIF orientation (1 when absent).
    static func decode(_ data: [UInt8], origin: String) throws -> (image: RGBImage, orientation: Int) {
        func fail(_ offset: Int, _ reason: String) -> KinemaError {
            KinemaError.badFile(path: origin, location: "JPEG byte \(offset)", reason: reason)
        }
        var position = 2
        var quant = [[Int32]](repeating: [], count: 4)
        var dc = [Huffman](repeating: Huffman(), count: 4)
        var ac = [Huffman](repeating: Huffman(), count: 4)
        var components: [Component] = []
        var width = 0, height = 0, hMax = 1, vMax = 1, mcusWide = 0, mcusHigh = 0
        var restartInterval = 0
        var frameSeen = false, scanSeen = false
        var coding = Coding.baseline
        var scans = 0
        var orientation: Int?

        func u16(_ at: Int) throws -> Int {
            guard at + 2 <= data.count else { throw fail(at, "truncated") }
            return Int(data[at]) << 8 | Int(data[at + 1])
        }

        markers: while true {
            // Skip fill bytes before a marker; anything else between segments is corruption.
            guard position + 1 < data.count else { throw fail(position, "no EOI marker") }
            guard data[position] == 0xFF else { throw fail(position, "expected a marker, found 0x\(String(data[position], radix: 16))") }
            var marker = data[position + 1]
            while marker == 0xFF {
                position += 1
                guard position + 1 < data.count else { throw fail(position, "no EOI marker") }
                marker = data[position + 1]
            }
            position += 2
            if marker == 0xD9 { break markers }
            if (0xD0...0xD7).contains(marker) || marker == 0x01 { continue }
            let length = try u16(position)
            guard length >= 2, position + length <= data.count else {
                throw fail(position, "segment 0xFF\(String(marker, radix: 16)) length \(length) runs past the end")
            }
            let body = (position + 2)..<(position + length)
            switch marker {
            case 0xDB:  // DQT
                var p = body.lowerBound
                while p < body.upperBound {
                    let precision = Int(data[p] >> 4), id = Int(data[p] & 15)
                    let size = precision == 0 ? 64 : 128
                    guard precision <= 1, id < 4, p + 1 + size <= body.upperBound else { throw fail(p, "bad DQT table") }
                    var table = [Int32](repeating: 0, count: 64)
                    for k in 0..<64 {
                        table[zigzag[k]] = precision == 0 ? Int32(data[p + 1 + k])
                            : Int32(data[p + 1 + 2 * k]) << 8 | Int32(data[p + 2 + 2 * k])
                    }
                    quant[id] = table
                    p += 1 + size
                }
            case 0xC4:  // DHT
                var p = body.lowerBound
                while p < body.upperBound {
                    guard p + 17 <= body.upperBound else { throw fail(p, "truncated DHT") }
                    let kind = Int(data[p] >> 4), id = Int(data[p] & 15)
                    guard kind <= 1, id < 4 else { throw fail(p, "bad DHT class/id \(data[p])") }
                    let counts = (1...16).map { Int(data[p + $0]) }
                    let total = counts.reduce(0, +)
                    guard total <= 256, p + 17 + total <= body.upperBound else { throw fail(p, "DHT lists \(total) values past the segment") }
                    var table = Huffman()
                    table.values = Array(data[(p + 17)..<(p + 17 + total)])
                    var code = 0, index = 0
                    for length in 1...16 {
                        table.valueOffset[length] = index - code
                        code += counts[length - 1]
                        index += counts[length - 1]
                        table.maxCode[length] = counts[length - 1] > 0 ? code - 1 : -1
                        guard code <= (1 << length) else { throw fail(p, "over-subscribed Huffman table") }
                        code <<= 1
                    }
                    table.defined = true
                    if kind == 0 { dc[id] = table } else { ac[id] = table }
                    p += 17 + total
                }
            case 0xDD:  // DRI
                guard length == 4 else { throw fail(position, "DRI length \(length)") }
                restartInterval = try u16(body.lowerBound)
            case 0xC0, 0xC1, 0xC2:
                guard !frameSeen, length >= 8 else { throw fail(position, "repeated or short SOF") }
                frameSeen = true
                coding = marker == 0xC2 ? .progressive : .baseline
                let b = body.lowerBound
                guard data[b] == 8 else { throw KinemaError.unsupported("\(origin): JPEG sample precision \(data[b]) (only 8-bit)") }
                height = try u16(b + 1)
                width = try u16(b + 3)
                let count = Int(data[b + 5])
                guard width > 0, height > 0 else {
                    throw fail(b, "image size \(width)x\(height) (DNL-defined heights are not supported)")
                }
                guard width * height <= PNGDecoder.maxPixels else { throw fail(b, "image too large") }
                guard count == 1 || count == 3 else {
                    throw KinemaError.unsupported("\(origin): JPEG with \(count) components (only grey and YCbCr)")
                }
                guard length == 8 + 3 * count else { throw fail(b, "SOF length \(length) for \(count) components") }
                for c in 0..<count {
                    let q = b + 6 + 3 * c
                    var component = Component()
                    component.id = Int(data[q])
                    component.h = Int(data[q + 1] >> 4)
                    component.v = Int(data[q + 1] & 15)
                    component.table = Int(data[q + 2])
                    guard (1...4).contains(component.h), (1...4).contains(component.v), component.table < 4 else {
                        throw fail(q, "bad sampling factors or quantisation table in SOF")
                    }
                    components.append(component)
                }
                if count == 1 { components[0].h = 1; components[0].v = 1 }  // a lone component is never subsampled
                hMax = components.map(\.h).max() ?? 1
                vMax = components.map(\.v).max() ?? 1
                mcusWide = (width + 8 * hMax - 1) / (8 * hMax)
                mcusHigh = (height + 8 * vMax - 1) / (8 * vMax)
                // A sequential scan spends at least 2 bits per block (a DC code and an EOB), so a tiny
                // file cannot honestly declare a huge frame: refuse before allocating coefficients.
                // (Progressive EOB runs can cover 32767 blocks in a few bits, so only the pixel cap applies.)
                let blocks = components.reduce(0) { $0 + mcusWide * $1.h * mcusHigh * $1.v }
                if coding == .baseline && blocks > 4 * data.count + 64 {
                    throw fail(b, "frame of \(width)x\(height) needs \(blocks) blocks, more than \(data.count) bytes can code")
                }
                for c in components.indices {
                    components[c].blocksWide = mcusWide * components[c].h
                    components[c].blocksHigh = mcusHigh * components[c].v
                    components[c].width = (width * components[c].h + hMax - 1) / hMax
                    components[c].height = (height * components[c].v + vMax - 1) / vMax
                    components[c].coefficients = [Int32](repeating: 0, count: components[c].blocksWide * components[c].blocksHigh * 64)
                }
            case 0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF:
                throw KinemaError.unsupported(
                    "\(origin): JPEG SOF\(marker - 0xC0) (lossless, hierarchical or arithmetic-coded) is not supported")
            case 0xDA:
                guard frameSeen else { throw fail(position, "SOS before SOF") }
                let b = body.lowerBound
                let count = Int(data[b])
                guard count >= 1, count <= components.count, length == 6 + 2 * count else { throw fail(b, "bad SOS header") }
                scans += 1
                guard scans <= maxScans else { throw fail(position, "more than \(maxScans) scans") }
                let e = b + 1 + 2 * count
                var spec = ScanSpec(start: Int(data[e]), end: Int(data[e + 1]), high: Int(data[e + 2] >> 4),
                                    low: Int(data[e + 2] & 15))
                if coding == .baseline {
                    spec = ScanSpec(start: 0, end: 63, high: 0, low: 0)  // fields are fixed; tolerate junk
                } else {
                    guard spec.start <= spec.end, spec.end <= 63, spec.low <= 13, spec.high <= 13,
                          (spec.start == 0) == (spec.end == 0), spec.start == 0 || count == 1 else {
                        throw fail(e, "bad progressive scan parameters Ss=\(spec.start) Se=\(spec.end) Ah=\(spec.high) Al=\(spec.low)")
                    }
                }
                var scan: [Int] = []
                for s in 0..<count {
                    let id = Int(data[b + 1 + 2 * s]), tables = data[b + 2 + 2 * s]
                    guard let c = components.firstIndex(where: { $0.id == id }), !scan.contains(c) else {
                        throw fail(b, "SOS names unknown or repeated component \(id)")
                    }
                    components[c].dcTable = Int(tables >> 4)
                    components[c].acTable = Int(tables & 15)
                    guard components[c].dcTable < 4, components[c].acTable < 4 else { throw fail(b, "bad table ids") }
                    // Only the tables this scan reads must exist (progressive DC scans have no AC table...).
                    let needsDC = spec.start == 0 && spec.high == 0
                    let needsAC = spec.end > 0
                    guard !needsDC || dc[components[c].dcTable].defined, !needsAC || ac[components[c].acTable].defined else {
                        throw fail(b, "SOS uses an undefined Huffman table")
                    }
                    scan.append(c)
                }
                position = body.upperBound
                position = try decodeScan(data, at: position, scan: scan, spec: spec, components: &components,
                                          dc: dc, ac: ac, mcusWide: mcusWide, mcusHigh: mcusHigh,
                                          restartInterval: restartInterval, fail: fail)
                scanSeen = true
                continue markers
            case 0xE1 where orientation == nil:
                orientation = EXIFOrientation.parse(data, body)
            default:
                break  // APPn, COM and other segments are skipped
            }
            position = body.upperBound
        }
        guard frameSeen, scanSeen else { throw fail(position, "EOI before any frame/scan") }
        for c in components.indices where quant[components[c].table].count != 64 {
            throw fail(position, "quantisation table \(components[c].table) is never defined")
        }
        let planes = components.map { component in
            JPEGPixels.inverseTransform(component, quant: quant[component.table])
        }
        let image = JPEGPixels.toRGB(planes: planes, components: components, width: width, height: height,
                                     hMax: hMax, vMax: vMax)
        return (image, orientation ?? 1)
    }
}
