// Prompt clean-up as diffusers' WanPipeline applies it before tokenizing (`prompt_clean`): HTML entities
// decoded twice, then every run of whitespace collapsed to one space and the ends trimmed. (diffusers
// also runs ftfy.fix_text when ftfy is installed; that mojibake repair is not reproduced here.)

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

    /// Named entities most prompts meet; others are left as written.
    static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}", "copy": "©", "reg": "®",
        "trade": "™", "hellip": "…", "mdash": "—", "ndash": "–", "lsquo": "‘", "rsquo": "’", "ldquo": "“",
        "rdquo": "”", "laquo": "«", "raquo": "»", "middot": "·", "deg": "°", "times": "×", "eacute": "é",
        "egrave": "è", "agrave": "à", "ccedil": "ç", "uuml": "ü", "ouml": "ö", "auml": "ä", "szlig": "ß",
    ]

    /// Python's `html.unescape` for numeric references (`&#65;`, `&#x41;`) and the named entities above,
    /// with or without the closing semicolon for the five XML ones, as Python accepts.
    static func unescapeHTML(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            guard scalars[index] == "&", let (replacement, length) = entity(at: index, in: scalars) else {
                result.append(scalars[index])
                index += 1
                continue
            }
            result.append(contentsOf: replacement.unicodeScalars)
            index += length
        }
        return String(result)
    }

    private static func entity(at start: Int, in scalars: [Unicode.Scalar]) -> (String, Int)? {
        var index = start + 1
        guard index < scalars.count else { return nil }
        if scalars[index] == "#" {
            index += 1
            let hex = index < scalars.count && (scalars[index] == "x" || scalars[index] == "X")
            if hex { index += 1 }
            var digits = ""
            while index < scalars.count, digits.count < 10,
                hex ? scalars[index].properties.isASCIIHexDigit : ("0"..."9").contains(scalars[index])
            {
                digits.unicodeScalars.append(scalars[index])
                index += 1
            }
            guard !digits.isEmpty, let value = UInt32(digits, radix: hex ? 16 : 10) else { return nil }
            if index < scalars.count, scalars[index] == ";" { index += 1 }
            // Python maps NUL, surrogates and out-of-range values to U+FFFD.
            let scalar = (value == 0 || (0xD800...0xDFFF).contains(value) || value > 0x10FFFF) ? "\u{FFFD}" : Unicode.Scalar(value)
            return (scalar.map { String(Character($0)) } ?? "\u{FFFD}", index - start)
        }
        var name = ""
        while index < scalars.count, name.count < 12, scalars[index].properties.isAlphabetic || ("0"..."9").contains(scalars[index]) {
            name.unicodeScalars.append(scalars[index])
            index += 1
        }
        guard let replacement = namedEntities[name] else { return nil }
        if index < scalars.count, scalars[index] == ";" { return (replacement, index + 1 - start) }
        return ["amp", "lt", "gt", "quot"].contains(name) ? (replacement, index - start) : nil
    }
}
