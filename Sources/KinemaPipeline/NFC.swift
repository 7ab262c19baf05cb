/// Unicode Normalization Form C as Python's `unicodedata.normalize("NFC", text)` computes it in the reference
/// environment (Unicode 14.0 data: NFCTables.swift): full canonical decomposition, canonical ordering of
/// combining marks, then canonical composition (UAX #15), with Hangul syllables done arithmetically.
/// Code points the table does not know (assigned after Unicode 14.0) have class 0 and stay as they are, as
/// in Python 3.11.
enum NFC {
    static func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        compose(reorder(decompose(text)))
    }

    // Hangul syllable arithmetic: S = 0xAC00 + (L·21 + V)·28 + T.
    private static let syllableBase: UInt32 = 0xAC00, leadBase: UInt32 = 0x1100, vowelBase: UInt32 = 0x1161
    private static let trailBase: UInt32 = 0x11A7, vowelCount: UInt32 = 21, trailCount: UInt32 = 28
    private static let syllableCount: UInt32 = 11172

    static let combiningClasses: [UInt32: UInt8] = {
        let values = combiningClassTable.unicodeScalars.map(\.value)
        var table: [UInt32: UInt8] = [:]
        for index in stride(from: 0, to: values.count - 1, by: 2) { table[values[index]] = UInt8(values[index + 1]) }
        return table
    }()

    static let decompositions: [UInt32: [Unicode.Scalar]] = {
        let values = Array(decompositionTable.unicodeScalars)
        var table: [UInt32: [Unicode.Scalar]] = [:]
        var index = 0
        while index + 1 < values.count {
            let length = Int(values[index + 1].value)
            table[values[index].value] = Array(values[(index + 2)..<min(index + 2 + length, values.count)])
            index += 2 + length
        }
        return table
    }()

    /// Keyed by first << 32 | second.
    static let compositions: [UInt64: Unicode.Scalar] = {
        let values = Array(compositionTable.unicodeScalars)
        var table: [UInt64: Unicode.Scalar] = [:]
        for index in stride(from: 0, to: values.count - 2, by: 3) {
            table[UInt64(values[index].value) << 32 | UInt64(values[index + 1].value)] = values[index + 2]
        }
        return table
    }()

    static func combiningClass(_ scalar: Unicode.Scalar) -> UInt8 { combiningClasses[scalar.value] ?? 0 }

    static func decompose(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count)
        for scalar in text {
            let offset = scalar.value &- syllableBase
            if offset < syllableCount {
                let lead = leadBase + offset / (vowelCount * trailCount)
                let vowel = vowelBase + (offset % (vowelCount * trailCount)) / trailCount
                let trail = offset % trailCount
                result.append(contentsOf: [lead, vowel].compactMap(Unicode.Scalar.init))
                if trail > 0, let trailScalar = Unicode.Scalar(trailBase + trail) { result.append(trailScalar) }
            } else if let mapping = decompositions[scalar.value] {
                result.append(contentsOf: mapping)
            } else {
                result.append(scalar)
            }
        }
        return result
    }

    /// Canonical ordering: each run of non-starters stably sorted by combining class.
    static func reorder(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result = text
        var start = 0
        while start < result.count {
            guard combiningClass(result[start]) != 0 else { start += 1; continue }
            var end = start
            while end < result.count, combiningClass(result[end]) != 0 { end += 1 }
            if end - start > 1 {
                let run = result[start..<end].enumerated().sorted {
                    (combiningClass($0.element), $0.offset) < (combiningClass($1.element), $1.offset)
                }
                result.replaceSubrange(start..<end, with: run.map(\.element))
            }
            start = end
        }
        return result
    }

    /// Canonical composition: each character joins the last starter when no character between them has
    /// class 0 or a class at least its own, and the pair has a primary composite.
    static func compose(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count)
        var starter: Int?
        var lastClass: Int = -1  // class of the last character kept after the starter; -1: none
        for scalar in text {
            let currentClass = Int(combiningClass(scalar))
            if let starterIndex = starter {
                let blocked = lastClass != -1 && (lastClass == 0 || lastClass >= currentClass)
                if !blocked, let composite = composePair(result[starterIndex], scalar) {
                    result[starterIndex] = composite
                    continue
                }
            }
            if currentClass == 0 {
                starter = result.count
                lastClass = -1
            } else {
                lastClass = currentClass
            }
            result.append(scalar)
        }
        return result
    }

    static func composePair(_ first: Unicode.Scalar, _ second: Unicode.Scalar) -> Unicode.Scalar? {
        let lead = first.value &- leadBase, vowel = second.value &- vowelBase
        if lead < 19, vowel < vowelCount {
            return Unicode.Scalar(syllableBase + (lead * vowelCount + vowel) * trailCount)
        }
        let offset = first.value &- syllableBase, trail = second.value &- trailBase
        if offset < syllableCount, offset % trailCount == 0, trail > 0, trail < trailCount {
            return Unicode.Scalar(first.value + trail)
        }
        return compositions[UInt64(first.value) << 32 | UInt64(second.value)]
    }
}
