import KinemaCore

// SentencePiece's precompiled normalization map (`normalizer_spec.precompiled_charsmap`, and the base64
// `precompiled_charsmap` of a tokenizers `Precompiled` normalizer). Matches sentencepiece
// src/normalizer.cc (DecodePrecompiledCharsMap, NormalizePrefix) and the `spm_precompiled` crate used by
// tokenizers.
//
// Layout (little endian):  [u32 trieBytes][trie: trieBytes/4 Darts double-array units][normalized blob]
// A trie key is a UTF-8 byte string to replace; its value is an offset into the blob, where the
// replacement is stored NUL-terminated.
//
// Invariants: every unit index and blob offset is bounds-checked on use, so a hostile blob can only make
// a lookup miss or fail loading, never read outside the buffer. Traversal depth is bounded by the key.

struct PrecompiledCharsMap: Sendable {
    private let units: [UInt32]
    private let normalized: [UInt8]

    /// Parses and validates the blob. `path`/`location` name where it came from, for errors.
    init(_ blob: [UInt8], path: String, location: String) throws {
        func fail(_ reason: String) -> KinemaError { .badFile(path: path, location: location, reason: reason) }
        guard blob.count >= 4 else { throw fail("precompiled charsmap is \(blob.count) bytes, shorter than its 4-byte header") }
        let trieBytes = Int(blob[0]) | Int(blob[1]) << 8 | Int(blob[2]) << 16 | Int(blob[3]) << 24
        guard trieBytes % 4 == 0, trieBytes >= 4 else {
            throw fail("precompiled charsmap trie size \(trieBytes) is not a positive multiple of 4")
        }
        guard trieBytes <= blob.count - 4 else {
            throw fail("precompiled charsmap trie claims \(trieBytes) bytes but only \(blob.count - 4) follow (truncated)")
        }
        var units = [UInt32](repeating: 0, count: trieBytes / 4)
        for i in 0..<units.count {
            let o = 4 + 4 * i
            units[i] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        self.units = units
        self.normalized = Array(blob[(4 + trieBytes)...])
        // Every value the trie can produce must point into the blob; checked lazily in `replacement`, but a
        // root unit pointing outside the array means the trie itself is garbage.
        guard Self.offset(units[0]) < units.count else {
            throw fail("precompiled charsmap trie root points outside the trie (corrupt)")
        }
    }

    // Darts-clone unit encoding.
    private static func offset(_ unit: UInt32) -> Int { Int((unit >> 10) << ((unit & (1 << 9)) >> 6)) }
    private static func hasLeaf(_ unit: UInt32) -> Bool { (unit >> 8) & 1 == 1 }
    private static func label(_ unit: UInt32) -> UInt32 { unit & ((1 << 31) | 0xFF) }
    private static func value(_ unit: UInt32) -> Int { Int(unit & ((1 << 31) - 1)) }

    /// Every (key length, value) whose key is a prefix of `bytes[start..<end]`, shortest first.
    func prefixMatches(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> [(length: Int, value: Int)] {
        var found: [(length: Int, value: Int)] = []
        var node = Self.offset(units[0])
        var i = start
        while i < end {
            let byte = bytes[i]
            node ^= Int(byte)
            guard node < units.count else { return found }
            let unit = units[node]
            guard Self.label(unit) == UInt32(byte) else { return found }
            node ^= Self.offset(unit)
            guard node < units.count else { return found }
            if Self.hasLeaf(unit) { found.append((i - start + 1, Self.value(units[node]))) }
            i += 1
        }
        return found
    }

    /// The NUL-terminated replacement at `value`, or nil when the offset is outside the blob.
    func replacement(at value: Int) -> ArraySlice<UInt8>? {
        guard value >= 0, value < normalized.count else { return nil }
        var end = value
        while end < normalized.count, normalized[end] != 0 { end += 1 }
        return normalized[value..<end]
    }

    /// SentencePiece's rule: the LONGEST matching key wins (normalizer.cc NormalizePrefix).
    func longest(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> (length: Int, replacement: ArraySlice<UInt8>)? {
        // sentencepiece asks Darts for at most 32 results; keys are single characters or short sequences,
        // so the cap never binds in practice, but keep it for equality on hostile maps.
        let matches = prefixMatches(bytes, from: start, to: end).prefix(32)
        guard let best = matches.max(by: { $0.length < $1.length }), let text = replacement(at: best.value) else { return nil }
        return (best.length, text)
    }

    /// tokenizers' rule (spm_precompiled `transform`): the FIRST, i.e. SHORTEST, matching key wins, and
    /// the caller replaces the whole chunk with it even when the key covers only a prefix of the chunk.
    func shortest(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> ArraySlice<UInt8>? {
        guard let first = prefixMatches(bytes, from: start, to: end).first else { return nil }
        return replacement(at: first.value)
    }
}
