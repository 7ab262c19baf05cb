import Foundation
import KinemaCore
import KinemaIO
import KinemaTestSupport
import XCTest

/// Every string of Tests/Fixtures/tokenizer/cases.json against what `tokenizers` (tokenizer.json, through
/// transformers' tokenizer call) and `sentencepiece` (spiece.model) produced for it. Token ids are exact:
/// there is no tolerance for a tokenizer.
final class TokenizerGoldenTests: XCTestCase {
    // cases.json, decoded with JSONDecoder: JSONSerialization on Linux drops a U+FEFF that starts a string,
    // which one of the cases does.
    private struct Cases: Decodable {
        struct HF: Decodable {
            let ids: [[Int]]
            /// [input_ids, attention_mask] at max_length 16.
            let pad16: [[[Int]]]
            /// ids at max_length 512 without the right padding; nil where equal to `ids`.
            let pad512: [[Int]?]
            let decode: [String]
        }
        struct SPM: Decodable {
            let ids: [[Int]]
            let decode: [String]
            let vocab_size: Int
        }
        struct Model: Decodable {
            let hf: HF
            let spm: SPM?
        }
        let texts: [String]
        let models: [String: Model]
    }

    private static func loadCases() throws -> Cases {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizer/cases.json")))
        return try JSONDecoder().decode(Cases.self, from: data)
    }

    /// Collects mismatches and reports the first few with their input, so one failure run shows the pattern.
    private final class Mismatches {
        var lines: [String] = []
        var count = 0
        func check<T: Equatable>(_ got: T, _ want: T, _ what: String, _ text: String) {
            guard got != want else { return }
            count += 1
            if lines.count < 12 { lines.append("\(what) \(text.debugDescription.prefix(80)): got \(got), want \(want)") }
        }
        func assertNone(_ label: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(count, 0, "\(label): \(count) mismatches\n" + lines.joined(separator: "\n"), file: file, line: line)
        }
    }

    private func checkTokenizerJSON(_ name: String) throws {
        let cases = try Self.loadCases()
        guard let hf = cases.models[name]?.hf else { return XCTFail("no hf results for \(name)") }
        let tok = try UnigramTokenizer.load(Fixtures.path("tokenizer/\(name)/tokenizer.json"))
        XCTAssertEqual(tok.format, .tokenizerJSON)
        let n = cases.texts.count
        XCTAssertEqual([hf.ids.count, hf.pad16.count, hf.pad512.count, hf.decode.count], [n, n, n, n])
        let bad = Mismatches()
        for (i, text) in cases.texts.enumerated() {
            bad.check(try tok.encode(text), hf.ids[i], "ids", text)
            let p16 = try tok.encode(text, maxLength: 16)
            bad.check(p16.ids, hf.pad16[i].first ?? [], "pad16 ids", text)
            bad.check(p16.attentionMask, hf.pad16[i].last ?? [], "pad16 mask", text)
            let p512 = try tok.encode(text, maxLength: 512)
            let kept = hf.pad512[i] ?? hf.ids[i]
            bad.check(p512.ids, kept + [Int](repeating: tok.padID ?? -1, count: 512 - kept.count), "pad512 ids", text)
            bad.check(p512.attentionMask, [Int](repeating: 1, count: kept.count) + [Int](repeating: 0, count: 512 - kept.count),
                      "pad512 mask", text)
            bad.check(tok.decode(hf.ids[i]), hf.decode[i], "decode", text)
        }
        bad.assertNone("tokenizer/\(name)/tokenizer.json")
    }

    private func checkSentencePiece(_ name: String) throws {
        let cases = try Self.loadCases()
        guard let spm = cases.models[name]?.spm else { return XCTFail("no spm results for \(name)") }
        let tok = try UnigramTokenizer.load(Fixtures.path("tokenizer/\(name)/spiece.model"))
        XCTAssertEqual(tok.format, .sentencePiece)
        XCTAssertEqual(tok.vocabularySize, spm.vocab_size)
        XCTAssertEqual([spm.ids.count, spm.decode.count], [cases.texts.count, cases.texts.count])
        let bad = Mismatches()
        for (i, text) in cases.texts.enumerated() {
            bad.check(try tok.encode(text, specialTokens: .omit), spm.ids[i], "ids", text)
            bad.check(try tok.encode(text), spm.ids[i] + [1], "ids+eos", text)
            bad.check(tok.decode(spm.ids[i]), spm.decode[i], "decode", text)
        }
        bad.assertNone("tokenizer/\(name)/spiece.model")
    }

    func testByteFallbackModelTokenizerJSON() throws { try checkTokenizerJSON("bf") }
    func testPlainModelTokenizerJSON() throws { try checkTokenizerJSON("plain") }
    func testGenericConversionTokenizerJSON() throws { try checkTokenizerJSON("generic") }
    func testFirstPrependSchemeTokenizerJSON() throws { try checkTokenizerJSON("first") }
    func testLegacyLayoutTokenizerJSON() throws { try checkTokenizerJSON("legacy") }
    func testByteFallbackModelSentencePiece() throws { try checkSentencePiece("bf") }
    func testPlainModelSentencePiece() throws { try checkSentencePiece("plain") }
    func testCustomRulesModelSentencePiece() throws { try checkSentencePiece("generic") }

    func testFolderPrefersTokenizerJSON() throws {
        let tok = try UnigramTokenizer.load(Fixtures.path("tokenizer/bf"))
        XCTAssertEqual(tok.format, .tokenizerJSON)
        XCTAssertEqual(tok.padID, 0)
        XCTAssertEqual(tok.eosID, 1)
        XCTAssertEqual(tok.vocabularySize, 1003)
    }

    func testFixedLengthModes() throws {
        let tok = try UnigramTokenizer.load(Fixtures.path("tokenizer/bf/tokenizer.json"))
        let text = String(repeating: "the quick brown fox ", count: 40)
        let full = try tok.encode(text)
        XCTAssertGreaterThan(full.count, 16)
        let cut = try tok.encode(text, maxLength: 16, padding: .none)
        XCTAssertEqual(cut.ids, Array(full.prefix(15)) + [1])
        XCTAssertEqual(cut.attentionMask, [Int](repeating: 1, count: 16))
        XCTAssertThrowsError(try tok.encode(text, maxLength: 16, truncation: .none))
        XCTAssertThrowsError(try tok.encode("a", maxLength: 0))
        XCTAssertThrowsError(try tok.encode("a", maxLength: Int.max))
        let bare = try tok.encode("a b", maxLength: 8, specialTokens: .omit)
        XCTAssertEqual(bare.ids.count, 8)
        XCTAssertFalse(bare.ids.contains(1))
    }

    func testDecodeRoundTrip() throws {
        // Text that normalization leaves unchanged decodes back to itself (both paths).
        for path in ["tokenizer/bf/tokenizer.json", "tokenizer/bf/spiece.model", "tokenizer/generic/tokenizer.json",
                     "tokenizer/generic/spiece.model"] {
            let tok = try UnigramTokenizer.load(Fixtures.path(path))
            for text in ["a cat playing piano in a cozy room", "café naïve résumé 123", "東京の猫です。"] {
                XCTAssertEqual(tok.decode(try tok.encode(text)), text, path)
            }
        }
    }
}
