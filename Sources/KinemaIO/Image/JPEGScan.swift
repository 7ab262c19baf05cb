import KinemaCore

// Entropy decoding of one JPEG scan (ITU-T T.81 F.2 for sequential, G.1.2 for progressive) into the
// components' coefficient arrays (natural order, not yet dequantised).
//
// Work bound: each Huffman decode or correction bit consumes at least one bit of the scan's data; the
// reader stops (and we throw) at a marker or the end of the data, so a scan's work is bounded by
// its blocks × 64 plus its bit count; the number of scans is capped by `maxScans`.

extension JPEGDecoder {
    /// Sequential (baseline/extended) or progressive frame.
    enum Coding { case baseline, progressive }

    /// Spectral selection and successive approximation of a scan (Ss, Se, Ah, Al).
    struct ScanSpec {
        var start: Int, end: Int, high: Int, low: Int
    }

    /// More scans than any encoder writes (libjpeg's progressive scripts use ~10); bounds work.
    static let maxScans = 1000

    /// Decodes one scan; returns the position of the marker that ends it.
    static func decodeScan(_ data: [UInt8], at start: Int, scan: [Int], spec: ScanSpec, components: inout [Component],
                           dc: [Huffman], ac: [Huffman], mcusWide: Int, mcusHigh: Int, restartInterval: Int,
                           fail: (Int, String) -> KinemaError) throws -> Int {
        var reader = BitReader(data: data, position: start)
        for c in scan { components[c].prediction = 0 }
        var endOfBandRun = 0
        // A single-component scan is non-interleaved: one block per MCU over the component's real extent.
        let single = scan.count == 1
        let first = scan[0]
        let unitsWide = single ? (components[first].width + 7) / 8 : mcusWide
        let unitsHigh = single ? (components[first].height + 7) / 8 : mcusHigh
        let total = unitsWide * unitsHigh
        var restartsSeen = 0
        let positive = Int32(1) << Int32(spec.low), negative = Int32(-1) << Int32(spec.low)

        func truncated(_ what: String) -> KinemaError { fail(reader.position, "corrupt or truncated \(what)") }

        func dcFirst(_ c: Int, _ base: Int) throws {
            guard let category = reader.decode(dc[components[c].dcTable]), category <= 11,
                  let diff = reader.receiveExtend(category) else { throw truncated("DC coefficient") }
            components[c].prediction &+= Int32(diff)
            components[c].coefficients[base] = components[c].prediction &<< Int32(spec.low)
        }

        func acSequential(_ c: Int, _ base: Int) throws {
            var k = 1
            while k < 64 {
                guard let rs = reader.decode(ac[components[c].acTable]) else { throw truncated("AC coefficient") }
                let run = rs >> 4, size = rs & 15
                if size == 0 {
                    if run == 15 { k += 16; continue }
                    break
                }
                k += run
                guard k < 64, let value = reader.receiveExtend(size) else { throw fail(reader.position, "AC run past the block end") }
                components[c].coefficients[base + zigzag[k]] = Int32(value)
                k += 1
            }
        }

        func acFirst(_ c: Int, _ base: Int) throws {
            if endOfBandRun > 0 { endOfBandRun -= 1; return }
            var k = spec.start
            while k <= spec.end {
                guard let rs = reader.decode(ac[components[c].acTable]) else { throw truncated("AC coefficient") }
                let run = rs >> 4, size = rs & 15
                if size == 0 {
                    if run < 15 {
                        guard let extra = reader.bits(run) else { throw truncated("EOB run") }
                        endOfBandRun = (1 << run) - 1 + extra
                        break
                    }
                    k += 16
                    continue
                }
                k += run
                guard k <= spec.end, let value = reader.receiveExtend(size) else {
                    throw fail(reader.position, "AC run past the spectral band")
                }
                components[c].coefficients[base + zigzag[k]] = Int32(value) &* positive
                k += 1
            }
        }

        func acRefine(_ c: Int, _ base: Int) throws {
            var k = spec.start
            /// Adds one correction bit to an already non-zero coefficient (G.1.2.3).
            func correct(_ z: Int) throws {
                guard let bit = reader.bit() else { throw truncated("refinement bit") }
                let coefficient = components[c].coefficients[base + z]
                if bit == 1 && coefficient & positive == 0 {
                    components[c].coefficients[base + z] = coefficient >= 0 ? coefficient &+ positive : coefficient &+ negative
                }
            }
            if endOfBandRun == 0 {
                while k <= spec.end {
                    guard let rs = reader.decode(ac[components[c].acTable]) else { throw truncated("AC refinement") }
                    var run = rs >> 4
                    let size = rs & 15
                    var value: Int32 = 0
                    if size != 0 {
                        guard size == 1, let bit = reader.bit() else { throw fail(reader.position, "bad AC refinement symbol") }
                        value = bit == 1 ? positive : negative
                    } else if run != 15 {
                        guard let extra = reader.bits(run) else { throw truncated("EOB run") }
                        endOfBandRun = (1 << run) + extra
                        break
                    }
                    while k <= spec.end {
                        let z = zigzag[k]
                        if components[c].coefficients[base + z] != 0 {
                            try correct(z)
                        } else {
                            if run == 0 { break }
                            run -= 1
                        }
                        k += 1
                    }
                    if value != 0 {
                        guard k <= spec.end else { throw fail(reader.position, "AC refinement past the band") }
                        components[c].coefficients[base + zigzag[k]] = value
                    }
                    k += 1
                }
            }
            if endOfBandRun > 0 {
                while k <= spec.end {
                    let z = zigzag[k]
                    if components[c].coefficients[base + z] != 0 { try correct(z) }
                    k += 1
                }
                endOfBandRun -= 1
            }
        }

        func block(_ c: Int, row: Int, column: Int) throws {
            let base = (row * components[c].blocksWide + column) * 64
            if spec.start == 0 {
                if spec.high == 0 {
                    try dcFirst(c, base)
                } else {
                    guard let bit = reader.bit() else { throw truncated("DC refinement bit") }
                    if bit == 1 { components[c].coefficients[base] |= positive }
                }
                // Sequential scans carry the whole block; progressive DC scans stop here.
                if spec.end == 63 && spec.high == 0 && spec.low == 0 { try acSequential(c, base) }
            } else if spec.high == 0 {
                try acFirst(c, base)
            } else {
                try acRefine(c, base)
            }
        }

        for unit in 0..<total {
            if restartInterval > 0 && unit > 0 && unit % restartInterval == 0 {
                // Byte-align, then expect RST(n mod 8).
                reader.count = 0
                let p = reader.position
                guard p + 1 < data.count, data[p] == 0xFF, data[p + 1] == 0xD0 + UInt8(restartsSeen % 8) else {
                    throw fail(p, "expected restart marker RST\(restartsSeen % 8)")
                }
                restartsSeen += 1
                reader.position = p + 2
                reader.hitMarker = false
                endOfBandRun = 0
                for c in scan { components[c].prediction = 0 }
            }
            let mcuRow = unit / unitsWide, mcuColumn = unit % unitsWide
            if single {
                try block(first, row: mcuRow, column: mcuColumn)
            } else {
                for c in scan {
                    for y in 0..<components[c].v {
                        for x in 0..<components[c].h {
                            try block(c, row: mcuRow * components[c].v + y, column: mcuColumn * components[c].h + x)
                        }
                    }
                }
            }
        }
        // Skip to the next marker (padding bits are dropped with the partial byte).
        var p = reader.position
        while p + 1 < data.count && !(data[p] == 0xFF && data[p + 1] != 0x00 && !(0xD0...0xD7).contains(data[p + 1])) {
            p += 1
        }
        return p
    }
}
