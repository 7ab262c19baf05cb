import Foundation
import KinemaCore
import KinemaIO
import KinemaTestSupport
import XCTest

/// Malformed tokenizer.json / spiece.model files give a `KinemaError` that names the file and the field,
/// never a crash; a seeded mutation fuzz over both formats checks that nothing a file controls can trap.
final class TokenizerCorruptionTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory("kinema-tokenizer") }
    override func tearDown() { directory = nil }

    /// A minimal valid tokenizer.json; `model`, `normalizer` replace those members.
    private static func json(model: String = #"{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0],["▁a",-1.0],["b",-2.0]]}"#,
                             normalizer: String = "null") -> String {
        #"{"version":"1.0","added_tokens":[],"normalizer":\#(normalizer),"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},"post_processor":null,"decoder":null,"model":\#(model)}"#
    }

    private static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// Loads `text` as tokenizer.json and checks the error names the file and contains `fragment`.
    private func assertRejected(json text: String, _ label: String, _ fragment: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        try assertRejected(bytes: Array(text.utf8), name: "\(label).json", label, fragment, file: file, line: line)
    }

    private func assertRejected(bytes: [UInt8], name: String, _ label: String, _ fragment: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try directory.write(bytes, to: name)
        do {
            _ = try UnigramTokenizer.load(path)
            XCTFail("\(label): loaded without an error", file: file, line: line)
        } catch let error as KinemaError {
            let message = error.description
            XCTAssertTrue(message.contains(path), "\(label): message does not name the file: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(fragment), "\(label): expected '\(fragment)' in: \(message)", file: file, line: line)
        } catch {
            XCTFail("\(label): expected a KinemaError, got \(error)", file: file, line: line)
        }
    }

    func testMinimalTokenizerJSONLoads() throws {
        let path = try directory.write(text: Self.json(), to: "ok.json")
        let tok = try UnigramTokenizer.load(path)
        XCTAssertEqual(try tok.encode("a b ab", specialTokens: .omit), [1, 0, 2, 1, 2])
    }

    func testCorruptTokenizerJSON() throws {
        try assertRejected(json: "{\"model\": ", "truncated", "invalid JSON")
        try assertRejected(json: "{\"version\":\"1.0\"}", "nomodel", "model")
        try assertRejected(json: Self.json(model: #"{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0],[5,-1.0]]}"#), "vocabtype", "model.vocab[1][0]")
        try assertRejected(json: Self.json(model: #"{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0],["a","x"]]}"#), "scoretype", "model.vocab[1][1]")
        try assertRejected(json: Self.json(model: #"{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0],"a"]}"#), "pair", "model.vocab[1]")
        try assertRejected(json: Self.json(model: #"{"type":"Unigram","unk_id":0,"vocab":{}}"#), "vocabobject", "model.vocab")
        try assertRejected(json: Self.json(model: #"{"type":"Unigram","unk_id":7,"vocab":[["<unk>",0.0]]}"#), "unk", "model.unk_id")
        try assertRejected(json: Self.json(model: #"{"type":"Unigram","unk_id":-1,"vocab":[["<unk>",0.0]]}"#), "unkneg", "model.unk_id")
        try assertRejected(json: Self.json(model: #"{"type":"Unigram","unk_id":0.5,"vocab":[["<unk>",0.0]]}"#), "unkfrac", "model.unk_id")
        try assertRejected(json: Self.json(normalizer: #"{"type":"Precompiled","precompiled_charsmap":"!!notbase64!!"}"#), "b64", "base64")
        // Header claims a 64-byte trie, 8 bytes follow.
        let truncated = Self.base64([64, 0, 0, 0] + [UInt8](repeating: 0, count: 8))
        try assertRejected(json: Self.json(normalizer: #"{"type":"Precompiled","precompiled_charsmap":"\#(truncated)"}"#), "trie", "truncated")
        let short = Self.base64([1, 0])
        try assertRejected(json: Self.json(normalizer: #"{"type":"Precompiled","precompiled_charsmap":"\#(short)"}"#), "short", "header")
        let odd = Self.base64([3, 0, 0, 0, 1, 2, 3])
        try assertRejected(json: Self.json(normalizer: #"{"type":"Precompiled","precompiled_charsmap":"\#(odd)"}"#), "odd", "multiple of 4")
        try assertRejected(json: Self.json(normalizer: #"{"type":"Replace","pattern":{"Regex":"(a|b)+"},"content":""}"#), "regex", "regex")
        try assertRejected(json: Self.json(normalizer: #"{"type":"Lowercase"}"#), "lower", "Lowercase")
        try assertRejected(json: Self.json(model: #"{"type":"BPE","vocab":{},"merges":[]}"#), "bpe", "BPE")
        try assertRejected(json: "", "empty", "empty")
    }

    func testCorruptSentencePieceModel() throws {
        let good = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizer/plain/spiece.model"))))
        // Cut inside the first piece message (length-delimited field runs past the end).
        try assertRejected(bytes: Array(good.prefix(5)), name: "cut.model", "cut", "truncated")
        // A length prefix that claims more than the file holds.
        try assertRejected(bytes: [0x0A, 0xFF, 0xFF, 0x03, 0x0A], name: "long.model", "long", "runs past the end")
        // Wire type 3 (start group) is not protobuf SentencePiece uses.
        try assertRejected(bytes: [0x0B], name: "group.model", "group", "wire type")
        // An 11-byte varint.
        try assertRejected(bytes: [0x08] + [UInt8](repeating: 0xFF, count: 11), name: "varint.model", "varint", "varint")
        // A valid-looking file with no pieces.
        try assertRejected(bytes: [0x12, 0x00], name: "nopieces.model", "nopieces", "no pieces")
        // Piece 0 with a bad type value.
        try assertRejected(bytes: [0x0A, 0x05, 0x0A, 0x01, 0x61, 0x18, 0x09], name: "type.model", "type", "piece type")
        // unk_id pointing at a NORMAL piece (default unk_id 0).
        try assertRejected(bytes: [0x0A, 0x03, 0x0A, 0x01, 0x61], name: "unk.model", "unk", "unk_id")
        try assertRejected(bytes: [], name: "empty.model", "empty", "empty")
    }

    /// Deterministic xorshift so the fuzz is the same on every run.
    private struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    private func mutate(_ bytes: [UInt8], _ rng: inout Rng) -> [UInt8] {
        var b = bytes
        switch rng.below(5) {
        case 0: for _ in 0..<(1 + rng.below(8)) where !b.isEmpty { b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next()) }
        case 1: b = Array(b.prefix(rng.below(b.count)))
        case 2: if !b.isEmpty { b.remove(at: rng.below(b.count)) }
        case 3: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.below(b.count + 1))
        default:
            // Bit flips near the start, where headers and lengths live.
            for _ in 0..<(1 + rng.below(4)) where !b.isEmpty { let i = rng.below(min(b.count, 512)); b[i] ^= 1 << UInt8(rng.below(8)) }
        }
        return b
    }

    private func fuzz(_ fixture: String, name: String, count: Int, seed: UInt64) throws {
        let good = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path(fixture))))
        var rng = Rng(state: seed)
        var loaded = 0
        for round in 0..<count {
            let bytes = mutate(good, &rng)
            let path = try directory.write(bytes, to: name)
            do {
                let tok = try UnigramTokenizer.load(path)
                loaded += 1
                // A file that still loads must still tokenize without trapping.
                for text in ["a cat, 猫 😀 ｶﾀｶﾅ\t</s> x", "", "<0x41> ①"] {
                    let ids = try tok.encode(text)
                    _ = tok.decode(ids)
                    _ = try? tok.encode(text, maxLength: 8)
                }
            } catch is KinemaError {
                continue
            } catch {
                XCTFail("\(fixture) round \(round): non-Kinema error \(error)")
            }
        }
        // Both outcomes must occur, or the fuzz is not exercising anything.
        XCTAssertGreaterThan(loaded, 0, "\(fixture): no mutation loaded")
        XCTAssertLessThan(loaded, count, "\(fixture): no mutation was rejected")
    }

    func testFuzzTokenizerJSON() throws {
        try fuzz("tokenizer/legacy/tokenizer.json", name: "fuzz.json", count: 200, seed: 0x9E3779B97F4A7C15)
        try fuzz("tokenizer/bf/tokenizer.json", name: "fuzz.json", count: 40, seed: 0x1234_5678_9ABC_DEF1)
        try fuzz("tokenizer/generic/tokenizer.json", name: "fuzz.json", count: 150, seed: 0x5EED)
    }

    func testFuzzSentencePieceModel() throws {
        try fuzz("tokenizer/plain/spiece.model", name: "fuzz.model", count: 200, seed: 0xC0FFEE)
        try fuzz("tokenizer/bf/spiece.model", name: "fuzz.model", count: 60, seed: 0xBADC0DE)
        try fuzz("tokenizer/generic/spiece.model", name: "fuzz.model", count: 150, seed: 0xFACADE)
    }
}
