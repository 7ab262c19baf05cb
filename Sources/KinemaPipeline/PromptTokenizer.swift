import KinemaCore
import KinemaIO

/// What a pipeline needs from a tokenizer: a prompt's ids and attention mask at a fixed length.
public protocol PromptTokenizer: Sendable {
    /// ids and mask padded (or cut) to `maxLength`, special tokens included.
    func promptIDs(_ text: String, maxLength: Int) throws -> (ids: [Int], attentionMask: [Int])
}

extension UnigramTokenizer: PromptTokenizer {
    public func promptIDs(_ text: String, maxLength: Int) throws -> (ids: [Int], attentionMask: [Int]) {
        try encode(text, maxLength: maxLength)
    }
}

/// For benchmarks with synthetic weights, where no tokenizer file exists: one id per whitespace-separated
/// word (an FNV-1a hash into the vocabulary, ids 0–2 kept for pad / eos / unk as in umT5), then eos and
/// padding. Wan pads every prompt to 512 tokens, so the text encoder's work does not depend on these ids.
public struct SyntheticPromptTokenizer: PromptTokenizer {
    public let vocabularySize: Int

    public init(vocabularySize: Int) { self.vocabularySize = vocabularySize }

    public func promptIDs(_ text: String, maxLength: Int) throws -> (ids: [Int], attentionMask: [Int]) {
        guard maxLength >= 1 else { throw KinemaError.invalidArgument("prompt length must be at least 1, got \(maxLength)") }
        let words = text.split(whereSeparator: \.isWhitespace).prefix(max(0, maxLength - 1))
        var ids = words.map { word -> Int in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in word.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return 3 + Int(hash % UInt64(max(1, vocabularySize - 3)))
        }
        ids.append(1)
        let mask = [Int](repeating: 1, count: ids.count) + [Int](repeating: 0, count: maxLength - ids.count)
        return (ids + [Int](repeating: 0, count: maxLength - ids.count), mask)
    }
}
