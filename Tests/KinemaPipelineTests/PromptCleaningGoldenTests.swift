import Foundation
import KinemaTestSupport
import XCTest

@testable import KinemaPipeline

// WanPrompts.clean against diffusers' prompt_clean and unescapeHTML against Python's html.unescape on
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
            let cleaned = WanPrompts.clean(c.text)
            if Array(cleaned.unicodeScalars) != Array(c.cleaned.unicodeScalars) {
                cleanFailures.append("\(c.text.debugDescription): \(cleaned.debugDescription) ≠ \(c.cleaned.debugDescription)")
            }
        }
        XCTAssertTrue(unescapeFailures.isEmpty, "\(unescapeFailures.count) html.unescape mismatches, e.g.\n" + unescapeFailures.prefix(10).joined(separator: "\n"))
        XCTAssertTrue(cleanFailures.isEmpty, "\(cleanFailures.count) prompt_clean mismatches, e.g.\n" + cleanFailures.prefix(10).joined(separator: "\n"))
    }
}
