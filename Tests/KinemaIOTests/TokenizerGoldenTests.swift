import Foundation
import KinemaCore
import KinemaIO
import KinemaTestSupport
import XCTest

/// Every string of Tests/Fixtures/tokenizer/cases.json against what `tokenizers` (tokenizer.json, through
/// transformers' tokenizer call) and `sentencepiece` (spiece.model) produced for it. Token ids are exact:
/// there is no tolerance for a tokenizer.
final class TokenizerGoldenTests: XCTestCase {
    private struct Cases {
        let texts: [String]
        let models: [String: [String: Any]]
    }

    private static func loadCases() throws -> Cases {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizer/cases.json")))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let texts = root["texts"] as? [String], let models = root["models"] as? [String: [String: Any]] else {
            throw KinemaError.badFile(path: "cases.json", location: nil, reason: "unexpected layout")
        }
        return Cases(texts: texts, models: models)
    }

    private static func ints(_ v: Any?) -> [[Int]] { (v as? [[Any]])?.map { $0.compactMap { ($0 as? NSNumber)?.intValue } } ?? [] }

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
        guard let hf = cases.models[name]?["hf"] as? [String: Any] else { return XCTFail("no hf results for \(name)") }
        let tok = try UnigramTokenizer.load(Fixtures.path("tokenizer/\(name)/tokenizer.json"))
        XCTAssertEqual(tok.format, .tokenizerJSON)
        let ids = Self.ints(hf["ids"])
        // pad512[i] is null where the unpadded encoding already fits (the generator checked equality).
        let pad512 = ((hf["pad512"] as? [Any]) ?? []).enumerated().map { i, v in
            (v as? [Any]).map { $0.compactMap { ($0 as? NSNumber)?.intValue } } ?? (i < ids.count ? ids[i] : [])
        }
        let pad16 = (hf["pad16"] as? [[Any]]) ?? []
        let decoded = (hf["decode"] as? [String]) ?? []
        XCTAssertEqual(ids.count, cases.texts.count)
        XCTAssertEqual(pad16.count, cases.texts.count)
        XCTAssertEqual(pad512.count, cases.texts.count)
        let bad = Mismatches()
        for (i, text) in cases.texts.enumerated() {
            bad.check(try tok.encode(text), ids[i], "ids", text)
            let p16 = try tok.encode(text, maxLength: 16)
            let want16 = Self.ints(pad16[i])
            bad.check(p16.ids, want16.first ?? [], "pad16 ids", text)
            bad.check(p16.attentionMask, want16.last ?? [], "pad16 mask", text)
            let p512 = try tok.encode(text, maxLength: 512)
            let kept = pad512[i].count
            bad.check(p512.ids, pad512[i] + [Int](repeating: tok.padID ?? -1, count: 512 - kept), "pad512 ids", text)
            bad.check(p512.attentionMask, [Int](repeating: 1, count: kept) + [Int](repeating: 0, count: 512 - kept), "pad512 mask", text)
            bad.check(tok.decode(ids[i]), decoded[i], "decode", text)
        }
        bad.assertNone("tokenizer/\(name)/tokenizer.json")
    }

    private func checkSentencePiece(_ name: String) throws {
        let cases = try Self.loadCases()
        guard let spm = cases.models[name]?["spm"] as? [String: Any] else { return XCTFail("no spm results for \(name)") }
        let tok = try UnigramTokenizer.load(Fixtures.path("tokenizer/\(name)/spiece.model"))
        XCTAssertEqual(tok.format, .sentencePiece)
        XCTAssertEqual(tok.vocabularySize, (spm["vocab_size"] as? NSNumber)?.intValue)
        let ids = Self.ints(spm["ids"])
        let decoded = (spm["decode"] as? [String]) ?? []
        let bad = Mismatches()
        for (i, text) in cases.texts.enumerated() {
            bad.check(try tok.encode(text, specialTokens: .omit), ids[i], "ids", text)
            bad.check(try tok.encode(text), ids[i] + [1], "ids+eos", text)
            bad.check(tok.decode(ids[i]), decoded[i], "decode", text)
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
        let bare = try tok.encode("a b", maxLength: 8, specialTokens: .omit)
        XCTAssertEqual(bare.ids.count, 8)
        XCTAssertFalse(bare.ids.contains(1))
    }

    func testDecodeRoundTrip() throws {
        // Text that normalization leaves unchanged decodes back to itself (both paths).
        for path in ["tokenizer/bf/tokenizer.json", "tokenizer/bf/spiece.model", "tokenizer/generic/tokenizer.json"] {
            let tok = try UnigramTokenizer.load(Fixtures.path(path))
            for text in ["a cat playing piano in a cozy room", "café naïve résumé 123", "東京の猫です。"] {
                XCTAssertEqual(tok.decode(try tok.encode(text)), text, path)
            }
        }
    }
}
