import Foundation
import KinemaCore

// The text stages of a HF `tokenizers` pipeline that SentencePiece-derived tokenizer.json files use:
// normalizers (tokenizers/src/normalizers: Precompiled, Strip, Replace, NFKC/NFC, Sequence),
// pre-tokenizers (pre_tokenizers: WhitespaceSplit, Metaspace, Sequence) and decoders
// (decoders: Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence). Each stage works on Unicode
// scalars, as tokenizers works on Rust `char`s.

/// A Replace pattern. tokenizers accepts any regex; the converters that write SentencePiece-derived
/// files only use alternatives of one repeated character with optional start/end anchors
/// (" {2,}", "\A +| +\z", "\A▁"), which `SimpleRegex` covers. Anything else is rejected at load time.
enum ReplacePattern: Sendable {
    case literal([Unicode.Scalar])
    case regex(SimpleRegex)
}

struct SimpleRegex: Sendable {
    struct Branch: Sendable {
        var anchoredStart: Bool
        var scalar: Unicode.Scalar
        var minCount: Int
        var maxCount: Int?
        var anchoredEnd: Bool
    }
    var branches: [Branch]

    /// Parses `source`, or returns nil when it is outside the supported subset.
    init?(_ source: String) {
        var branches: [Branch] = []
        for alternative in source.split(separator: "|", omittingEmptySubsequences: false) {
            var s = Array(alternative.unicodeScalars)
            var branch = Branch(anchoredStart: false, scalar: " ", minCount: 1, maxCount: 1, anchoredEnd: false)
            if s.starts(with: ["\\", "A"]) { branch.anchoredStart = true; s.removeFirst(2) }
            if s.count >= 2, s[s.count - 2] == "\\", s[s.count - 1] == "z" { branch.anchoredEnd = true; s.removeLast(2) }
            guard let first = s.first else { return nil }
            var rest: ArraySlice<Unicode.Scalar>
            if first == "\\" {
                guard s.count >= 2, !CharacterSet.alphanumerics.contains(s[1]) else { return nil }
                branch.scalar = s[1]
                rest = s[2...]
            } else {
                guard !"()[]{}.*+?^$|".unicodeScalars.contains(first) else { return nil }
                branch.scalar = first
                rest = s[1...]
            }
            switch String(String.UnicodeScalarView(rest)) {
            case "": break
            case "+": branch.maxCount = nil
            case "*": branch.minCount = 0; branch.maxCount = nil
            case let q where q.hasPrefix("{") && q.hasSuffix("}"):
                let body = q.dropFirst().dropLast()
                let parts = body.split(separator: ",", omittingEmptySubsequences: false)
                guard let lo = Int(parts[0]), lo >= 0 else { return nil }
                branch.minCount = lo
                if parts.count == 1 { branch.maxCount = lo }
                else if parts.count == 2 {
                    if parts[1].isEmpty { branch.maxCount = nil } else if let hi = Int(parts[1]), hi >= lo { branch.maxCount = hi } else { return nil }
                } else { return nil }
            default: return nil
            }
            branches.append(branch)
        }
        guard !branches.isEmpty else { return nil }
        self.branches = branches
    }

    /// Length of the match at `i` (leftmost-first over branches, greedy), or nil.
    func match(_ s: [Unicode.Scalar], at i: Int) -> Int? {
        for b in branches {
            if b.anchoredStart && i != 0 { continue }
            var n = 0
            while i + n < s.count, s[i + n] == b.scalar, b.maxCount.map({ n < $0 }) ?? true { n += 1 }
            guard n >= b.minCount else { continue }
            if b.anchoredEnd && i + n != s.count { continue }
            return n
        }
        return nil
    }
}

/// Normalized text with, per scalar, the offset in the original input it came from. tokenizers keeps
/// such alignments; Metaspace's "first" scheme asks whether a piece starts at original offset 0, which
/// is false e.g. after leading spaces were removed.
struct AlignedText {
    var scalars: [Unicode.Scalar]
    var origins: [Int]

    init(_ scalars: [Unicode.Scalar], origins: [Int]) {
        self.scalars = scalars
        self.origins = origins
    }

    /// `text` whose scalar k came from original offset `base + k`.
    init(_ text: [Unicode.Scalar], base: Int) {
        self.init(text, origins: text.indices.map { base + $0 })
    }

    mutating func append(_ s: Unicode.Scalar, origin: Int) { scalars.append(s); origins.append(origin) }
    mutating func append(_ s: [Unicode.Scalar], origin: Int) { scalars += s; origins += Array(repeating: origin, count: s.count) }
}

enum NormalizerStep: Sendable {
    case precompiled(PrecompiledCharsMap)
    case strip(left: Bool, right: Bool)
    case replace(ReplacePattern, with: [Unicode.Scalar])
    case prepend([Unicode.Scalar])
    case nfkc
    case nfc

    /// Replacement scalars take the origin of the text they replace (its first scalar), as tokenizers'
    /// transform_range aligns inserted characters.
    func apply(_ text: AlignedText) -> AlignedText {
        let s = text.scalars
        switch self {
        case .precompiled(let map): return Self.precompiled(text, map)
        case let .strip(left, right):
            var lo = 0, hi = s.count
            if left { while lo < hi, s[lo].properties.isWhitespace { lo += 1 } }
            if right { while hi > lo, s[hi - 1].properties.isWhitespace { hi -= 1 } }
            return AlignedText(Array(s[lo..<hi]), origins: Array(text.origins[lo..<hi]))
        case let .replace(pattern, content):
            var out = AlignedText([], origins: [])
            var i = 0
            while i < s.count {
                let length: Int?
                switch pattern {
                case .literal(let lit):
                    length = !lit.isEmpty && i + lit.count <= s.count && Array(s[i..<(i + lit.count)]) == lit ? lit.count : nil
                case .regex(let re): length = re.match(s, at: i)
                }
                if let length {
                    out.append(content, origin: text.origins[i])
                    if length == 0 { out.append(s[i], origin: text.origins[i]); i += 1 } else { i += length }
                } else {
                    out.append(s[i], origin: text.origins[i]); i += 1
                }
            }
            // An empty match at the very end (e.g. "\z" alone) also inserts the content.
            if case .regex(let re) = pattern, re.match(s, at: s.count) == 0 { out.append(content, origin: text.origins.last ?? 0) }
            return out
        case .prepend(let p):
            guard let first = text.origins.first else { return text }
            return AlignedText(p + s, origins: Array(repeating: first, count: p.count) + text.origins)
        case .nfkc: return Self.perGrapheme(text) { $0.precomposedStringWithCompatibilityMapping }
        case .nfc: return Self.perGrapheme(text) { $0.precomposedStringWithCanonicalMapping }
        }
    }

    /// Applies a Unicode normalization form grapheme by grapheme (compositions do not cross extended
    /// grapheme boundaries), so each output scalar keeps its grapheme's origin.
    private static func perGrapheme(_ text: AlignedText, _ form: (String) -> String) -> AlignedText {
        var out = AlignedText([], origins: [])
        var k = 0
        for grapheme in String(String.UnicodeScalarView(text.scalars)) {
            let origin = text.origins[k]
            k += grapheme.unicodeScalars.count
            out.append(Array(form(String(grapheme)).unicodeScalars), origin: origin)
        }
        return out
    }

    /// tokenizers' Precompiled normalizer: per extended grapheme cluster shorter than 6 bytes, the
    /// SHORTEST charsmap key that prefixes the cluster replaces the WHOLE cluster; otherwise each scalar
    /// is looked up on its own. (This differs from sentencepiece's longest-match; both are reproduced.)
    private static func precompiled(_ text: AlignedText, _ map: PrecompiledCharsMap) -> AlignedText {
        var out = AlignedText([], origins: [])
        out.scalars.reserveCapacity(text.scalars.count)
        func decode(_ bytes: ArraySlice<UInt8>) -> [Unicode.Scalar] {
            Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        }
        var k = 0
        for grapheme in String(String.UnicodeScalarView(text.scalars)) {
            let bytes = Array(grapheme.utf8)
            let count = grapheme.unicodeScalars.count
            defer { k += count }
            if bytes.count < 6, let rep = bytes.withUnsafeBufferPointer({ map.shortest($0, from: 0, to: $0.count) }) {
                out.append(decode(rep), origin: text.origins[k])
                continue
            }
            for (j, scalar) in grapheme.unicodeScalars.enumerated() {
                let sb = Array(String(scalar).utf8)
                if let rep = sb.withUnsafeBufferPointer({ map.shortest($0, from: 0, to: $0.count) }) {
                    out.append(decode(rep), origin: text.origins[k + j])
                } else {
                    out.append(scalar, origin: text.origins[k + j])
                }
            }
        }
        return out
    }
}

/// Metaspace's prepend_scheme.
enum PrependScheme: String, Sendable { case always, first, never }

/// tokenizers' SplitDelimiterBehavior for the Split pre-tokenizer.
enum SplitBehavior: String, Sendable {
    case isolated = "Isolated", removed = "Removed", mergedWithPrevious = "MergedWithPrevious", mergedWithNext = "MergedWithNext"
}

/// A Split pattern: a literal, or a regex that is an alternation of literals (what transformers writes to
/// isolate SentencePiece USER_DEFINED pieces: `re.escape`d pieces joined by "|", longest first).
struct LiteralAlternation: Sendable {
    var alternatives: [[Unicode.Scalar]]

    init(literal: String) { alternatives = [Array(literal.unicodeScalars)] }

    /// nil when `regex` has an unescaped metacharacter other than "|".
    init?(regex: String) {
        var alternatives: [[Unicode.Scalar]] = [[]]
        var escaped = false
        for c in regex.unicodeScalars {
            if escaped {
                guard !CharacterSet.alphanumerics.contains(c) else { return nil }
                alternatives[alternatives.count - 1].append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "|" {
                alternatives.append([])
            } else if "()[]{}.*+?^$".unicodeScalars.contains(c) {
                return nil
            } else {
                alternatives[alternatives.count - 1].append(c)
            }
        }
        guard !escaped, !alternatives.contains(where: \.isEmpty) else { return nil }
        self.alternatives = alternatives
    }

    /// Length of the first alternative (in order: leftmost-first) matching at `i`, or nil.
    func match(_ s: [Unicode.Scalar], at i: Int) -> Int? {
        for a in alternatives where a.count <= s.count - i && s[i..<(i + a.count)].elementsEqual(a) { return a.count }
        return nil
    }
}

enum PreTokenizerStep: Sendable {
    case whitespaceSplit
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme, split: Bool)
    case split(LiteralAlternation, SplitBehavior)

    /// A piece of text with the original offset of each scalar (see `AlignedText`).
    typealias Piece = AlignedText

    func apply(_ pieces: [Piece]) -> [Piece] {
        var out: [Piece] = []
        for piece in pieces {
            let at = piece.origins
            switch self {
            case .whitespaceSplit:
                var start = -1
                for (k, scalar) in piece.scalars.enumerated() {
                    if scalar.properties.isWhitespace {
                        if start >= 0 { out.append(Piece(Array(piece.scalars[start..<k]), origins: Array(at[start..<k]))); start = -1 }
                    } else if start < 0 {
                        start = k
                    }
                }
                if start >= 0 { out.append(Piece(Array(piece.scalars[start...]), origins: Array(at[start...]))) }
            case let .split(pattern, behavior):
                out += Self.split(piece, pattern, behavior)
            case let .metaspace(replacement, prepend, split):
                guard let firstOrigin = at.first else { continue }
                var text = piece.scalars.map { $0 == " " ? replacement : $0 }
                var origins = at
                let wantsPrefix: Bool
                switch prepend {
                case .always: wantsPrefix = true
                case .first: wantsPrefix = firstOrigin == 0
                case .never: wantsPrefix = false
                }
                if wantsPrefix, text.first != replacement { text.insert(replacement, at: 0); origins.insert(firstOrigin, at: 0) }
                guard split else { out.append(Piece(text, origins: origins)); continue }
                // MergedWithNext: each replacement character starts a new piece.
                var start = 0
                for k in text.indices where k > start && text[k] == replacement {
                    out.append(Piece(Array(text[start..<k]), origins: Array(origins[start..<k])))
                    start = k
                }
                out.append(Piece(Array(text[start...]), origins: Array(origins[start...])))
            }
        }
        return out
    }

    private static func split(_ piece: Piece, _ pattern: LiteralAlternation, _ behavior: SplitBehavior) -> [Piece] {
        let s = piece.scalars
        func slice(_ r: Range<Int>) -> Piece { Piece(Array(s[r]), origins: Array(piece.origins[r])) }
        // (range, isMatch) runs covering the piece.
        var runs: [(Range<Int>, Bool)] = []
        var last = 0, i = 0
        while i < s.count {
            if let n = pattern.match(s, at: i), n > 0 {
                if i > last { runs.append((last..<i, false)) }
                runs.append((i..<(i + n), true))
                i += n
                last = i
            } else {
                i += 1
            }
        }
        if last < s.count { runs.append((last..<s.count, false)) }
        var out: [Range<Int>] = []
        switch behavior {
        case .isolated: out = runs.map(\.0)
        case .removed: out = runs.filter { !$0.1 }.map(\.0)
        case .mergedWithPrevious:
            // "the-final--x" on "-" → "the-", "final-", "-", "x": a delimiter joins the text run before it.
            var previousIsText = false
            for (r, isMatch) in runs {
                if isMatch, previousIsText, let prev = out.last {
                    out[out.count - 1] = prev.lowerBound..<r.upperBound
                    previousIsText = false
                } else {
                    out.append(r)
                    previousIsText = !isMatch
                }
            }
        case .mergedWithNext:
            // "the-final--x" on "-" → "the", "-final", "-", "-x".
            var pendingMatch: Range<Int>?
            for (r, isMatch) in runs {
                if isMatch {
                    if let p = pendingMatch { out.append(p) }
                    pendingMatch = r
                } else if let p = pendingMatch {
                    out.append(p.lowerBound..<r.upperBound); pendingMatch = nil
                } else { out.append(r) }
            }
            if let p = pendingMatch { out.append(p) }
        }
        return out.filter { !$0.isEmpty }.map(slice)
    }
}

enum DecoderStep: Sendable {
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme)
    case replace(pattern: String, content: String)
    case byteFallback
    case fuse
    case strip(content: Character, start: Int, stop: Int)

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case let .metaspace(replacement, prepend):
            return tokens.enumerated().map { index, token in
                var t = String(String.UnicodeScalarView(token.unicodeScalars.map { $0 == replacement ? " " : $0 }))
                if index == 0, prepend != .never, t.hasPrefix(" ") { t.removeFirst() }
                return t
            }
        case let .replace(pattern, content):
            return tokens.map { $0.replacingOccurrences(of: pattern, with: content) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validating: pending, as: UTF8.self) { out.append(s) }
                else { out += Array(repeating: "\u{FFFD}", count: pending.count) }
                pending = []
            }
            for token in tokens {
                if let byte = Self.byteToken(token) { pending.append(byte) } else { flush(); out.append(token) }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case let .strip(content, start, stop):
            return tokens.map { token in
                var chars = Array(token)
                var lo = 0, hi = chars.count
                while lo < min(start, chars.count), chars[lo] == content { lo += 1 }
                var removed = 0
                while removed < stop, hi > lo, chars[hi - 1] == content { hi -= 1; removed += 1 }
                chars = Array(chars[lo..<hi])
                return String(chars)
            }
        }
    }

    /// The byte of a "<0xNN>" piece (two upper- or lower-case hex digits), else nil.
    static func byteToken(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }
}
