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

enum NormalizerStep: Sendable {
    case precompiled(PrecompiledCharsMap)
    case strip(left: Bool, right: Bool)
    case replace(ReplacePattern, with: [Unicode.Scalar])
    case prepend([Unicode.Scalar])
    case nfkc
    case nfc

    func apply(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .precompiled(let map): return Self.precompiled(text, map)
        case let .strip(left, right):
            var lo = 0, hi = text.count
            if left { while lo < hi, text[lo].properties.isWhitespace { lo += 1 } }
            if right { while hi > lo, text[hi - 1].properties.isWhitespace { hi -= 1 } }
            return Array(text[lo..<hi])
        case let .replace(pattern, content):
            var out: [Unicode.Scalar] = []
            var i = 0
            while i < text.count {
                let length: Int?
                switch pattern {
                case .literal(let lit):
                    length = !lit.isEmpty && i + lit.count <= text.count && Array(text[i..<(i + lit.count)]) == lit ? lit.count : nil
                case .regex(let re): length = re.match(text, at: i)
                }
                if let length {
                    out += content
                    if length == 0 { out.append(text[i]); i += 1 } else { i += length }
                } else {
                    out.append(text[i]); i += 1
                }
            }
            // An empty match at the very end (e.g. "\z" alone) also inserts the content.
            if case .regex(let re) = pattern, re.match(text, at: text.count) == 0 { out += content }
            return out
        case .prepend(let p): return text.isEmpty ? text : p + text
        case .nfkc: return Array(String(String.UnicodeScalarView(text)).precomposedStringWithCompatibilityMapping.unicodeScalars)
        case .nfc: return Array(String(String.UnicodeScalarView(text)).precomposedStringWithCanonicalMapping.unicodeScalars)
        }
    }

    /// tokenizers' Precompiled normalizer: per extended grapheme cluster shorter than 6 bytes, the
    /// SHORTEST charsmap key that prefixes the cluster replaces the WHOLE cluster; otherwise each scalar
    /// is looked up on its own. (This differs from sentencepiece's longest-match; both are reproduced.)
    private static func precompiled(_ text: [Unicode.Scalar], _ map: PrecompiledCharsMap) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        func decode(_ bytes: ArraySlice<UInt8>) -> [Unicode.Scalar] {
            Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        }
        for grapheme in String(String.UnicodeScalarView(text)) {
            let bytes = Array(grapheme.utf8)
            if bytes.count < 6, let rep = bytes.withUnsafeBufferPointer({ map.shortest($0, from: 0, to: $0.count) }) {
                out += decode(rep)
                continue
            }
            for scalar in grapheme.unicodeScalars {
                let sb = Array(String(scalar).utf8)
                if let rep = sb.withUnsafeBufferPointer({ map.shortest($0, from: 0, to: $0.count) }) {
                    out += decode(rep)
                } else {
                    out.append(scalar)
                }
            }
        }
        return out
    }
}

/// Metaspace's prepend_scheme.
enum PrependScheme: String, Sendable { case always, first, never }

enum PreTokenizerStep: Sendable {
    case whitespaceSplit
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme, split: Bool)

    /// A piece of text plus whether it begins at offset 0 of the original input (Metaspace "first").
    struct Piece { var text: [Unicode.Scalar]; var atStart: Bool }

    func apply(_ pieces: [Piece]) -> [Piece] {
        var out: [Piece] = []
        for piece in pieces {
            switch self {
            case .whitespaceSplit:
                var current: [Unicode.Scalar] = []
                var startedAtZero = piece.atStart
                for scalar in piece.text {
                    if scalar.properties.isWhitespace {
                        if !current.isEmpty { out.append(Piece(text: current, atStart: startedAtZero)); current = [] }
                        startedAtZero = false
                    } else {
                        current.append(scalar)
                    }
                }
                if !current.isEmpty { out.append(Piece(text: current, atStart: startedAtZero)) }
            case let .metaspace(replacement, prepend, split):
                guard !piece.text.isEmpty else { continue }
                var text = piece.text.map { $0 == " " ? replacement : $0 }
                let wantsPrefix: Bool
                switch prepend {
                case .always: wantsPrefix = true
                case .first: wantsPrefix = piece.atStart
                case .never: wantsPrefix = false
                }
                if wantsPrefix, text.first != replacement { text.insert(replacement, at: 0) }
                guard split else { out.append(Piece(text: text, atStart: piece.atStart)); continue }
                // MergedWithNext: each replacement character starts a new piece.
                var current: [Unicode.Scalar] = []
                var first = true
                for scalar in text {
                    if scalar == replacement, !current.isEmpty {
                        out.append(Piece(text: current, atStart: piece.atStart && first)); current = []; first = false
                    }
                    current.append(scalar)
                }
                if !current.isEmpty { out.append(Piece(text: current, atStart: piece.atStart && first)) }
            }
        }
        return out
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
