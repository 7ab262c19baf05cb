import KinemaCore

// A small strict JSON reader (RFC 8259) for untrusted checkpoint headers and index files.
//
// Why not JSONSerialization: it keeps the last of two equal keys without a word, so a header that lists
// one tensor twice (with two different offsets) would silently load one of them. This reader rejects
// duplicate keys, keeps object members in document order, keeps numbers as their source text (so callers
// can demand exact integers instead of accepting 2.0 or 1e3 through a Double), and reports every error
// with the byte offset in the file.
//
// Invariants: the input is validated as UTF-8 before parsing, so string slices between escapes decode
// losslessly; nesting is capped at `maximumDepth`, so a hostile file of a million '[' cannot overflow
// the stack; memory is proportional to the JSON text, never to anything the text claims.

/// A parsed JSON value. Object members stay in document order.
enum JSONValue: Sendable {
    case object([JSONMember])
    case array([JSONValue])
    case string(String)
    /// The number's source text, already checked against the JSON number grammar.
    case number(String)
    case bool(Bool)
    case null

    /// The JSON type name, for "expected X, found Y" messages.
    var typeName: String {
        switch self {
        case .object: return "object"
        case .array: return "array"
        case .string: return "string"
        case .number: return "number"
        case .bool: return "boolean"
        case .null: return "null"
        }
    }

    /// Compact JSON text of this value (used to show metadata values that are not strings).
    var compactText: String {
        switch self {
        case .object(let members):
            return "{" + members.map { JSONText.quoted($0.key) + ":" + $0.value.compactText }.joined(separator: ",") + "}"
        case .array(let items):
            return "[" + items.map(\.compactText).joined(separator: ",") + "]"
        case .string(let text): return JSONText.quoted(text)
        case .number(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        }
    }
}

struct JSONMember: Sendable {
    let key: String
    let value: JSONValue
    /// File offset of the member's key, for error messages.
    let offset: Int
}

enum JSONText {
    /// A JSON string literal: quotes, backslashes and control characters escaped; other text as UTF-8.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// The value of a JSON number that is written as a plain integer (no fraction, no exponent) and fits
    /// in `Int`; nil otherwise.
    static func exactInteger(_ text: String) -> Int? {
        guard !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else { return nil }
        return Int(text)
    }
}

struct StrictJSONParser {
    static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private let path: String
    /// File offset of `bytes[0]`, so errors point into the file rather than into the JSON slice.
    private let fileOffset: Int
    private var position = 0
    private var depth = 0

    /// Parses one JSON document that spans all of `bytes` (surrounding whitespace allowed).
    static func parse(_ bytes: UnsafeRawBufferPointer, path: String, fileOffset: Int, what: String) throws -> JSONValue {
        if let bad = firstInvalidUTF8(bytes) {
            throw KinemaError.badFile(path: path, location: "byte \(fileOffset + bad)", reason: "\(what) is not valid UTF-8")
        }
        var parser = StrictJSONParser(bytes: bytes, path: path, fileOffset: fileOffset)
        parser.skipWhitespace()
        let value = try parser.parseValue(what: what)
        parser.skipWhitespace()
        if parser.position != bytes.count {
            throw parser.failure("\(what): unexpected text after the JSON value")
        }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer, path: String, fileOffset: Int) {
        self.bytes = bytes
        self.path = path
        self.fileOffset = fileOffset
    }

    private func failure(_ reason: String, at offset: Int? = nil) -> KinemaError {
        .badFile(path: path, location: "byte \(fileOffset + (offset ?? position))", reason: reason)
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
    }

    private mutating func parseValue(what: String) throws -> JSONValue {
        guard let byte = current else { throw failure("\(what): invalid JSON: unexpected end of text") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(what: what)
        case UInt8(ascii: "["): return try parseArray(what: what)
        case UInt8(ascii: "\""): return .string(try parseString(what: what))
        case UInt8(ascii: "t"): try expectLiteral("true", what: what); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false", what: what); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null", what: what); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber(what: what))
        default:
            throw failure("\(what): invalid JSON: unexpected character \(describe(byte))")
        }
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    private mutating func enter(what: String) throws {
        depth += 1
        if depth > Self.maximumDepth {
            throw failure("\(what): JSON nested deeper than \(Self.maximumDepth) levels")
        }
    }

    private mutating func parseObject(what: String) throws -> JSONValue {
        try enter(what: what)
        defer { depth -= 1 }
        position += 1
        var members: [JSONMember] = []
        var seen: [String: Int] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw failure("\(what): invalid JSON: expected a string key") }
            let keyOffset = position
            let key = try parseString(what: what)
            if let first = seen[key] {
                throw failure(
                    "\(what): duplicate key \(JSONText.quoted(key)) (first at byte \(fileOffset + first)); "
                        + "a repeated key is ambiguous, so the file is rejected", at: keyOffset)
            }
            seen[key] = keyOffset
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw failure("\(what): invalid JSON: expected ':' after a key") }
            position += 1
            skipWhitespace()
            let value = try parseValue(what: what)
            members.append(JSONMember(key: key, value: value, offset: fileOffset + keyOffset))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(members)
            default: throw failure("\(what): invalid JSON: expected ',' or '}' in an object")
            }
        }
    }

    private mutating func parseArray(what: String) throws -> JSONValue {
        try enter(what: what)
        defer { depth -= 1 }
        position += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(what: what))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(items)
            default: throw failure("\(what): invalid JSON: expected ',' or ']' in an array")
            }
        }
    }

    private mutating func expectLiteral(_ literal: StaticString, what: String) throws {
        let start = position
        for expected in UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount) {
            guard current == expected else { throw failure("\(what): invalid JSON: bad literal", at: start) }
            position += 1
        }
    }

    /// JSON number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    private mutating func parseNumber(what: String) throws -> String {
        let start = position
        func digits(_ parser: inout StrictJSONParser) -> Int {
            var count = 0
            while let byte = parser.current, (0x30...0x39).contains(byte) { parser.position += 1; count += 1 }
            return count
        }
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
        } else if digits(&self) == 0 {
            throw failure("\(what): invalid JSON number", at: start)
        }
        if current == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw failure("\(what): invalid JSON number", at: start) }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard digits(&self) > 0 else { throw failure("\(what): invalid JSON number", at: start) }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    private mutating func parseString(what: String) throws -> String {
        let start = position
        position += 1
        var out: [UInt8] = []
        while true {
            guard let byte = current else { throw failure("\(what): invalid JSON: unterminated string", at: start) }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                try parseEscape(into: &out, what: what)
            case 0..<0x20:
                throw failure("\(what): invalid JSON: unescaped control character in a string")
            default:
                out.append(byte)
                position += 1
            }
        }
    }

    private mutating func parseEscape(into out: inout [UInt8], what: String) throws {
        guard let byte = current else { throw failure("\(what): invalid JSON: unterminated escape") }
        position += 1
        let simple: UInt8?
        switch byte {
        case UInt8(ascii: "\""): simple = 0x22
        case UInt8(ascii: "\\"): simple = 0x5C
        case UInt8(ascii: "/"): simple = 0x2F
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw failure("\(what): invalid JSON: bad escape \\\(describe(byte))", at: position - 2)
        }
        if let simple { out.append(simple); return }
        let escapeStart = position - 2
        var value = try parseHex4(what: what)
        if (0xD800...0xDBFF).contains(value) {
            // A high surrogate must be followed by an escaped low surrogate; together they are one scalar.
            guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                throw failure("\(what): invalid JSON: unpaired surrogate in \\u escape", at: escapeStart)
            }
            position += 2
            let low = try parseHex4(what: what)
            guard (0xDC00...0xDFFF).contains(low) else {
                throw failure("\(what): invalid JSON: unpaired surrogate in \\u escape", at: escapeStart)
            }
            value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(value) {
            throw failure("\(what): invalid JSON: unpaired surrogate in \\u escape", at: escapeStart)
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw failure("\(what): invalid JSON: bad \\u escape", at: escapeStart)
        }
        out.append(contentsOf: Array(String(Character(scalar)).utf8))
    }

    private mutating func parseHex4(what: String) throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw failure("\(what): invalid JSON: short \\u escape") }
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: throw failure("\(what): invalid JSON: bad hex digit in \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    /// Offset of the first byte that breaks UTF-8 (overlongs, surrogates and values past U+10FFFF
    /// included), or nil when the whole buffer is valid.
    static func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 { index += 1; continue }
            let length: Int
            var lowest: UInt8 = 0x80
            var highest: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lowest = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; highest = 0x9F
            case 0xF0: length = 4; lowest = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; highest = 0x8F
            default: return index
            }
            guard index + length <= count else { return index }
            // Only the first continuation byte has a narrowed range; the rest are plain 0x80...0xBF.
            guard (lowest...highest).contains(bytes[index + 1]) else { return index }
            for next in 2..<length where !(0x80...0xBF).contains(bytes[index + next]) { return index }
            index += length
        }
        return nil
    }
}
