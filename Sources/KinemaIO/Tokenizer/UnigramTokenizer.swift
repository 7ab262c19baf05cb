import Foundation
import KinemaCore

// The umT5 tokenizer Wan uses for its text encoder: a SentencePiece Unigram model, read either from HF
// `tokenizer.json` (diffusers `tokenizer/`, Wan's `google/umt5-xxl/`) or from `spiece.model`.
//
// The two files do not tokenize identically, and each path reproduces its own reference:
//   - tokenizer.json → the `tokenizers` library (what transformers' T5Tokenizer / WanPipeline run);
//   - spiece.model   → sentencepiece's SentencePieceProcessor.encode.
// transformers' T5 conversion drops byte fallback, splits words on all Unicode whitespace before the
// model, and normalizes per grapheme with the shortest charsmap match, where sentencepiece uses the
// longest; so for e.g. "ｶﾀｶﾅ" or a tab the ids differ. A folder with both files loads tokenizer.json,
// which is what the pipeline reference uses.

/// Which file a tokenizer was read from (and therefore which library's behaviour it reproduces).
public enum TokenizerFormat: String, Sendable {
    /// HF tokenizers `tokenizer.json`.
    case tokenizerJSON
    /// SentencePiece `ModelProto` (`spiece.model`).
    case sentencePiece
}

/// Whether encode adds the model's special tokens (T5: a trailing `</s>`).
public enum SpecialTokensMode: Sendable { case add, omit }

/// Padding of a fixed-length encode.
public enum PaddingMode: Sendable {
    /// No padding: the result is as long as the (possibly truncated) encoding.
    case none
    /// Pad on the right with the pad id up to `maxLength` (attention mask 0 there).
    case maxLength
}

/// Truncation of a fixed-length encode.
public enum TruncationMode: Sendable {
    /// Keep at most `maxLength` ids: the text's ids are cut so that the special tokens still fit, so
    /// `</s>` stays last — what `tokenizer(..., truncation=True)` does.
    case keepSpecialTokens
    /// Never truncate; an encoding longer than `maxLength` is an error.
    case none
}

/// Whether decode drops special tokens (`</s>`, `<pad>`, sentinel tokens) from its output. Applies to
/// tokenizer.json; sentencepiece's own decode always drops CONTROL pieces, and the spiece.model path
/// follows it.
public enum SpecialTokensDecoding: Sendable { case skip, keep }

public final class UnigramTokenizer: Sendable {
    private enum Engine: Sendable {
        case hf(HFUnigramPipeline)
        case spm(SentencePieceEncoder)
    }

    private let engine: Engine
    public let format: TokenizerFormat
    /// Id of `<pad>` (T5: 0), used for padding; nil when the model has none. For tokenizer.json this is
    /// the token spelled `<pad>` (T5/UMT5's pad token; tokenizer_config.json is not read).
    public let padID: Int?
    /// Id of `</s>` (T5: 1), nil when the model has none.
    public let eosID: Int?

    private init(engine: Engine) {
        self.engine = engine
        switch engine {
        case .hf(let p):
            format = .tokenizerJSON
            padID = p.id(of: "<pad>")
            eosID = p.id(of: "</s>")
        case .spm(let e):
            format = .sentencePiece
            padID = e.model.padID >= 0 && e.model.padID < e.model.pieces.count ? e.model.padID : nil
            eosID = e.model.eosID >= 0 && e.model.eosID < e.model.pieces.count ? e.model.eosID : nil
        }
    }

    /// Loads a tokenizer from a folder (tokenizer.json preferred, else spiece.model) or from either file.
    public static func load(_ path: String) throws -> UnigramTokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KinemaError.io(path: path, reason: "no such file or folder")
        }
        if isDirectory.boolValue {
            for (name, format) in [("tokenizer.json", TokenizerFormat.tokenizerJSON), ("spiece.model", .sentencePiece)] {
                let file = (path as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: file) { return try load(file, as: format) }
            }
            throw KinemaError.io(path: path, reason: "folder has neither tokenizer.json nor spiece.model")
        }
        return try load(path, as: path.hasSuffix(".json") ? .tokenizerJSON : .sentencePiece)
    }

    /// Loads `path` as the given format.
    public static func load(_ path: String, as format: TokenizerFormat) throws -> UnigramTokenizer {
        let bytes = try readAll(path)
        switch format {
        case .tokenizerJSON: return UnigramTokenizer(engine: .hf(try HFUnigramPipeline.load(bytes, path: path)))
        case .sentencePiece:
            let model = try SentencePieceModel.parse(bytes, path: path)
            return UnigramTokenizer(engine: .spm(try SentencePieceEncoder(model, path: path)))
        }
    }

    private static func readAll(_ path: String) throws -> [UInt8] {
        let file = try MappedFile(path: path)
        return Array(file.bytes)
    }

    /// Number of token ids (model vocabulary plus added tokens past its end), as `len(tokenizer)`.
    public var vocabularySize: Int {
        switch engine {
        case .hf(let p): return max(p.vocab.count, (p.addedTokens.map(\.id).max() ?? -1) + 1)
        case .spm(let e): return e.model.pieces.count
        }
    }

    /// The ids of `text`, with the special tokens the model's template adds (T5: `</s>` last).
    public func encode(_ text: String, specialTokens: SpecialTokensMode = .add) throws -> [Int] {
        let (prefix, body, suffix) = try encodeParts(text)
        return specialTokens == .add ? prefix + body + suffix : body
    }

    /// Largest `maxLength` a fixed-length encode accepts (umT5 uses 512).
    public static let maximumLength = 1 << 20

    /// Fixed-length encode as WanPipeline calls the tokenizer: `tokenizer(prompt, padding="max_length",
    /// max_length=512, truncation=True, add_special_tokens=True, return_attention_mask=True)`.
    public func encode(_ text: String, maxLength: Int = 512, padding: PaddingMode = .maxLength,
                       truncation: TruncationMode = .keepSpecialTokens,
                       specialTokens: SpecialTokensMode = .add) throws -> (ids: [Int], attentionMask: [Int]) {
        // The cap keeps a typo (or Int.max) from asking for a padding buffer that cannot be allocated.
        guard maxLength > 0, maxLength <= Self.maximumLength else {
            throw KinemaError.invalidArgument("tokenizer: maxLength must be in 1...\(Self.maximumLength), got \(maxLength)")
        }
        var (prefix, body, suffix) = try encodeParts(text)
        if specialTokens == .omit { prefix = []; suffix = [] }
        let specials = prefix.count + suffix.count
        switch truncation {
        case .keepSpecialTokens:
            guard specials <= maxLength else {
                throw KinemaError.invalidArgument("tokenizer: maxLength \(maxLength) cannot hold the \(specials) special tokens")
            }
            if body.count + specials > maxLength { body = Array(body.prefix(maxLength - specials)) }
        case .none:
            guard body.count + specials <= maxLength else {
                throw KinemaError.invalidArgument("tokenizer: \(body.count + specials) ids exceed maxLength \(maxLength) and truncation is off")
            }
        }
        var ids = prefix + body + suffix
        var mask = [Int](repeating: 1, count: ids.count)
        if padding == .maxLength, ids.count < maxLength {
            guard let pad = padID else { throw KinemaError.invalidArgument("tokenizer: padding requested but the model has no <pad> token") }
            mask += [Int](repeating: 0, count: maxLength - ids.count)
            ids += [Int](repeating: pad, count: maxLength - ids.count)
        }
        return (ids, mask)
    }

    private func encodeParts(_ text: String) throws -> ([Int], [Int], [Int]) {
        switch engine {
        case .hf(let p): return (p.prefixIDs, try p.encode(text), p.suffixIDs)
        case .spm(let e): return ([], e.encode(text), eosID.map { [$0] } ?? [])
        }
    }

    /// Text of `ids` (the library's decoder; unknown ids are dropped).
    public func decode(_ ids: [Int], specialTokens: SpecialTokensDecoding = .skip) -> String {
        switch engine {
        case .hf(let p): return p.decode(ids, skipSpecial: specialTokens == .skip)
        case .spm(let e): return e.decode(ids)
        }
    }
}

// MARK: - tokenizers behaviour

extension HFUnigramPipeline {
    /// Id of a special token by its text: the added token, else the model piece.
    func id(of content: String) -> Int? {
        let scalars = Array(content.unicodeScalars)
        return addedTokens.first { $0.content == scalars }?.id ?? pieceToID[content]
    }

    private enum Part { case token(Int), text(AlignedText) }

    /// Splits `text` around the added tokens `tokens` the way AddedVocabulary does: leftmost match,
    /// longest at that position; a single-word token between word characters is skipped (the search
    /// resumes after it); lstrip/rstrip extend the match over whitespace (not into a previous match).
    private static func split(_ text: AlignedText, on tokens: [AddedToken]) -> [Part] {
        let s = text.scalars
        guard !tokens.isEmpty, !s.isEmpty else { return s.isEmpty ? [] : [.text(text)] }
        func isWord(_ c: Unicode.Scalar) -> Bool {
            c.properties.isAlphabetic || c.properties.numericType != nil || c == "_"
        }
        func slice(_ r: Range<Int>) -> AlignedText { AlignedText(Array(s[r]), origins: Array(text.origins[r])) }
        var parts: [Part] = []
        var segmentStart = 0
        var i = 0
        while i < s.count {
            var best: AddedToken?
            for token in tokens where token.content.count > (best?.content.count ?? 0) && token.content.count <= s.count - i {
                if token.content[0] == s[i], s[i..<(i + token.content.count)].elementsEqual(token.content) { best = token }
            }
            guard let best else { i += 1; continue }
            var start = i, stop = i + best.content.count
            if best.singleWord, (start > 0 && isWord(s[start - 1])) || (stop < s.count && isWord(s[stop])) {
                i = stop
                continue
            }
            if best.lstrip { while start > segmentStart, s[start - 1].properties.isWhitespace { start -= 1 } }
            if best.rstrip { while stop < s.count, s[stop].properties.isWhitespace { stop += 1 } }
            if start > segmentStart { parts.append(.text(slice(segmentStart..<start))) }
            parts.append(.token(best.id))
            segmentStart = stop
            i = stop
        }
        if segmentStart < s.count { parts.append(.text(slice(segmentStart..<s.count))) }
        return parts
    }

    /// Ids of `text` without the post-processor's special tokens.
    func encode(_ text: String) throws -> [Int] {
        let raw = AlignedText(Array(text.unicodeScalars), base: 0)
        var ids: [Int] = []
        for part in Self.split(raw, on: addedTokens.filter { !$0.normalized }) {
            switch part {
            case .token(let id): ids.append(id)
            case .text(let segment): try encodeSegment(segment, into: &ids)
            }
        }
        return ids
    }

    private func encodeSegment(_ segment: AlignedText, into ids: inout [Int]) throws {
        var text = segment
        for step in normalizers { text = step.apply(text) }
        for part in Self.split(text, on: addedTokens.filter(\.normalized)) {
            switch part {
            case .token(let id): ids.append(id)
            case .text(let normalized):
                var pieces = [normalized]
                for step in preTokenizers { pieces = step.apply(pieces) }
                for piece in pieces where !piece.scalars.isEmpty {
                    try tokenize(Array(String(String.UnicodeScalarView(piece.scalars)).utf8), into: &ids)
                }
            }
        }
    }

    /// Unigram model on one pre-token (models/unigram/model.rs tokenize): consecutive unknown nodes are
    /// fused into one string, which then maps to its piece, its byte pieces, or unk.
    private func tokenize(_ bytes: [UInt8], into ids: inout [Int]) throws {
        let unkScore = minScore - 10.0
        let segments = bytes.withUnsafeBufferPointer { buffer in
            UnigramLattice.viterbi(buffer, trie: trie, unkScore: unkScore) { vocab[$0].score }
        }
        var k = 0
        while k < segments.count {
            if let id = segments[k].id, id != unkID { ids.append(id); k += 1; continue }
            var end = k
            while end + 1 < segments.count, segments[end + 1].id == nil || segments[end + 1].id == unkID { end += 1 }
            let text = String(decoding: bytes[segments[k].start..<segments[end].end], as: UTF8.self)
            k = end + 1
            if let id = pieceToID[text] { ids.append(id); continue }
            if byteFallback {
                let byteIDs = text.utf8.map { pieceToID[String(format: "<0x%02X>", $0)] }
                if byteIDs.allSatisfy({ $0 != nil }) { ids += byteIDs.compactMap { $0 }; continue }
            }
            guard let unkID else { throw KinemaError.invalidArgument("tokenizer: text has a character outside the vocabulary and the model has no unk_id") }
            ids.append(unkID)
        }
    }

    func decode(_ ids: [Int], skipSpecial: Bool) -> String {
        let special = Set(addedTokens.filter(\.special).map(\.id))
        var addedByID: [Int: String] = [:]
        for t in addedTokens { addedByID[t.id] = t.text }
        var tokens: [String] = []
        for id in ids {
            if skipSpecial, special.contains(id) { continue }
            if let t = addedByID[id] { tokens.append(t) } else if id >= 0, id < vocab.count { tokens.append(vocab[id].piece) }
        }
        for step in decoders { tokens = step.apply(tokens) }
        return tokens.joined()
    }
}
