import Foundation
import KinemaCore
import KinemaIO
import KinemaPipeline
import KinemaTestSupport
import XCTest

// The demo-world frame analyser on clips rendered by tools/demo-model/world.py with known colour, shape and
// direction (Tests/Fixtures/demo_world, scripts/goldens/demo_world_goldens.py), and against the numbers its
// Python twin (tools/demo-model/analyse.py) reads from the same clips.

final class DemoFrameAnalysisTests: XCTestCase {
    struct Case {
        let prompt: String
        let truth: DemoPromptMeaning
        let python: [String: Any]
    }

    func loadCases() throws -> (clips: [Tensor], cases: [Case]) {
        let source = try Fixtures.open("demo_world/clips.safetensors")
        let u8 = try source.tensor("clips")  // [N, 3, T, H, W] U8
        let values = try u8.floats()
        let n = u8.shape[0]
        let per = values.count / n
        let clips = try (0..<n).map { i in
            try Tensor(values[(i * per)..<((i + 1) * per)].map { $0 / 127.5 - 1 }, shape: Array(u8.shape.dropFirst()))
        }
        let data = try XCTUnwrap(FileManager.default.contents(atPath: Fixtures.path("demo_world/cases.json")))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let entries = try XCTUnwrap(json["cases"] as? [[String: Any]])
        let cases = try entries.map { entry -> Case in
            let truth = try XCTUnwrap(entry["truth"] as? [String: String])
            return Case(
                prompt: try XCTUnwrap(entry["prompt"] as? String),
                truth: DemoPromptMeaning(
                    colour: try XCTUnwrap(truth["colour"]), shape: try XCTUnwrap(truth["shape"]),
                    direction: try XCTUnwrap(truth["direction"])),
                python: try XCTUnwrap(entry["python"] as? [String: Any]))
        }
        XCTAssertEqual(clips.count, cases.count)
        return (clips, cases)
    }

    func testRenderedClipsReadBackAsTheirAttributes() throws {
        let (clips, cases) = try loadCases()
        for (clip, c) in zip(clips, cases) {
            let found = try DemoFrameAnalyser.analyse(clip)
            let match = found.matches(c.truth)
            XCTAssertTrue(match.colour && match.direction && match.shape, "\(c.prompt): \(found)")
            // Same numbers as the Python twin on the same U8 clip.
            let python = c.python
            XCTAssertEqual(found.dx, Float(try XCTUnwrap(python["dx"] as? Double)), accuracy: 1e-4, c.prompt)
            XCTAssertEqual(found.dy, Float(try XCTUnwrap(python["dy"] as? Double)), accuracy: 1e-4, c.prompt)
            XCTAssertEqual(found.fill, Float(try XCTUnwrap(python["fill"] as? Double)), accuracy: 1e-5, c.prompt)
            XCTAssertEqual(found.area, Float(try XCTUnwrap(python["area"] as? Double)), accuracy: 1e-3, c.prompt)
            let background = try XCTUnwrap(python["background"] as? [Double]).map(Float.init)
            for k in 0..<3 { XCTAssertEqual(found.background[k], background[k], accuracy: 1e-6, c.prompt) }
        }
    }

    func testPromptsParseToTheirAttributes() throws {
        let (_, cases) = try loadCases()
        for c in cases { XCTAssertEqual(DemoPromptMeaning(prompt: c.prompt), c.truth, c.prompt) }
        XCTAssertEqual(
            DemoPromptMeaning(prompt: "A yellow triangle moving left quickly"),
            DemoPromptMeaning(colour: "yellow", shape: "triangle", direction: "left"))
        // The background's colour words do not count as the object's.
        XCTAssertEqual(
            DemoPromptMeaning(prompt: "a red square moving up on a dark blue background"),
            DemoPromptMeaning(colour: "red", shape: "square", direction: "up"))
        XCTAssertNil(DemoPromptMeaning(prompt: "a red blue circle moving up"))
        XCTAssertNil(DemoPromptMeaning(prompt: "a purple hexagon moving sideways"))
    }

    /// Playing a clip backwards must flip the direction read from it (the direction is not a constant).
    func testReversedClipMovesTheOtherWay() throws {
        let (clips, cases) = try loadCases()
        let opposite = ["right": "left", "left": "right", "up": "down", "down": "up"]
        for (clip, c) in zip(clips, cases) {
            let (t, h, w) = (clip.shape[1], clip.shape[2], clip.shape[3])
            let values = try clip.floats()
            var reversed = values
            for ch in 0..<3 {
                for f in 0..<t {
                    let from = (ch * t + f) * h * w
                    let to = (ch * t + (t - 1 - f)) * h * w
                    reversed.replaceSubrange(to..<(to + h * w), with: values[from..<(from + h * w)])
                }
            }
            let found = try DemoFrameAnalyser.analyse(try Tensor(reversed, shape: clip.shape))
            XCTAssertEqual(found.direction, opposite[c.truth.direction], c.prompt)
            XCTAssertEqual(found.colour, c.truth.colour, c.prompt)
        }
    }

    /// A frame with nothing on it, or a still object, gives no colour / no direction rather than a guess.
    func testEmptyAndStillClipsAreNotRecognised() throws {
        let (clips, cases) = try loadCases()
        let background = try Tensor([Float](repeating: -1, count: 3 * 5 * 32 * 32), shape: [3, 5, 32, 32])
        let empty = try DemoFrameAnalyser.analyse(background)
        XCTAssertNil(empty.colour)
        XCTAssertNil(empty.direction)
        XCTAssertNil(empty.shape)
        // Freeze the first frame of a clip for its whole length.
        let clip = clips[0]
        let (t, h, w) = (clip.shape[1], clip.shape[2], clip.shape[3])
        let values = try clip.floats()
        var still = values
        for ch in 0..<3 {
            for f in 1..<t {
                let from = ch * t * h * w
                still.replaceSubrange((from + f * h * w)..<(from + (f + 1) * h * w), with: values[from..<(from + h * w)])
            }
        }
        let found = try DemoFrameAnalyser.analyse(try Tensor(still, shape: clip.shape))
        XCTAssertNil(found.direction, "\(cases[0].prompt) frozen: \(found)")
        XCTAssertEqual(found.colour, cases[0].truth.colour)
    }

    func testWrongShapesAreRejected() {
        XCTAssertThrowsError(try DemoFrameAnalyser.analyse(try Tensor([Float](repeating: 0, count: 16), shape: [4, 1, 2, 2])))
        XCTAssertThrowsError(try DemoFrameAnalyser.analyse(try Tensor([Float](repeating: 0, count: 12), shape: [2, 3, 1, 1, 2])))
    }
}
