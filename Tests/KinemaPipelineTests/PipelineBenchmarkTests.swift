import Foundation
import KinemaCore
import KinemaModels
import KinemaPipeline
import KinemaTestSupport
import XCTest

// `kinema bench --pipeline` end to end on the CPU at the tiny fixture model's shapes (synthetic weights):
// every stage runs and is timed, and the synthetic tokenizer keeps to its contract.

final class PipelineBenchmarkTests: XCTestCase {
    func config(_ component: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("wan_pipeline/diffusers/\(component)/config.json")))
    }

    func testWholePipelineRunsAndReportsEveryStage() throws {
        var settings = GenerationSettings(prompt: "a red circle moving right")
        settings.frames = 5
        settings.height = 32
        settings.width = 32
        settings.sampler = SamplerConfiguration(kind: .unipc, steps: 3, shift: 5)
        settings.guidance = 4
        settings.negativePrompt = ""
        var request = PipelineBenchmarkRequest(
            transformer: try WanConfig.parse(json: try config("transformer"), origin: "transformer"), settings: settings,
            precision: .f32, device: .cpu)
        request.textEncoder = try UMT5Config.parse(json: try config("text_encoder"), origin: "text_encoder")
        request.vae = try WanVAEConfig.parse(json: try config("vae"), origin: "vae")
        request.warmup = 1
        request.iterations = 2
        let report = try PipelineBenchmark.run(request)
        XCTAssertEqual(report.runs.count, 2)
        XCTAssertEqual(report.warmupRuns.count, 1, "the first generation is reported apart from the timed ones")
        XCTAssertEqual(report.warmupRuns.first?.stepSeconds.count, 3)
        XCTAssertEqual(report.textEncodeSeconds.count, 5)
        XCTAssertGreaterThan(report.firstTextEncodeSeconds, 0)
        for run in report.runs {
            XCTAssertEqual(run.stepSeconds.count, 3)
            XCTAssertGreaterThan(run.decodeSeconds, 0)
            XCTAssertGreaterThanOrEqual(run.totalSeconds, run.stepSeconds.reduce(0, +) + run.decodeSeconds)
        }
        XCTAssertNil(report.peakDeviceBytes)
    }

    func testSyntheticTokenizerPadsAndBoundsIDs() throws {
        let tokenizer = SyntheticPromptTokenizer(vocabularySize: 100)
        let (ids, mask) = try tokenizer.promptIDs("a red circle a", maxLength: 8)
        XCTAssertEqual(ids.count, 8)
        XCTAssertEqual(mask, [1, 1, 1, 1, 1, 0, 0, 0])
        XCTAssertEqual(ids[0], ids[3], "the same word gets the same id")
        XCTAssertEqual(ids[4], 1, "eos after the words")
        XCTAssertEqual(Array(ids[5...]), [0, 0, 0])
        XCTAssertTrue(ids[0..<4].allSatisfy { (3..<100).contains($0) })
        let long = try tokenizer.promptIDs(String(repeating: "word ", count: 20), maxLength: 6)
        XCTAssertEqual(long.ids.count, 6)
        XCTAssertEqual(long.ids.last, 1)
        XCTAssertThrowsError(try tokenizer.promptIDs("x", maxLength: 0))
    }
}
