/// The text repair that official Wan (`wan/modules/tokenizers.py`, basic_clean) and diffusers' WanPipeline
/// (when ftfy is installed) run on every prompt before html.unescape: ftfy 6.3.1's `fix_text` with its
/// default settings, step for step, except the mojibake repair family.
///
/// Reproduced, in ftfy's order, on each segment until nothing changes:
///   unescape_html ("auto"), fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes,
///   fix_line_breaks, fix_surrogates, remove_terminal_escapes, remove_control_chars, NFC.
/// Segments are lines (each keeps its '\n'), cut at `maxDecodeLength` scalars; once a segment contains
/// '<', HTML unescaping stays off for it and for every later segment (ftfy's "auto" rule is sticky).
///
/// Not reproduced: fix_encoding and its sub-steps restore_byte_a0, replace_lossy_sequences and
/// decode_inconsistent_utf8 (they re-decode text ftfy's badness heuristics judge to be mojibake, such as
/// "cafÃ©" → "café"); text they would change is left as it is here. fix_surrogates has nothing to do:
/// a Swift String never holds surrogate code points (a paired surrogate already arrives as its
/// character, which is what ftfy makes of it; a lone one cannot be represented at all).
/// NFC uses Python 3.11's Unicode 14.0 data (NFC.swift), as the reference does.
public enum TextFixer {
    /// ftfy's default `max_decode_length`: the longest segment fixed at once, in code points.
    public static let maxDecodeLength = 1_000_000

    /// ftfy.fix_text(text) with the default TextFixerConfig, minus the mojibake repair (see above).
    public static func fixText(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var unescapeHTML = true
        var result = String.UnicodeScalarView()
        var start = 0
        while start < scalars.count {
            var end = scalars[start...].firstIndex(of: "\n").map { $0 + 1 } ?? scalars.count
            end = min(end, start + maxDecodeLength)
            let segment = Array(scalars[start..<end])
            if segment.contains("<") { unescapeHTML = false }
            result.append(contentsOf: fixSegment(segment, unescapeHTML: unescapeHTML))
            start = end
        }
        return String(result)
    }

    /// ftfy's fix_and_explain on one segment: the steps in order, repeated until a pass changes nothing
    /// (compared scalar by scalar, as Python compares strings).
    static func fixSegment(_ segment: [Unicode.Scalar], unescapeHTML: Bool) -> [Unicode.Scalar] {
        var text = segment
        while true {
            let before = text
            if unescapeHTML { text = unescapeEntities(text) }
            text = mapScalars(text) { c1Controls[$0.value] }
            text = mapScalars(text) { ligatures[$0.value] }
            text = mapScalars(text) { widthMap[$0.value] }
            text = mapScalars(text) { doubleQuotes.contains($0.value) ? "\"" : singleQuotes.contains($0.value) ? "'" : nil }
            text = unifyLineBreaks(text)
            text = removeTerminalEscapes(text)
            text = text.filter { !removedControls.contains($0.value) }
            text = NFC.normalize(text)
            if text == before { return text }
        }
    }

    /// Python's str.translate: each scalar replaced by its mapping, or kept when it has none.
    static func mapScalars(_ text: [Unicode.Scalar], _ mapping: (Unicode.Scalar) -> String?) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count)
        for scalar in text {
            if let replacement = mapping(scalar) {
                result.append(contentsOf: replacement.unicodeScalars)
            } else {
                result.append(scalar)
            }
        }
        return result
    }

    /// fix_line_breaks: CRLF, CR, U+2028, U+2029 and U+0085 each become '\n'.
    static func unifyLineBreaks(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count)
        var index = 0
        while index < text.count {
            switch text[index].value {
            case 0x0D:
                result.append("\n")
                if index + 1 < text.count, text[index + 1] == "\n" { index += 1 }
            case 0x2028, 0x2029, 0x85:
                result.append("\n")
            default:
                result.append(text[index])
            }
            index += 1
        }
        return result
    }

    /// remove_terminal_escapes: ESC '[' (Python \d digits or ';')* ASCII-letter, removed whole.
    static func removeTerminalEscapes(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("\u{1B}") else { return text }
        var result: [Unicode.Scalar] = []
        var index = 0
        while index < text.count {
            if text[index] == "\u{1B}", index + 1 < text.count, text[index + 1] == "[" {
                var end = index + 2
                while end < text.count, text[end] == ";" || isPythonDigit(text[end]) { end += 1 }
                if end < text.count, isASCIILetter(text[end]) {
                    index = end + 1
                    continue
                }
            }
            result.append(text[index])
            index += 1
        }
        return result
    }

    static func isASCIILetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    static func isPythonDigit(_ scalar: Unicode.Scalar) -> Bool {
        pythonDigits.contains { $0.contains(scalar.value) }
    }

    /// ftfy's entity table: HTML5 names that end in ';' and the upper-cased extras, keyed by name + ';'.
    static let entities: [String: String] = {
        var table = WanPrompts.html5Entities.filter { $0.key.hasSuffix(";") }
        for entry in upperCaseEntityTable.unicodeScalars.split(separator: "\u{1E}") {
            guard let separator = entry.firstIndex(of: "\u{1F}") else { continue }
            table[String(String.UnicodeScalarView(entry[..<separator]))] =
                String(String.UnicodeScalarView(entry[entry.index(after: separator)...]))
        }
        return table
    }()

    /// unescape_html: each match of `&#?[0-9A-Za-z]{1,24};` becomes its entity's text when the name is in
    /// ftfy's table; a numeric one becomes what html.unescape makes of it unless that leaves a ';'
    /// (the reference was only partly decoded, e.g. "&#12a;"); anything else stays.
    static func unescapeEntities(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("&") else { return text }
        var result: [Unicode.Scalar] = []
        var index = 0
        while index < text.count {
            guard text[index] == "&", let end = entityEnd(at: index, in: text) else {
                result.append(text[index])
                index += 1
                continue
            }
            let match = Array(text[index..<end])
            let matchText = String(String.UnicodeScalarView(match))
            if let replacement = entities[String(matchText.dropFirst())] {
                result.append(contentsOf: replacement.unicodeScalars)
            } else if match[1] == "#" {
                let decoded = WanPrompts.unescapeHTML(matchText)
                result.append(contentsOf: decoded.unicodeScalars.contains(";") ? match : Array(decoded.unicodeScalars))
            } else {
                result.append(contentsOf: match)
            }
            index = end
        }
        return result
    }

    /// End (exclusive) of the `&#?[0-9A-Za-z]{1,24};` match starting at the '&' at `start`, or nil.
    private static func entityEnd(at start: Int, in text: [Unicode.Scalar]) -> Int? {
        var index = start + 1
        if index < text.count, text[index] == "#" { index += 1 }
        let nameStart = index
        while index < text.count, isASCIIAlphanumeric(text[index]) { index += 1 }
        let length = index - nameStart
        guard (1...24).contains(length), index < text.count, text[index] == ";" else { return nil }
        return index + 1
    }

    private static func isASCIIAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        isASCIILetter(scalar) || ("0"..."9").contains(scalar)
    }
}
