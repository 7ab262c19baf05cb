import KinemaCore

// zlib stream inflation (RFC 1950 wrapper around RFC 1951 deflate) for PNG. The system zlib's
// `uncompress` (loaded at run time through CKinema, see `ZlibLibrary`) is used when present; the
// pure-Swift decoder below is the fallback for machines without libz. Both stop at `expectedSize`:
// PNG knows its exact decompressed size from IHDR, so a stream that would inflate to more is
// rejected rather than followed (no zip bombs), and the fallback's work is bounded by input bits
// plus output bytes.

/// Which inflater decodes a zlib stream.
public enum InflateEngine: Sendable, Equatable {
    /// libz when it loads, else the Swift decoder.
    case automatic
    /// The pure-Swift decoder only (tests, machines without zlib).
    case swift
}

public enum Inflate {
    /// Inflates a complete zlib stream to exactly `expectedSize` bytes.
    /// `origin` names the file in errors.
    public static func zlib(_ bytes: [UInt8], expectedSize: Int, engine: InflateEngine = .automatic,
                            origin: String) throws -> [UInt8] {
        if engine == .automatic, let library = ZlibLibrary.shared {
            do {
                return try library.uncompress(bytes, expectedSize: expectedSize)
            } catch {
                throw KinemaError.badFile(path: origin, location: "IDAT zlib stream",
                                          reason: "\(error)")
            }
        }
        var decoder = SwiftInflater(input: bytes, expectedSize: expectedSize, origin: origin)
        return try decoder.run()
    }
}

/// A canonical Huffman code as (count per length, symbols sorted by code) — the "puff" layout, which
/// decodes one bit at a time: slow but tiny, and every step is bounds-checked.
struct HuffmanTable {
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int] = []

    /// Builds from per-symbol code lengths (0 = unused). Over-subscribed sets are rejected; incomplete
    /// sets are allowed (deflate permits a single-code distance tree) and fail only if a missing code
    /// is actually read.
    init(lengths: [Int], origin: String) throws {
        for length in lengths { counts[length] += 1 }
        counts[0] = 0
        var left = 1
        for length in 1..<16 {
            left <<= 1
            left -= counts[length]
            if left < 0 {
                throw KinemaError.badFile(path: origin, location: "deflate Huffman table",
                                          reason: "over-subscribed code lengths")
            }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for length in 1..<15 { offsets[length + 1] = offsets[length] + counts[length] }
        symbols = [Int](repeating: 0, count: lengths.count)
        for (symbol, length) in lengths.enumerated() where length != 0 {
            symbols[offsets[length]] = symbol
            offsets[length] += 1
        }
    }
}

struct SwiftInflater {
    let input: [UInt8]
    let expectedSize: Int
    let origin: String
    var position = 2  // past CMF/FLG
    var bitBuffer = 0
    var bitCount = 0
    var output: [UInt8] = []

    init(input: [UInt8], expectedSize: Int, origin: String) {
        self.input = input
        self.expectedSize = expectedSize
        self.origin = origin
    }

    func fail(_ reason: String) -> KinemaError {
        KinemaError.badFile(path: origin, location: "zlib stream at byte \(position)", reason: reason)
    }

    mutating func bits(_ count: Int) throws -> Int {
        while bitCount < count {
            guard position < input.count else { throw fail("stream ends early") }
            bitBuffer |= Int(input[position]) << bitCount
            position += 1
            bitCount += 8
        }
        let value = bitBuffer & ((1 << count) - 1)
        bitBuffer >>= count
        bitCount -= count
        return value
    }

    mutating func decode(_ table: HuffmanTable) throws -> Int {
        var code = 0, first = 0, index = 0
        for length in 1..<16 {
            code |= try bits(1)
            let count = table.counts[length]
            if code - count < first { return table.symbols[index + (code - first)] }
            index += count
            first += count
            first <<= 1
            code <<= 1
        }
        throw fail("invalid Huffman code")
    }

    mutating func run() throws -> [UInt8] {
        guard input.count >= 6 else { throw fail("stream too short (\(input.count) bytes)") }
        let cmf = Int(input[0]), flg = Int(input[1])
        guard cmf & 0x0F == 8, cmf >> 4 <= 7, (cmf * 256 + flg) % 31 == 0, flg & 0x20 == 0 else {
            throw fail("bad zlib header 0x\(String(cmf, radix: 16)) 0x\(String(flg, radix: 16))")
        }
        output.reserveCapacity(expectedSize)
        var final = 0
        repeat {
            final = try bits(1)
            switch try bits(2) {
            case 0: try stored()
            case 1: try codes(Self.fixedLengths, Self.fixedDistances)
            case 2:
                let (lengths, distances) = try dynamicTables()
                try codes(lengths, distances)
            default: throw fail("reserved block type 3")
            }
        } while final == 0
        guard output.count == expectedSize else {
            throw fail("inflated to \(output.count) bytes, expected \(expectedSize)")
        }
        // Adler-32 trailer, big-endian, byte-aligned after the last block.
        bitBuffer = 0
        bitCount = 0
        guard position + 4 <= input.count else { throw fail("missing Adler-32 trailer") }
        let stored = input[position..<(position + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let actual = Adler32.checksum(output)
        guard stored == actual else {
            throw fail("Adler-32 mismatch: stored \(stored), computed \(actual)")
        }
        return output
    }

    mutating func stored() throws {
        bitBuffer = 0
        bitCount = 0
        guard position + 4 <= input.count else { throw fail("stored block header truncated") }
        let length = Int(input[position]) | Int(input[position + 1]) << 8
        let complement = Int(input[position + 2]) | Int(input[position + 3]) << 8
        position += 4
        guard length == (~complement & 0xFFFF) else { throw fail("stored block LEN/NLEN mismatch") }
        guard position + length <= input.count else { throw fail("stored block runs past the data") }
        guard output.count + length <= expectedSize else { throw fail("inflates past the expected \(expectedSize) bytes") }
        output += input[position..<(position + length)]
        position += length
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    // Fixed codes (RFC 1951 §3.2.6); built once. The lengths are constants, so construction cannot fail.
    static let fixedLengths: HuffmanTable = {
        let lengths = [Int](repeating: 8, count: 144) + [Int](repeating: 9, count: 112)
            + [Int](repeating: 7, count: 24) + [Int](repeating: 8, count: 8)
        return (try? HuffmanTable(lengths: lengths, origin: "fixed")) ?? HuffmanTable.empty
    }()
    static let fixedDistances: HuffmanTable = {
        (try? HuffmanTable(lengths: [Int](repeating: 5, count: 30), origin: "fixed")) ?? HuffmanTable.empty
    }()

    mutating func codes(_ lengths: HuffmanTable, _ distances: HuffmanTable) throws {
        while true {
            let symbol = try decode(lengths)
            if symbol < 256 {
                guard output.count < expectedSize else { throw fail("inflates past the expected \(expectedSize) bytes") }
                output.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let lengthIndex = symbol - 257
                guard lengthIndex < 29 else { throw fail("invalid length symbol \(symbol)") }
                let length = Self.lengthBase[lengthIndex] + (try bits(Self.lengthExtra[lengthIndex]))
                let distanceSymbol = try decode(distances)
                guard distanceSymbol < 30 else { throw fail("invalid distance symbol \(distanceSymbol)") }
                let distance = Self.distanceBase[distanceSymbol] + (try bits(Self.distanceExtra[distanceSymbol]))
                guard distance <= output.count else { throw fail("distance \(distance) reaches before the start") }
                guard output.count + length <= expectedSize else { throw fail("inflates past the expected \(expectedSize) bytes") }
                let start = output.count - distance
                for offset in 0..<length { output.append(output[start + offset]) }
            }
        }
    }

    mutating func dynamicTables() throws -> (HuffmanTable, HuffmanTable) {
        let literalCount = try bits(5) + 257
        let distanceCount = try bits(5) + 1
        let codeCount = try bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw fail("too many length or distance codes") }
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var codeLengths = [Int](repeating: 0, count: 19)
        for index in 0..<codeCount { codeLengths[order[index]] = try bits(3) }
        let codeTable = try HuffmanTable(lengths: codeLengths, origin: origin)
        var lengths: [Int] = []
        let total = literalCount + distanceCount
        while lengths.count < total {
            let symbol = try decode(codeTable)
            var repeatValue = 0, repeatCount = 0
            switch symbol {
            case 0..<16:
                lengths.append(symbol)
                continue
            case 16:
                guard let last = lengths.last else { throw fail("repeat with no previous length") }
                repeatValue = last
                repeatCount = 3 + (try bits(2))
            case 17: repeatCount = 3 + (try bits(3))
            default: repeatCount = 11 + (try bits(7))
            }
            guard lengths.count + repeatCount <= total else { throw fail("code lengths overrun") }
            lengths += [Int](repeating: repeatValue, count: repeatCount)
        }
        guard lengths[256] != 0 else { throw fail("no end-of-block code") }
        return (try HuffmanTable(lengths: Array(lengths[0..<literalCount]), origin: origin),
                try HuffmanTable(lengths: Array(lengths[literalCount...]), origin: origin))
    }
}

extension HuffmanTable {
    /// A table with no codes: every decode fails cleanly (only used if the constant tables below
    /// could not be built, which cannot happen for RFC 1951's fixed lengths).
    static let empty = HuffmanTable(counts: [Int](repeating: 0, count: 16), symbols: [])

    private init(counts: [Int], symbols: [Int]) {
        self.counts = counts
        self.symbols = symbols
    }
}
