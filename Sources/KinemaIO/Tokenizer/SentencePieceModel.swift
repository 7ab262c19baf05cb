import KinemaCore

// SentencePiece `ModelProto` (spiece.model), read with a small protobuf wire-format reader.
// Matches the fields of sentencepiece src/sentencepiece_model.proto that encoding needs; unknown fields
// are skipped, as protobuf requires. Field numbers: ModelProto{1 pieces, 2 trainer_spec,
// 3 normalizer_spec}; SentencePiece{1 piece, 2 score (float), 3 type}; TrainerSpec{3 model_type,
// 35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id}; NormalizerSpec{1 name,
// 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces, 5 escape_whitespaces}.
//
// Invariants: every length and varint is bounds-checked against the enclosing message; nesting is at
// most two levels (no recursion driven by the file); errors name the file, the field and the offset.

/// Protobuf wire reader over one message's bytes. Offsets in errors are absolute file offsets.
struct ProtobufReader {
    enum Wire: Equatable { case varint(UInt64), fixed64(UInt64), bytes(Range<Int>), fixed32(UInt32) }

    private let bytes: [UInt8]
    private let path: String
    private(set) var position: Int
    private let end: Int

    init(_ bytes: [UInt8], range: Range<Int>, path: String) {
        self.bytes = bytes
        self.path = path
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var atEnd: Bool { position >= end }

    private func fail(_ reason: String, at offset: Int) -> KinemaError {
        .badFile(path: path, location: "byte \(offset)", reason: reason)
    }

    private mutating func varint(what: String) throws -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail("\(what): varint runs past the end of its message (truncated)", at: start) }
            let byte = bytes[position]
            position += 1
            guard shift < 64 else { throw fail("\(what): varint longer than 10 bytes", at: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// The next (field number, value, offset of the tag), or nil at the end of the message.
    mutating func next() throws -> (field: Int, value: Wire, offset: Int)? {
        guard position < end else { return nil }
        let tagOffset = position
        let tag = try varint(what: "field tag")
        let field = Int(truncatingIfNeeded: tag >> 3)
        guard field > 0, field < (1 << 29) else { throw fail("invalid protobuf field number \(tag >> 3)", at: tagOffset) }
        switch tag & 7 {
        case 0:
            return (field, .varint(try varint(what: "field \(field)")), tagOffset)
        case 1:
            guard end - position >= 8 else { throw fail("field \(field): 8-byte value runs past the end (truncated)", at: tagOffset) }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[position + k]) << (8 * UInt64(k)) }
            position += 8
            return (field, .fixed64(v), tagOffset)
        case 2:
            let length = try varint(what: "field \(field) length")
            guard length <= UInt64(end - position) else {
                throw fail("field \(field): length \(length) runs past the end of its message (\(end - position) bytes left; truncated?)", at: tagOffset)
            }
            let range = position..<(position + Int(length))
            position = range.upperBound
            return (field, .bytes(range), tagOffset)
        case 5:
            guard end - position >= 4 else { throw fail("field \(field): 4-byte value runs past the end (truncated)", at: tagOffset) }
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(bytes[position + k]) << (8 * UInt32(k)) }
            position += 4
            return (field, .fixed32(v), tagOffset)
        default:
            throw fail("field \(field): unsupported protobuf wire type \(tag & 7) (groups are not used by SentencePiece)", at: tagOffset)
        }
    }
}

/// The parts of a SentencePiece model that encoding and decoding use.
struct SentencePieceModel: Sendable {
    /// sentencepiece ModelProto.SentencePiece.Type.
    enum PieceType: Int, Sendable { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    struct Piece: Sendable {
        var text: String
        var score: Float
        var type: PieceType
    }

    var pieces: [Piece] = []
    /// TrainerSpec.model_type: 1 = UNIGRAM (the only one supported here).
    var modelType = 1
    var byteFallback = false
    var unkID = 0
    var bosID = 1
    var eosID = 2
    var padID = -1
    var normalizerName = ""
    var charsMap: [UInt8] = []
    var addDummyPrefix = true
    var removeExtraWhitespaces = true
    var escapeWhitespaces = true

    static func parse(_ bytes: [UInt8], path: String) throws -> SentencePieceModel {
        var model = SentencePieceModel()
        var top = ProtobufReader(bytes, range: 0..<bytes.count, path: path)
        func fail(_ reason: String, _ offset: Int) -> KinemaError { .badFile(path: path, location: "byte \(offset)", reason: reason) }
        func text(_ range: Range<Int>, _ what: String, _ offset: Int) throws -> String {
            guard let s = String(validating: bytes[range], as: UTF8.self) else { throw fail("\(what) is not valid UTF-8", offset) }
            return s
        }
        func int32(_ v: UInt64) -> Int { Int(Int32(truncatingIfNeeded: v)) }
        while let (field, value, offset) = try top.next() {
            switch (field, value) {
            case (1, .bytes(let range)):
                var piece = Piece(text: "", score: 0, type: .normal)
                var sawText = false
                var sub = ProtobufReader(bytes, range: range, path: path)
                while let (f, v, o) = try sub.next() {
                    switch (f, v) {
                    case (1, .bytes(let r)): piece.text = try text(r, "piece \(model.pieces.count) text", o); sawText = true
                    case (2, .fixed32(let bits)): piece.score = Float(bitPattern: bits)
                    case (3, .varint(let t)):
                        guard let type = PieceType(rawValue: int32(t)) else { throw fail("piece \(model.pieces.count): unknown piece type \(t)", o) }
                        piece.type = type
                    case (1, _), (2, _), (3, _): throw fail("piece \(model.pieces.count): field \(f) has the wrong wire type", o)
                    default: break
                    }
                }
                guard sawText else { throw fail("piece \(model.pieces.count) has no text", offset) }
                guard piece.score.isFinite else { throw fail("piece \(model.pieces.count) ('\(piece.text)') has a non-finite score", offset) }
                model.pieces.append(piece)
            case (2, .bytes(let range)):
                var sub = ProtobufReader(bytes, range: range, path: path)
                while let (f, v, o) = try sub.next() {
                    switch (f, v) {
                    case (3, .varint(let x)): model.modelType = int32(x)
                    case (35, .varint(let x)): model.byteFallback = x != 0
                    case (40, .varint(let x)): model.unkID = int32(x)
                    case (41, .varint(let x)): model.bosID = int32(x)
                    case (42, .varint(let x)): model.eosID = int32(x)
                    case (43, .varint(let x)): model.padID = int32(x)
                    case (3, _), (35, _), (40, _), (41, _), (42, _), (43, _):
                        throw fail("trainer_spec field \(f) has the wrong wire type", o)
                    default: break
                    }
                }
            case (3, .bytes(let range)):
                var sub = ProtobufReader(bytes, range: range, path: path)
                while let (f, v, o) = try sub.next() {
                    switch (f, v) {
                    case (1, .bytes(let r)): model.normalizerName = try text(r, "normalizer_spec.name", o)
                    case (2, .bytes(let r)): model.charsMap = Array(bytes[r])
                    case (3, .varint(let x)): model.addDummyPrefix = x != 0
                    case (4, .varint(let x)): model.removeExtraWhitespaces = x != 0
                    case (5, .varint(let x)): model.escapeWhitespaces = x != 0
                    case (1, _), (2, _), (3, _), (4, _), (5, _):
                        throw fail("normalizer_spec field \(f) has the wrong wire type", o)
                    default: break
                    }
                }
            case (1, _), (2, _), (3, _):
                throw fail("ModelProto field \(field) has the wrong wire type", offset)
            default:
                break
            }
        }
        guard !model.pieces.isEmpty else { throw KinemaError.badFile(path: path, location: nil, reason: "SentencePiece model has no pieces") }
        guard model.modelType == 1 else {
            throw KinemaError.unsupported("\(path): SentencePiece model type \(model.modelType) (only UNIGRAM = 1 is supported)")
        }
        guard model.unkID >= 0, model.unkID < model.pieces.count, model.pieces[model.unkID].type == .unknown else {
            throw KinemaError.badFile(path: path, location: "trainer_spec.unk_id",
                                      reason: "unk_id \(model.unkID) is not an UNKNOWN piece of the \(model.pieces.count)-piece vocabulary")
        }
        return model
    }
}
