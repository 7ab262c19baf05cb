import KinemaCore

// sentencepiece's own encode/decode for a Unigram `spiece.model`: src/normalizer.cc (Normalize with
// the precompiled charsmap, longest match, dummy prefix, extra-whitespace removal, "▁" escaping),
// src/unigram_model.cc (EncodeOptimized, f32 scores, unk = min NORMAL score − 10, USER_DEFINED pieces
// scored length·max − 0.1, UNUSED pieces skipped) and src/sentencepiece_processor.cc (unknown pieces
// consecutive unknown characters fused into one unknown piece, decomposed into <0xNN> byte pieces
// when byte_fallback is on).

struct SentencePieceEncoder: Sendable {
    let model: SentencePieceModel
    private let charsMap: PrecompiledCharsMap?
    private let trie: PieceTrie
    private let minScore: Float
    private let maxScore: Float
    private let byteIDs: [Int?]
    /// USER_DEFINED pieces as UTF-8, longest first: they pass through normalization unchanged.
    private let userDefined: [[UInt8]]

    static let space: [UInt8] = Array("\u{2581}".utf8)

    init(_ model: SentencePieceModel, path: String) throws {
        self.model = model
        charsMap = model.charsMap.isEmpty ? nil
            : try PrecompiledCharsMap(model.charsMap, path: path, location: "normalizer_spec.precompiled_charsmap")
        var trie = PieceTrie(byteCapacity: model.pieces.reduce(0) { $0 + $1.text.utf8.count })
        var minScore = Float.greatestFiniteMagnitude
        var maxScore = Float.leastNormalMagnitude
        var byteIDs = [Int?](repeating: nil, count: 256)
        var user: [[UInt8]] = []
        for (id, piece) in model.pieces.enumerated() {
            switch piece.type {
            case .normal:
                minScore = min(minScore, piece.score)
                maxScore = max(maxScore, piece.score)
                trie.insert(piece.text, id: id)
            case .userDefined:
                trie.insert(piece.text, id: id)
                user.append(Array(piece.text.utf8))
            case .unused:
                trie.insert(piece.text, id: id)
            case .byte:
                guard let b = DecoderStep.byteToken(piece.text) else {
                    throw KinemaError.badFile(path: path, location: "piece \(id)", reason: "BYTE piece '\(piece.text)' is not of the form <0xNN>")
                }
                byteIDs[Int(b)] = id
            case .unknown, .control:
                break
            }
        }
        if model.byteFallback, byteIDs.contains(where: { $0 == nil }) {
            throw KinemaError.badFile(path: path, location: "trainer_spec.byte_fallback", reason: "byte_fallback is on but not all 256 <0xNN> pieces exist")
        }
        self.trie = trie
        self.minScore = minScore
        self.maxScore = maxScore
        self.byteIDs = byteIDs
        self.userDefined = user.sorted { $0.count > $1.count }
    }

    // MARK: normalization

    /// One normalization step at `i`: the replacement bytes and how many input bytes they consume.
    private func normalizePrefix(_ input: UnsafeBufferPointer<UInt8>, at i: Int) -> (ArraySlice<UInt8>, Int) {
        for u in userDefined where u.count <= input.count - i && input[i..<(i + u.count)].elementsEqual(u) {
            return (ArraySlice(input[i..<(i + u.count)]), u.count)
        }
        if let charsMap, let m = charsMap.longest(input, from: i, to: input.count) { return (m.replacement, m.length) }
        // No rule: copy one character, or emit U+FFFD for one malformed byte.
        let length = Self.validCharLength(input, at: i)
        if length == 0 { return ([0xEF, 0xBF, 0xBD], 1) }
        return (Array(input[i..<(i + length)])[...], length)
    }

    /// Byte length of the valid UTF-8 character at `i`, or 0 when malformed (input from Swift strings
    /// is valid, but charsmap output is not trusted).
    private static func validCharLength(_ s: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
        let n = UnigramLattice.charLength(s[i])
        guard i + n <= s.count else { return 0 }
        if n == 1 { return s[i] < 0x80 ? 1 : 0 }
        for k in 1..<n where s[i + k] & 0xC0 != 0x80 { return 0 }
        return String(validating: s[i..<(i + n)], as: UTF8.self) == nil ? 0 : n
    }

    func normalize(_ text: String) -> [UInt8] {
        let input = Array(text.utf8)
        return input.withUnsafeBufferPointer { buf -> [UInt8] in
            var i = 0
            if model.removeExtraWhitespaces {
                while i < buf.count {
                    let (rep, used) = normalizePrefix(buf, at: i)
                    guard rep.elementsEqual([0x20]) else { break }
                    i += used
                }
            }
            guard i < buf.count else { return [] }
            var out: [UInt8] = []
            let spaceOut: [UInt8] = model.escapeWhitespaces ? Self.space : [0x20]
            if model.addDummyPrefix { out += spaceOut }
            var previousSpace = model.removeExtraWhitespaces
            while i < buf.count {
                let (rep, used) = normalizePrefix(buf, at: i)
                var piece = rep[...]
                while previousSpace, piece.first == 0x20 { piece = piece.dropFirst() }
                if !piece.isEmpty {
                    for b in piece { if b == 0x20 { out += spaceOut } else { out.append(b) } }
                    previousSpace = piece.last == 0x20
                }
                i += used
                if !model.removeExtraWhitespaces { previousSpace = false }
            }
            if model.removeExtraWhitespaces {
                while out.count >= spaceOut.count, out.suffix(spaceOut.count).elementsEqual(spaceOut) { out.removeLast(spaceOut.count) }
            }
            return out
        }
    }

    // MARK: encode / decode

    func encode(_ text: String) -> [Int] {
        let normalized = normalize(text)
        let unkScore = minScore - 10
        let segments = normalized.withUnsafeBufferPointer { buf in
            UnigramLattice.viterbi(buf, trie: trie, unkScore: unkScore) { id -> Float? in
                let piece = model.pieces[id]
                switch piece.type {
                case .unused: return nil
                case .userDefined: return Float(piece.text.utf8.count) * maxScore - 0.1
                default: return piece.score
                }
            }
        }
        // Consecutive unknown characters form one unknown piece (one unk id, or all their bytes).
        var ids: [Int] = []
        var k = 0
        while k < segments.count {
            if let id = segments[k].id { ids.append(id); k += 1; continue }
            var end = k
            while end + 1 < segments.count, segments[end + 1].id == nil { end += 1 }
            if model.byteFallback {
                ids += normalized[segments[k].start..<segments[end].end].compactMap { byteIDs[Int($0)] }
            } else {
                ids.append(model.unkID)
            }
            k = end + 1
        }
        return ids
    }

    /// SentencePieceProcessor.decode: control pieces vanish, unknown pieces read " ⁇ ", runs of byte
    /// pieces are decoded as UTF-8 (U+FFFD per malformed byte), "▁" becomes a space and the leading
    /// space (the dummy prefix; all leading spaces under remove_extra_whitespaces) is dropped.
    func decode(_ ids: [Int]) -> String {
        var out: [UInt8] = []
        var pendingBytes: [UInt8] = []
        var atBeginning = true
        func emit(_ bytes: [UInt8]) {
            var b = bytes[...]
            if atBeginning, model.addDummyPrefix || model.removeExtraWhitespaces, b.starts(with: Self.space) { b = b.dropFirst(Self.space.count) }
            var k = b.startIndex
            while k < b.endIndex {
                if b[k...].starts(with: Self.space) { out.append(0x20); k += Self.space.count } else { out.append(b[k]); k += 1 }
            }
            // With remove_extra_whitespaces sentencepiece keeps stripping while nothing has been output yet
            // (all leading whitespace goes); otherwise only the first piece's dummy prefix is removed.
            if !model.removeExtraWhitespaces || !out.isEmpty { atBeginning = false }
        }
        func flushBytes() {
            guard !pendingBytes.isEmpty else { return }
            if String(validating: pendingBytes, as: UTF8.self) != nil { emit(pendingBytes) } else {
                emit(Array(String(decoding: pendingBytes, as: UTF8.self).utf8))
            }
            pendingBytes = []
        }
        for id in ids where id >= 0 && id < model.pieces.count {
            let piece = model.pieces[id]
            if piece.type == .byte, let b = DecoderStep.byteToken(piece.text) { pendingBytes.append(b); continue }
            flushBytes()
            switch piece.type {
            case .control: continue
            case .unknown: emit(Array(" \u{2047} ".utf8))
            default: emit(Array(piece.text.utf8))
            }
        }
        flushBytes()
        return String(decoding: out, as: UTF8.self)
    }
}
