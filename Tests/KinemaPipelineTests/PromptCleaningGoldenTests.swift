import Foundation
import KinemaTestSupport
import XCTest

@testable import KinemaPipeline

// WanPrompts.clean(ftfy: false) against diffusers' prompt_clean without ftfy and unescapeHTML against Python's html.unescape on
// ~4,800 cases (scripts/goldens/prompt_goldens.py): every HTML5 entity with and without ';', numeric
// edge cases, the longest-prefix rule, whitespace variety, and random mixes.
final class PromptCleaningGoldenTests: XCTestCase {
    struct Case: Decodable {
        let text: String
        let unescaped: String
        let cleaned: String
    }

    struct File: Decodable { let cases: [Case] }

    func testMatchesPythonHTMLUnescapeAndDiffusersPromptClean() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("prompts/prompt_clean.json")))
        let cases = try JSONDecoder().decode(File.self, from: data).cases
        XCTAssertGreaterThan(cases.count, 4000)
        var unescapeFailures: [String] = []
        var cleanFailures: [String] = []
        for c in cases {
            // Compare scalar by scalar: Swift's String equality is canonical-equivalence, Python's is not.
            let unescaped = WanPrompts.unescapeHTML(c.text)
            if Array(unescaped.unicodeScalars) != Array(c.unescaped.unicodeScalars) {
                unescapeFailures.append("\(c.text.debugDescription): \(unescaped.debugDescription) ≠ \(c.unescaped.debugDescription)")
            }
            let cleaned = WanPrompts.clean(c.text, ftfy: false)
            if Array(cleaned.unicodeScalars) != Array(c.cleaned.unicodeScalars) {
                cleanFailures.append("\(c.text.debugDescription): \(cleaned.debugDescription) ≠ \(c.cleaned.debugDescription)")
            }
        }
        XCTAssertTrue(unescapeFailures.isEmpty, "\(unescapeFailures.count) html.unescape mismatches, e.g.\n" + unescapeFailures.prefix(10).joined(separator: "\n"))
        XCTAssertTrue(cleanFailures.isEmpty, "\(cleanFailures.count) prompt_clean mismatches, e.g.\n" + cleanFailures.prefix(10).joined(separator: "\n"))
    }

    struct FixCase: Decodable {
        let text: String
        let fixed: String
        let cleaned: String
    }

    struct FixFile: Decodable { let cases: [FixCase] }

    // TextFixer.fixText against ftfy 6.3.1's fix_text and WanPrompts.clean against official Wan's clean
    // (ftfy, html.unescape twice, whitespace) on ~1,000 cases without mojibake (scripts/goldens/prompt_goldens.py).
    func testMatchesFTFYFixTextAndOfficialWanClean() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("prompts/ftfy_clean.json")))
        let cases = try JSONDecoder().decode(FixFile.self, from: data).cases
        XCTAssertGreaterThan(cases.count, 900)
        var fixFailures: [String] = []
        var cleanFailures: [String] = []
        var changedByFTFY = 0
        for c in cases {
            let fixed = TextFixer.fixText(c.text)
            if Array(fixed.unicodeScalars) != Array(c.fixed.unicodeScalars) {
                fixFailures.append("\(c.text.debugDescription): \(fixed.debugDescription) ≠ \(c.fixed.debugDescription)")
            }
            let cleaned = WanPrompts.clean(c.text)
            if Array(cleaned.unicodeScalars) != Array(c.cleaned.unicodeScalars) {
                cleanFailures.append("\(c.text.debugDescription): \(cleaned.debugDescription) ≠ \(c.cleaned.debugDescription)")
            }
            if Array(c.fixed.unicodeScalars) != Array(c.text.unicodeScalars) { changedByFTFY += 1 }
        }
        // The corpus must exercise the fixer, not only pass text through.
        XCTAssertGreaterThan(changedByFTFY, cases.count / 2)
        XCTAssertTrue(fixFailures.isEmpty, "\(fixFailures.count) fix_text mismatches, e.g.\n" + fixFailures.prefix(10).joined(separator: "\n"))
        XCTAssertTrue(cleanFailures.isEmpty, "\(cleanFailures.count) Wan clean mismatches, e.g.\n" + cleanFailures.prefix(10).joined(separator: "\n"))
    }

    func testWithoutFTFYIsDiffusersWithoutFTFY() {
        XCTAssertEqual(WanPrompts.clean("\u{201C}ﬁne\u{201D}\u{FF01}", ftfy: false), "\u{201C}ﬁne\u{201D}\u{FF01}")
        XCTAssertEqual(WanPrompts.clean("\u{201C}ﬁne\u{201D}\u{FF01}"), "\"fine\"!")
    }
}
