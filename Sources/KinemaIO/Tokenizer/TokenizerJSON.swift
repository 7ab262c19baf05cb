import Foundation
import KinemaCore

// HF `tokenizer.json` with a Unigram model, as transformers writes it for T5/UMT5 (convert_slow_tokenizer
// T5Converter / SpmConverter) and as diffusers' Wan `tokenizer/` folders ship it. Matches the behaviour of
// the `tokenizers` library (tokenizer/mod.rs encode pipeline, added_vocabulary.rs, models/unigram):
//
//   raw text → split out added tokens (leftmost-longest, on the raw text) → per remaining segment:
//   normalizer → pre-tokenizer → Unigram Viterbi per piece (unknowns fused, optional byte fallback)
//   → post-processor template (T5: append </s>).
//
// Only the component types SentencePiece-derived files use are accepted; any other type is a
// `.unsupported` error at load time rather than a silent mis-tokenization.

struct HFUnigramPipeline: Sendable {
    /// An `added_tokens` entry. `normalized` ones match the normalized text of each segment, the others
    /// the raw input; `lstrip`/`rstrip` swallow neighbouring whitespace; `singleWord` only matches
    /// between non-word characters.
    struct AddedToken: Sendable {
        var id: Int
        var content: [Unicode.Scalar]
        var special: Bool
        var normalized: Bool
        var lstrip: Bool
        var rstrip: Bool
        var singleWord: Bool
        var text: String { String(String.UnicodeScalarView(content)) }
    }

    var vocab: [(piece: String, score: Double)]
    var unkID: Int?
    var byteFallback: Bool
    var trie: PieceTrie
    var pieceToID: [String: Int]
    var minScore: Double
    var normalizers: [NormalizerStep]
    var preTokenizers: [PreTokenizerStep]
    var decoders: [DecoderStep]
    var addedTokens: [AddedToken]
    /// Ids the post-processor puts before and after a single sequence.
    var prefixIDs: [Int]
    var suffixIDs: [Int]

    // MARK: loading

    static func load(_ bytes: [UInt8], path: String) throws -> HFUnigramPipeline {
        let root = try bytes.withUnsafeBytes { try StrictJSONParser.parse($0, path: path, fileOffset: 0, what: "tokenizer.json") }
        let r = JSONReader(path: path)
        let top = try r.object(root, "tokenizer.json")
        guard let modelValue = r.member(top, "model") else { throw r.fail("model", "no \"model\" object") }
        let model = try r.object(modelValue, "model")
        let type = try r.string(r.required(model, "type", "model"), "model.type")
        guard type == "Unigram" else { throw KinemaError.unsupported("\(path): model.type \"\(type)\" (only Unigram is supported)") }

        guard let vocabValue = r.member(model, "vocab") else { throw r.fail("model.vocab", "missing") }
        guard case .array(let entries) = vocabValue else { throw r.fail("model.vocab", "expected an array, found \(vocabValue.typeName)") }
        guard !entries.isEmpty else { throw r.fail("model.vocab", "is empty") }
        var vocab: [(piece: String, score: Double)] = []
        vocab.reserveCapacity(entries.count)
        let byteCapacity = entries.reduce(0) { total, entry in
            if case .array(let pair) = entry, case .string(let piece)? = pair.first { return total + piece.utf8.count }
            return total
        }
        var trie = PieceTrie(byteCapacity: byteCapacity)
        var pieceToID: [String: Int] = [:]
        pieceToID.reserveCapacity(entries.count)
        var minScore = Double.infinity
        for (i, entry) in entries.enumerated() {
            let at = "model.vocab[\(i)]"
            guard case .array(let pair) = entry, pair.count == 2 else { throw r.fail(at, "expected a [piece, score] pair, found \(entry.typeName)") }
            let piece = try r.string(pair[0], at + "[0]")
            guard case .number(let text) = pair[1], let score = Double(text), score.isFinite else {
                throw r.fail(at + "[1]", "score must be a finite number, found \(pair[1].typeName)")
            }
            vocab.append((piece, score))
            trie.insert(piece, id: i)
            pieceToID[piece] = i
            minScore = min(minScore, score)
        }

        var unkID: Int?
        if let u = r.member(model, "unk_id"), !u.isNull {
            let id = try r.int(u, "model.unk_id")
            guard id >= 0, id < vocab.count else { throw r.fail("model.unk_id", "\(id) is outside the vocabulary (0..<\(vocab.count))") }
            unkID = id
        }
        var byteFallback = false
        if let b = r.member(model, "byte_fallback"), !b.isNull { byteFallback = try r.bool(b, "model.byte_fallback") }

        var added: [AddedToken] = []
        if let a = r.member(top, "added_tokens"), !a.isNull {
            guard case .array(let items) = a else { throw r.fail("added_tokens", "expected an array, found \(a.typeName)") }
            for (i, item) in items.enumerated() {
                let at = "added_tokens[\(i)]"
                let o = try r.object(item, at)
                let id = try r.int(r.required(o, "id", at), at + ".id")
                let content = try r.string(r.required(o, "content", at), at + ".content")
                guard id >= 0, id < 1 << 31 else { throw r.fail(at + ".id", "\(id) is not a valid token id") }
                guard !content.isEmpty else { throw r.fail(at + ".content", "is empty") }
                func flag(_ key: String, _ fallback: Bool) throws -> Bool {
                    try r.member(o, key).map { try r.bool($0, "\(at).\(key)") } ?? fallback
                }
                let special = try flag("special", false)
                // tokenizers never normalizes special tokens, whatever the file says.
                let normalized = try flag("normalized", !special) && !special
                added.append(AddedToken(id: id, content: Array(content.unicodeScalars), special: special, normalized: normalized,
                                        lstrip: try flag("lstrip", false), rstrip: try flag("rstrip", false),
                                        singleWord: try flag("single_word", false)))
            }
        }

        let normalizers = try r.member(top, "normalizer").map { try parseNormalizer($0, "normalizer", r) } ?? []
        let pre = try r.member(top, "pre_tokenizer").map { try parsePreTokenizer($0, "pre_tokenizer", r) } ?? []
        let decoders = try r.member(top, "decoder").map { try parseDecoder($0, "decoder", r) } ?? []
        var prefix: [Int] = [], suffix: [Int] = []
        if let p = r.member(top, "post_processor"), !p.isNull { (prefix, suffix) = try parseTemplate(p, r) }

        return HFUnigramPipeline(vocab: vocab, unkID: unkID, byteFallback: byteFallback, trie: trie, pieceToID: pieceToID,
                                 minScore: minScore, normalizers: normalizers, preTokenizers: pre, decoders: decoders,
                                 addedTokens: added, prefixIDs: prefix, suffixIDs: suffix)
    }

    private static func parseNormalizer(_ v: JSONValue, _ at: String, _ r: JSONReader) throws -> [NormalizerStep] {
        if v.isNull { return [] }
        let o = try r.object(v, at)
        let type = try r.string(r.required(o, "type", at), at + ".type")
        switch type {
        case "Sequence":
            guard case .array(let items)? = r.member(o, "normalizers") else { throw r.fail(at + ".normalizers", "expected an array") }
            return try items.enumerated().flatMap { try parseNormalizer($1, "\(at).normalizers[\($0)]", r) }
        case "Precompiled":
            let b64 = try r.string(r.required(o, "precompiled_charsmap", at), at + ".precompiled_charsmap")
            // An empty charsmap is how converters say "no normalization rules".
            if b64.isEmpty { return [] }
            guard let data = Data(base64Encoded: b64) else { throw r.fail(at + ".precompiled_charsmap", "is not valid base64") }
            return [.precompiled(try PrecompiledCharsMap(Array(data), path: r.path, location: at + ".precompiled_charsmap"))]
        case "Strip":
            let left = try r.member(o, "strip_left").map { try r.bool($0, at + ".strip_left") } ?? true
            let right = try r.member(o, "strip_right").map { try r.bool($0, at + ".strip_right") } ?? true
            return [.strip(left: left, right: right)]
        case "Replace":
            let content = try r.string(r.required(o, "content", at), at + ".content")
            return [.replace(try parsePattern(r.required(o, "pattern", at), at + ".pattern", r), with: Array(content.unicodeScalars))]
        case "Prepend":
            return [.prepend(Array(try r.string(r.required(o, "prepend", at), at + ".prepend").unicodeScalars))]
        case "NFKC": return [.nfkc]
        case "NFC": return [.nfc]
        default: throw KinemaError.unsupported("\(r.path): \(at): normalizer type \"\(type)\"")
        }
    }

    private static func parsePattern(_ v: JSONValue, _ at: String, _ r: JSONReader) throws -> ReplacePattern {
        let o = try r.object(v, at)
        if let s = r.member(o, "String") {
            let lit = try r.string(s, at + ".String")
            guard !lit.isEmpty else { throw r.fail(at + ".String", "is empty") }
            return .literal(Array(lit.unicodeScalars))
        }
        if let s = r.member(o, "Regex") {
            let source = try r.string(s, at + ".Regex")
            guard let re = SimpleRegex(source) else {
                throw KinemaError.unsupported("\(r.path): \(at): regex \"\(source)\" (only repeated single characters with \\A / \\z anchors)")
            }
            return .regex(re)
        }
        throw r.fail(at, "expected {\"String\": …} or {\"Regex\": …}")
    }

    private static func metaspace(_ o: [JSONMember], _ at: String, _ r: JSONReader) throws -> (Unicode.Scalar, PrependScheme, Bool) {
        let rep = try r.string(r.required(o, "replacement", at), at + ".replacement").unicodeScalars
        guard rep.count == 1, let scalar = rep.first else { throw r.fail(at + ".replacement", "must be one character") }
        var scheme = PrependScheme.always
        if let p = r.member(o, "prepend_scheme"), !p.isNull {
            let name = try r.string(p, at + ".prepend_scheme")
            guard let s = PrependScheme(rawValue: name) else { throw r.fail(at + ".prepend_scheme", "unknown scheme \"\(name)\"") }
            scheme = s
        } else if let a = r.member(o, "add_prefix_space"), !a.isNull {
            // Files from tokenizers < 0.14 carry only add_prefix_space.
            scheme = try r.bool(a, at + ".add_prefix_space") ? .always : .never
        }
        let split = try r.member(o, "split").map { try r.bool($0, at + ".split") } ?? true
        return (scalar, scheme, split)
    }

    private static func parsePreTokenizer(_ v: JSONValue, _ at: String, _ r: JSONReader) throws -> [PreTokenizerStep] {
        if v.isNull { return [] }
        let o = try r.object(v, at)
        let type = try r.string(r.required(o, "type", at), at + ".type")
        switch type {
        case "Sequence":
            guard case .array(let items)? = r.member(o, "pretokenizers") else { throw r.fail(at + ".pretokenizers", "expected an array") }
            return try items.enumerated().flatMap { try parsePreTokenizer($1, "\(at).pretokenizers[\($0)]", r) }
        case "WhitespaceSplit": return [.whitespaceSplit]
        case "Split":
            let po = try r.object(r.required(o, "pattern", at), at + ".pattern")
            let pattern: LiteralAlternation
            if let lit = r.member(po, "String") {
                let text = try r.string(lit, at + ".pattern.String")
                guard !text.isEmpty else { throw r.fail(at + ".pattern.String", "is empty") }
                pattern = LiteralAlternation(literal: text)
            } else if let re = r.member(po, "Regex") {
                let source = try r.string(re, at + ".pattern.Regex")
                guard let p = LiteralAlternation(regex: source) else {
                    throw KinemaError.unsupported("\(r.path): \(at): Split regex \"\(source)\" (only alternations of literal text)")
                }
                pattern = p
            } else {
                throw r.fail(at + ".pattern", "expected {\"String\": …} or {\"Regex\": …}")
            }
            let name = try r.string(r.required(o, "behavior", at), at + ".behavior")
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw KinemaError.unsupported("\(r.path): \(at): Split behavior \"\(name)\"")
            }
            if let inv = r.member(o, "invert"), try r.bool(inv, at + ".invert") {
                throw KinemaError.unsupported("\(r.path): \(at): Split with invert = true")
            }
            return [.split(pattern, behavior)]
        case "Metaspace":
            let (rep, scheme, split) = try metaspace(o, at, r)
            return [.metaspace(replacement: rep, prepend: scheme, split: split)]
        default: throw KinemaError.unsupported("\(r.path): \(at): pre-tokenizer type \"\(type)\"")
        }
    }

    private static func parseDecoder(_ v: JSONValue, _ at: String, _ r: JSONReader) throws -> [DecoderStep] {
        if v.isNull { return [] }
        let o = try r.object(v, at)
        let type = try r.string(r.required(o, "type", at), at + ".type")
        switch type {
        case "Sequence":
            guard case .array(let items)? = r.member(o, "decoders") else { throw r.fail(at + ".decoders", "expected an array") }
            return try items.enumerated().flatMap { try parseDecoder($1, "\(at).decoders[\($0)]", r) }
        case "Metaspace":
            let (rep, scheme, _) = try metaspace(o, at, r)
            return [.metaspace(replacement: rep, prepend: scheme)]
        case "Replace":
            let po = try r.object(r.required(o, "pattern", at), at + ".pattern")
            guard let s = r.member(po, "String") else { throw KinemaError.unsupported("\(r.path): \(at): decoder Replace with a regex pattern") }
            return [.replace(pattern: try r.string(s, at + ".pattern.String"), content: try r.string(r.required(o, "content", at), at + ".content"))]
        case "ByteFallback": return [.byteFallback]
        case "Fuse": return [.fuse]
        case "Strip":
            let content = try r.string(r.required(o, "content", at), at + ".content")
            guard content.count == 1, let c = content.first else { throw r.fail(at + ".content", "must be one character") }
            let start = try r.int(r.required(o, "start", at), at + ".start")
            let stop = try r.int(r.required(o, "stop", at), at + ".stop")
            guard start >= 0, stop >= 0 else { throw r.fail(at, "start/stop must not be negative") }
            return [.strip(content: c, start: start, stop: stop)]
        default: throw KinemaError.unsupported("\(r.path): \(at): decoder type \"\(type)\"")
        }
    }

    /// TemplateProcessing's `single` template: ids of the special tokens before and after `$A`.
    private static func parseTemplate(_ v: JSONValue, _ r: JSONReader) throws -> ([Int], [Int]) {
        let at = "post_processor"
        let o = try r.object(v, at)
        let type = try r.string(r.required(o, "type", at), at + ".type")
        guard type == "TemplateProcessing" else { throw KinemaError.unsupported("\(r.path): post_processor type \"\(type)\"") }
        guard case .array(let single)? = r.member(o, "single") else { throw r.fail(at + ".single", "expected an array") }
        let specials = try r.object(r.required(o, "special_tokens", at), at + ".special_tokens")
        var prefix: [Int] = [], suffix: [Int] = []
        var sawSequence = false
        for (i, item) in single.enumerated() {
            let pieceAt = "\(at).single[\(i)]"
            let piece = try r.object(item, pieceAt)
            if let s = r.member(piece, "Sequence") {
                let id = try r.string(r.required(r.object(s, pieceAt + ".Sequence"), "id", pieceAt), pieceAt + ".Sequence.id")
                guard id == "A", !sawSequence else { throw r.fail(pieceAt, "single template must hold sequence A once") }
                sawSequence = true
            } else if let s = r.member(piece, "SpecialToken") {
                let name = try r.string(r.required(r.object(s, pieceAt + ".SpecialToken"), "id", pieceAt), pieceAt + ".SpecialToken.id")
                guard let entry = r.member(specials, name) else { throw r.fail(pieceAt, "special token \"\(name)\" is not in special_tokens") }
                guard case .array(let idValues)? = r.member(try r.object(entry, "\(at).special_tokens.\(name)"), "ids") else {
                    throw r.fail("\(at).special_tokens.\(name).ids", "expected an array")
                }
                let ids = try idValues.map { try r.int($0, "\(at).special_tokens.\(name).ids") }
                if sawSequence { suffix += ids } else { prefix += ids }
            } else {
                throw r.fail(pieceAt, "expected Sequence or SpecialToken")
            }
        }
        guard sawSequence else { throw r.fail(at + ".single", "template has no $A") }
        return (prefix, suffix)
    }
}

/// Small typed accessors over `JSONValue` whose errors name the file and the JSON path.
struct JSONReader {
    let path: String

    func fail(_ at: String, _ reason: String) -> KinemaError { .badFile(path: path, location: at, reason: reason) }

    func object(_ v: JSONValue, _ at: String) throws -> [JSONMember] {
        guard case .object(let members) = v else { throw fail(at, "expected an object, found \(v.typeName)") }
        return members
    }

    func member(_ o: [JSONMember], _ key: String) -> JSONValue? { o.first { $0.key == key }?.value }

    func required(_ o: [JSONMember], _ key: String, _ at: String) throws -> JSONValue {
        guard let v = member(o, key) else { throw fail(at, "missing \"\(key)\"") }
        return v
    }

    func string(_ v: JSONValue, _ at: String) throws -> String {
        guard case .string(let s) = v else { throw fail(at, "expected a string, found \(v.typeName)") }
        return s
    }

    func bool(_ v: JSONValue, _ at: String) throws -> Bool {
        guard case .bool(let b) = v else { throw fail(at, "expected a boolean, found \(v.typeName)") }
        return b
    }

    func int(_ v: JSONValue, _ at: String) throws -> Int {
        guard case .number(let text) = v, let n = JSONText.exactInteger(text) else { throw fail(at, "expected an integer, found \(v.typeName)") }
        return n
    }
}

extension JSONValue {
    var isNull: Bool { if case .null = self { return true } else { return false } }
}
