import Foundation
@testable import KinemaIO

// Minimal decoders written from the format specifications, used only to check the encoders. They share
// no code with the writers except the checksum functions, which have their own known-answer tests.

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct PNGChunk {
    let type: String
    let data: [UInt8]
}

enum TestPNG {
    static func be32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }

    /// Splits a PNG into chunks, verifying the signature and every CRC.
    static func chunks(_ file: [UInt8]) throws -> [PNGChunk] {
        guard Array(file.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else { throw TestFailure("bad signature") }
        var chunks: [PNGChunk] = []
        var at = 8
        while at < file.count {
            guard at + 12 <= file.count else { throw TestFailure("truncated chunk at \(at)") }
            let length = Int(be32(file, at))
            guard at + 12 + length <= file.count else { throw TestFailure("chunk overruns file at \(at)") }
            let typeBytes = Array(file[(at + 4)..<(at + 8)])
            let data = Array(file[(at + 8)..<(at + 8 + length)])
            let crc = be32(file, at + 8 + length)
            guard crc == CRC32.checksum(typeBytes + data) else { throw TestFailure("CRC mismatch in chunk at \(at)") }
            chunks.append(PNGChunk(type: String(decoding: typeBytes, as: UTF8.self), data: data))
            at += 12 + length
        }
        guard chunks.last?.type == "IEND" else { throw TestFailure("no IEND") }
        return chunks
    }

    /// Reverses the PNG filters (bpp 3) on inflated IDAT data.
    static func unfilter(_ data: [UInt8], width: Int, height: Int) throws -> [UInt8] {
        let stride = width * 3
        guard data.count == (stride + 1) * height else { throw TestFailure("inflated size \(data.count)") }
        var out = [UInt8](repeating: 0, count: stride * height)
        for row in 0..<height {
            let filter = data[row * (stride + 1)]
            for index in 0..<stride {
                let raw = Int(data[row * (stride + 1) + 1 + index])
                let a = index >= 3 ? Int(out[row * stride + index - 3]) : 0
                let b = row > 0 ? Int(out[(row - 1) * stride + index]) : 0
                let c = row > 0 && index >= 3 ? Int(out[(row - 1) * stride + index - 3]) : 0
                let prediction: Int
                switch filter {
                case 0: prediction = 0
                case 1: prediction = a
                case 2: prediction = b
                case 3: prediction = (a + b) / 2
                case 4:
                    let p = a + b - c
                    let (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
                    prediction = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw TestFailure("filter type \(filter) on row \(row)")
                }
                out[row * stride + index] = UInt8((raw + prediction) & 0xFF)
            }
        }
        return out
    }
}

struct TestGIF {
    var width = 0
    var height = 0
    var loops = false
    var frames: [[UInt8]] = [] // RGB
    var delays: [Int] = []

    static func le16(_ bytes: [UInt8], _ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }

    init(_ file: [UInt8]) throws {
        guard String(decoding: file.prefix(6), as: UTF8.self) == "GIF89a" else { throw TestFailure("bad GIF header") }
        width = Self.le16(file, 6)
        height = Self.le16(file, 8)
        var at = 13
        if file[10] & 0x80 != 0 { at += 3 << (Int(file[10] & 7) + 1) }
        func subBlocks() -> [UInt8] {
            var data: [UInt8] = []
            while file[at] != 0 {
                let length = Int(file[at])
                data += file[(at + 1)..<(at + 1 + length)]
                at += 1 + length
            }
            at += 1
            return data
        }
        while at < file.count {
            switch file[at] {
            case 0x21:
                let label = file[at + 1]
                at += 2
                let blocks = subBlocks()
                if label == 0xF9 { delays.append(Int(blocks[1]) | Int(blocks[2]) << 8) }
                if label == 0xFF, String(decoding: blocks.prefix(11), as: UTF8.self) == "NETSCAPE2.0" { loops = true }
            case 0x2C:
                let (w, h) = (Self.le16(file, at + 5), Self.le16(file, at + 7))
                let packed = file[at + 9]
                at += 10
                guard packed & 0x80 != 0 else { throw TestFailure("frame without local colour table") }
                let entries = 1 << (Int(packed & 7) + 1)
                let table = Array(file[at..<(at + entries * 3)])
                at += entries * 3
                let minimum = Int(file[at])
                at += 1
                let indices = try Self.lzwDecode(subBlocks(), minimumCodeSize: minimum, expected: w * h)
                var rgb = [UInt8](repeating: 0, count: w * h * 3)
                for (pixel, index) in indices.enumerated() {
                    for channel in 0..<3 { rgb[pixel * 3 + channel] = table[Int(index) * 3 + channel] }
                }
                frames.append(rgb)
            case 0x3B:
                return
            default:
                throw TestFailure("unexpected block 0x\(String(file[at], radix: 16)) at \(at)")
            }
        }
        throw TestFailure("no trailer")
    }

    /// GIF LZW decoder (GIF89a appendix F), with the decoder-side code-width rule.
    static func lzwDecode(_ data: [UInt8], minimumCodeSize: Int, expected: Int) throws -> [UInt8] {
        let clear = 1 << minimumCodeSize
        let end = clear + 1
        var table: [[UInt8]] = []
        func reset() { table = (0..<clear).map { [UInt8($0)] } + [[], []] }
        reset()
        var width = minimumCodeSize + 1
        var bitPosition = 0
        var previous: [UInt8]?
        var out: [UInt8] = []
        while true {
            guard bitPosition + width <= data.count * 8 else { throw TestFailure("LZW data ends without end code") }
            var code = 0
            for bit in 0..<width {
                let position = bitPosition + bit
                code |= Int((data[position / 8] >> UInt8(position % 8)) & 1) << bit
            }
            bitPosition += width
            if code == clear {
                reset()
                width = minimumCodeSize + 1
                previous = nil
                continue
            }
            if code == end { break }
            let entry: [UInt8]
            if code < table.count {
                entry = table[code]
            } else if code == table.count, let previous {
                entry = previous + [previous[0]]
            } else {
                throw TestFailure("LZW code \(code) out of range (table \(table.count))")
            }
            out += entry
            if let previous, table.count < 4096 {
                table.append(previous + [entry[0]])
            }
            if table.count == 1 << width, width < 12 { width += 1 }
            previous = entry
        }
        guard out.count == expected else { throw TestFailure("LZW gave \(out.count) pixels, expected \(expected)") }
        return out
    }
}
