// Prompt clean-up as diffusers' WanPipeline applies it before tokenizing (`prompt_clean`): HTML entities
// decoded twice (Python's html.unescape, with its tables: HTMLEntityTables.swift), then every run of
// whitespace collapsed to one space and the ends trimmed. (diffusers also runs ftfy.fix_text when ftfy is
// installed; that mojibake repair is not reproduced here.)

extension WanPrompts {
    public static func clean(_ text: String) -> String {
        collapseWhitespace(unescapeHTML(unescapeHTML(text)))
    }

    /// Python's `str.isspace`: Unicode White_Space plus the ASCII information separators U+001C…U+001F.
    static func isPythonSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
    }

    static func collapseWhitespace(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            if isPythonSpace(scalar) {
                pendingSpace = true
                continue
            }
            if pendingSpace, !result.isEmpty { result.append(" ") }
            pendingSpace = false
            result.append(scalar)
        }
        return String(result)
    }

    /// html.entities.html5 as a dictionary, parsed once from the generated table.
    static let html5Entities: [String: String] = {
        var entities: [String: String] = [:]
        for entry in html5EntityTable.unicodeScalars.split(separator: "\u{1E}") {
            guard let separator = entry.firstIndex(of: "\u{1F}") else { continue }
            entities[String(String.UnicodeScalarView(entry[..<separator]))] =
                String(String.UnicodeScalarView(entry[entry.index(after: separator)...]))
        }
        return entities
    }()

    /// Python's `html.unescape`, reference for reference: numeric references (decimal or hex, any number of
    /// digits, optional ';') through html's tables of invalid references; named references by the HTML5
    /// table, or — when the name (up to 32 characters) is not one — its longest prefix that is a
    /// semicolon-less legacy name, followed by the rest.
    static func unescapeHTML(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            guard scalars[index] == "&", let (replacement, length) = reference(at: index, in: scalars) else {
                result.append(scalars[index])
                index += 1
                continue
            }
            result.append(contentsOf: replacement.unicodeScalars)
            index += length
        }
        return String(result)
    }

    /// The replacement of the reference starting with the '&' at `start` and the scalars it spans, or nil
    /// when html.unescape's pattern does not match there (the '&' then stays as written).
    private static func reference(at start: Int, in scalars: [Unicode.Scalar]) -> (String, Int)? {
        var index = start + 1
        guard index < scalars.count else { return nil }
        if scalars[index] == "#" {
            index += 1
            let hex = index + 1 < scalars.count && (scalars[index] == "x" || scalars[index] == "X") && scalars[index + 1].properties.isASCIIHexDigit
            if hex { index += 1 }
            let radix: UInt64 = hex ? 16 : 10
            var value: UInt64 = 0
            var digits = 0
            while index < scalars.count, let digit = hex ? hexDigit(scalars[index]) : decimalDigit(scalars[index]) {
                value = min(value &* radix &+ UInt64(digit), 0x1_0000_0000)  // saturates past U+10FFFF
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if index < scalars.count, scalars[index] == ";" { index += 1 }
            return (numericReplacement(value), index - start)
        }
        var name = String.UnicodeScalarView()
        let excluded: Set<Unicode.Scalar> = ["\t", "\n", "\u{C}", " ", "<", "&", "#", ";"]
        while index < scalars.count, name.count < 32, !excluded.contains(scalars[index]) {
            name.append(scalars[index])
            index += 1
        }
        guard !name.isEmpty else { return nil }
        if index < scalars.count, scalars[index] == ";" {
            name.append(";")
            index += 1
        }
        let length = index - start
        if let replacement = html5Entities[String(name)] { return (replacement, length) }
        let nameScalars = Array(name)
        for prefixLength in stride(from: nameScalars.count - 1, through: 2, by: -1) {
            let prefix = String(String.UnicodeScalarView(nameScalars[..<prefixLength]))
            if let replacement = html5Entities[prefix] {
                return (replacement + String(String.UnicodeScalarView(nameScalars[prefixLength...])), length)
            }
        }
        return nil
    }

    private static func numericReplacement(_ value: UInt64) -> String {
        if value <= UInt64(UInt32.max), let fixed = invalidCharrefs[UInt32(value)] { return fixed }
        if (0xD800...0xDFFF).contains(value) || value > 0x10FFFF { return "\u{FFFD}" }
        if invalidCodepoints.contains(UInt32(value)) { return "" }
        return Unicode.Scalar(UInt32(value)).map { String(Character($0)) } ?? "\u{FFFD}"
    }

    private static func decimalDigit(_ scalar: Unicode.Scalar) -> Int? {
        ("0"..."9").contains(scalar) ? Int(scalar.value - 48) : nil
    }

    private static func hexDigit(_ scalar: Unicode.Scalar) -> Int? {
        switch scalar {
        case "0"..."9": return Int(scalar.value - 48)
        case "a"..."f": return Int(scalar.value - 87)
        case "A"..."F": return Int(scalar.value - 55)
        default: return nil
        }
    }
}
