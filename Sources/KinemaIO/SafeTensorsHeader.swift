import KinemaCore

// Parsing and complete validation of a safetensors header.
//
// Layout of a file:  [N: u64 little-endian][N bytes: UTF-8 JSON object][data section]
// The JSON maps tensor names to {"dtype": "F32", "shape": [d0, …], "data_offsets": [begin, end]} with
// offsets relative to the data section (which starts at byte 8 + N), plus an optional "__metadata__"
// object of string → string.
//
// What a valid file satisfies after `parse` (the same rules as the reference Rust crate, which sorts
// entries by offsets and then requires each begin to equal the previous end and the last end to equal
// the data section's length):
//   * 8 ≤ file size; N ≤ 100 000 000 and 8 + N ≤ file size;
//   * the header is UTF-8 JSON, an object, with no duplicate keys at any level;
//   * every entry is an object with a string dtype, an array shape of non-negative integers and an
//     array data_offsets of exactly two non-negative integers begin ≤ end (extra keys are ignored, as
//     the reference reader ignores them);
//   * the dtype is one Kinema supports; other legal safetensors dtypes get their own message;
//   * the element count (product of the non-zero dimensions) times the element size fits in Int, so no
//     later `shape.reduce(1, *)` or stride computation can overflow;
//   * end − begin equals that byte size and end ≤ the data section's length;
//   * sorted by (begin, end), the entries tile the data section exactly: no overlap, no gap, no
//     trailing bytes. Zero-byte tensors may sit anywhere on that tiling.
// Parsing touches only the first 8 + N bytes; nothing proportional to the data is read or allocated.

/// One validated header entry. Offsets are relative to the start of the data section.
struct SafeTensorsEntry: Sendable, Equatable {
    let name: String
    let dtype: DType
    let shape: [Int]
    let begin: Int
    let end: Int
}

struct SafeTensorsHeader: Sendable {
    /// Header JSON longer than this is refused before it is read (the reference crate's limit).
    static let maximumHeaderLength = 100_000_000

    /// Dtype tags that are legal safetensors but not element types Kinema has; named in the error so a
    /// user knows the file is fine and the engine is what lacks support.
    static let unsupportedDTypes: Set<String> = [
        "F64", "I16", "U16", "U32", "U64", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64",
    ]

    /// Value of the 8-byte length prefix.
    let headerLength: Int
    /// File offset of the data section: 8 + headerLength.
    let dataStart: Int
    let dataLength: Int
    let entries: [String: SafeTensorsEntry]
    let metadata: [String: String]

    /// Parses and validates the header of a whole safetensors file held in `file` (typically a mapping).
    static func parse(_ file: UnsafeRawBufferPointer, path: String) throws -> SafeTensorsHeader {
        func bad(_ location: String?, _ reason: String) -> KinemaError {
            .badFile(path: path, location: location, reason: reason)
        }
        let fileSize = file.count
        guard fileSize >= 8 else {
            throw bad(nil, "file is \(fileSize) bytes, shorter than the 8-byte header length that starts a safetensors file")
        }
        var rawLength: UInt64 = 0
        for index in (0..<8).reversed() { rawLength = rawLength << 8 | UInt64(file[index]) }
        guard rawLength <= UInt64(maximumHeaderLength) else {
            throw bad("header length (bytes 0..<8)", "header length \(rawLength) is over the \(maximumHeaderLength)-byte limit")
        }
        let headerLength = Int(rawLength)
        guard headerLength <= fileSize - 8 else {
            throw bad(
                "header length (bytes 0..<8)",
                "header length \(headerLength) runs past the end of the file (\(fileSize - 8) bytes follow the length)")
        }
        let dataStart = 8 + headerLength
        let dataLength = fileSize - dataStart
        let json = try StrictJSONParser.parse(
            UnsafeRawBufferPointer(rebasing: file[8..<dataStart]), path: path, fileOffset: 8, what: "header")
        guard case .object(let members) = json else {
            throw bad("header", "header JSON is \(json.typeName == "array" ? "an" : "a") \(json.typeName), not an object")
        }

        var metadata: [String: String] = [:]
        var entries: [String: SafeTensorsEntry] = [:]
        entries.reserveCapacity(members.count)
        for member in members {
            if member.key == "__metadata__" {
                metadata = try parseMetadata(member, path: path)
            } else {
                entries[member.key] = try parseEntry(member, dataLength: dataLength, path: path)
            }
        }
        try checkTiling(entries.values, dataLength: dataLength, path: path)
        return SafeTensorsHeader(
            headerLength: headerLength, dataStart: dataStart, dataLength: dataLength, entries: entries, metadata: metadata)
    }

    private static func parseMetadata(_ member: JSONMember, path: String) throws -> [String: String] {
        switch member.value {
        case .null:
            return [:]  // the reference reader treats a null __metadata__ as absent
        case .object(let fields):
            var result: [String: String] = [:]
            for field in fields {
                guard case .string(let text) = field.value else {
                    throw KinemaError.badFile(
                        path: path, location: "__metadata__.\(field.key)",
                        reason: "metadata values must be strings, found a \(field.value.typeName) (at byte \(field.offset))")
                }
                result[field.key] = text
            }
            return result
        default:
            throw KinemaError.badFile(
                path: path, location: "__metadata__",
                reason: "__metadata__ must be an object of strings, found a \(member.value.typeName) (at byte \(member.offset))")
        }
    }

    private static func parseEntry(_ member: JSONMember, dataLength: Int, path: String) throws -> SafeTensorsEntry {
        let name = member.key
        func bad(_ reason: String) -> KinemaError {
            .badFile(path: path, location: "tensor \(JSONText.quoted(name))", reason: reason + " (header entry at byte \(member.offset))")
        }
        guard case .object(let fields) = member.value else {
            throw bad("entry must be an object with dtype, shape and data_offsets, found a \(member.value.typeName)")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let found = fields.first(where: { $0.key == key }) else { throw bad("entry has no \"\(key)\"") }
            return found.value
        }
        func integers(_ key: String, _ value: JSONValue) throws -> [Int] {
            guard case .array(let items) = value else {
                throw bad("\"\(key)\" must be an array of integers, found a \(value.typeName)")
            }
            return try items.enumerated().map { index, item in
                guard case .number(let text) = item else {
                    throw bad("\(key)[\(index)] must be an integer, found a \(item.typeName)")
                }
                guard let number = JSONText.exactInteger(text) else {
                    throw bad("\(key)[\(index)] is \(text), not an integer that fits in 64 bits")
                }
                guard number >= 0 else { throw bad("\(key)[\(index)] is \(number); it must be non-negative") }
                return number
            }
        }

        let dtypeValue = try field("dtype")
        guard case .string(let dtypeName) = dtypeValue else {
            throw bad("\"dtype\" must be a string, found a \(dtypeValue.typeName)")
        }
        let shape = try integers("shape", try field("shape"))
        let offsets = try integers("data_offsets", try field("data_offsets"))

        guard let dtype = DType(safetensorsName: dtypeName) else {
            if unsupportedDTypes.contains(dtypeName) {
                throw bad("unsupported dtype \(dtypeName) for tensor \(JSONText.quoted(name)): legal safetensors, but Kinema "
                    + "reads only \(DType.allCases.map(\.safetensorsName).joined(separator: ", "))")
            }
            throw bad("unknown dtype \(JSONText.quoted(dtypeName))")
        }
        guard offsets.count == 2 else {
            throw bad("\"data_offsets\" must be [begin, end], found \(offsets.count) values")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw bad("data_offsets [\(begin), \(end)] has begin after end") }

        // Overflow-checked over the non-zero dimensions: a zero anywhere makes the tensor empty, but the
        // other dimensions still feed stride arithmetic and must not overflow there either.
        var elements = 1
        for dimension in shape where dimension != 0 {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw bad("shape \(shape) has more elements than fit in 64 bits") }
            elements = product
        }
        let (nonZeroBytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw bad("shape \(shape) of \(dtypeName) needs more bytes than fit in 64 bits") }
        let byteCount = shape.contains(0) ? 0 : nonZeroBytes
        guard end - begin == byteCount else {
            throw bad("data_offsets [\(begin), \(end)] span \(end - begin) bytes, but shape \(shape) of \(dtypeName) "
                + "needs \(byteCount)")
        }
        guard end <= dataLength else {
            throw bad("data_offsets [\(begin), \(end)] end past the data section, which has \(dataLength) bytes")
        }
        return SafeTensorsEntry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// The entries, ordered by offsets, must tile [0, dataLength) with no overlap, gap or tail.
    private static func checkTiling(
        _ entries: Dictionary<String, SafeTensorsEntry>.Values, dataLength: Int, path: String
    ) throws {
        let ordered = entries.sorted { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        var previous: SafeTensorsEntry?
        for entry in ordered {
            let location = "tensor \(JSONText.quoted(entry.name))"
            if entry.begin < covered, let previous {
                throw KinemaError.badFile(
                    path: path, location: location,
                    reason: "data_offsets [\(entry.begin), \(entry.end)] overlap tensor \(JSONText.quoted(previous.name)) "
                        + "at [\(previous.begin), \(previous.end)]")
            }
            if entry.begin > covered {
                let after = previous.map { " after tensor \(JSONText.quoted($0.name))" } ?? " at the start of the data section"
                throw KinemaError.badFile(
                    path: path, location: location,
                    reason: "data_offsets [\(entry.begin), \(entry.end)] leave a gap of \(entry.begin - covered) bytes\(after); "
                        + "safetensors requires tensors to cover the data section contiguously")
            }
            covered = entry.end
            previous = entry
        }
        if covered != dataLength {
            throw KinemaError.badFile(
                path: path, location: "data section",
                reason: "tensors cover \(covered) bytes, but the data section has \(dataLength) "
                    + "(\(dataLength - covered) trailing bytes belong to no tensor)")
        }
    }
}
