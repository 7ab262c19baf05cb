import Foundation
import KinemaCore
import KinemaPipeline
import XCTest

// End-to-end check of what the bundled demo model (models/kinema-demo, tools/demo-model/) means: fixed
// prompts × seeds are generated on the CPU with the 4-step student and with the base model (its default
// steps, UniPC + CFG), and each video is read back with DemoFrameAnalyser: the object's colour, its
// direction of motion and its shape must be the prompt's. At least 90% of the cases must pass for each.
// Skips while the model files are absent; the repository's bundle ships both models, so a bundle without
// distill/ fails the student's test rather than skipping it.

final class DemoModelMeaningTests: XCTestCase {
    static let requiredPassRate = 0.9

    /// 24 cases: every colour, shape and direction, both speeds, some named backgrounds, one seed each.
    static let cases: [(prompt: String, seed: UInt64)] = {
        let colours = DemoWorld.colours.map(\.name)
        let backgrounds: [String?] = [nil, nil, "black", "white", "gray", "dark blue"]
        let dark: Set<String> = ["blue"]
        return (0..<24).map { k in
            let colour = colours[k % 8]
            let shape = DemoWorld.shapes[k % 3]
            let direction = DemoWorld.directions[(k / 2) % 4]
            var background = backgrounds[k % backgrounds.count]
            // Combinations the world never renders (world.allowed): same or nearly the same colours.
            if background == "white" && colour == "white" || background == "dark blue" && dark.contains(colour) { background = nil }
            let article = "aeiou".contains(colour.first ?? "x") ? "an" : "a"
            var prompt = "\(article) \(colour) \(shape) moving \(direction)" + (k % 5 == 4 ? " quickly" : "")
            if let background { prompt += " on a \(background) background" }
            return (prompt, UInt64(1000 + k))
        }
    }()

    func demoModel() throws -> DemoModel {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        do {
            return try DemoModel.locate(executable: nil, currentDirectory: root)
        } catch {
            throw XCTSkip("bundled demo model not found (\(error)); train and export it with tools/demo-model (see its README)")
        }
    }

    func testStudentFourStepMeaning() throws { try checkMeaning(.student) }

    func testBaseModelMeaning() throws { try checkMeaning(.base) }

    func checkMeaning(_ variant: DemoModel.Variant) throws {
        let demo = try demoModel()
        if variant == .student && !demo.hasStudent {
            return XCTFail("the bundled demo model has no 4-step student (\(demo.studentTransformer)): the default model is missing")
        }
        let clock = ContinuousClock()
        let started = clock.now
        let backend = try Backends.make(.cpu)
        let pipeline = try TextToVideoPipeline.load(try demo.modelFolder(variant), backend: backend, precision: .f32)
        var passed = 0
        var parts = (colour: 0, direction: 0, shape: 0)
        for (prompt, seed) in Self.cases {
            let meaning = try XCTUnwrap(DemoPromptMeaning(prompt: prompt), prompt)
            let session = try pipeline.session(try demo.settings(prompt: prompt, seed: seed, variant: variant))
            while !session.isFinished { try session.step() }
            let found = try DemoFrameAnalyser.analyse(try session.decode())
            let match = found.matches(meaning)
            parts.colour += match.colour ? 1 : 0
            parts.direction += match.direction ? 1 : 0
            parts.shape += match.shape ? 1 : 0
            let ok = match.colour && match.direction && match.shape
            passed += ok ? 1 : 0
            print("demo \(variant.rawValue) seed \(seed) \(ok ? "PASS" : "FAIL") \"\(prompt)\": \(found)")
        }
        let total = Self.cases.count
        let rate = Double(passed) / Double(total)
        let seconds = Double((clock.now - started).components.seconds)
        print(String(
            format: "demo model meaning, %@: %d/%d pass (%.0f%%); colour %d, direction %d, shape %d of %d; %.0f s on the CPU",
            variant.rawValue, passed, total, 100 * rate, parts.colour, parts.direction, parts.shape, total, seconds))
        XCTAssertGreaterThanOrEqual(rate, Self.requiredPassRate, "\(variant.rawValue): \(passed)/\(total) cases pass")
    }
}
