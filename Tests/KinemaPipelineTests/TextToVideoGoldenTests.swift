import Foundation
import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN
import KinemaPipeline
import KinemaTestSupport
import XCTest

// The whole text-to-video pipeline against diffusers' WanPipeline on a tiny random model
// (Tests/Fixtures/wan_pipeline, written by scripts/goldens/pipeline_goldens.py): prompt cleaning and token
// ids, prompt embeddings, the latents after every sampler step (with CFG), the final latents and the
// decoded video — from both the diffusers folder and the original Wan folder of the same model.

final class TextToVideoGoldenTests: XCTestCase {
    struct Case: Decodable {
        let prompt: String
        let prompt_cleaned: String
        let negative_prompt_used: String?
        let guidance_scale: Float
        let num_frames: Int
        let height: Int
        let width: Int
        let num_inference_steps: Int
        let sampler: String
        let shift: Double
    }

    static func cases() throws -> [String: Case] {
        struct File: Decodable { let cases: [String: Case] }
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("wan_pipeline/cases.json")))
        return try JSONDecoder().decode(File.self, from: data).cases
    }

    func settings(_ c: Case) throws -> GenerationSettings {
        var settings = GenerationSettings(prompt: c.prompt)
        // diffusers encodes a missing negative prompt as "" (Wan's own default differs; see WanPrompts).
        settings.negativePrompt = c.negative_prompt_used ?? ""
        settings.frames = c.num_frames
        settings.height = c.height
        settings.width = c.width
        settings.guidance = c.guidance_scale
        settings.sampler = SamplerConfiguration(
            kind: try XCTUnwrap(SamplerKind(rawValue: c.sampler), c.sampler), steps: c.num_inference_steps, shift: c.shift)
        return settings
    }

    func run(layout: String) throws {
        let folder = try WanModelFolder.locate(Fixtures.path("wan_pipeline/\(layout)"))
        let pipeline = try TextToVideoPipeline.load(folder, backend: CPUBackend.shared, precision: .f32)
        let io = try Fixtures.open("wan_pipeline/io.safetensors")
        let tolerance = Tolerances.goldenF32RelL2
        for (name, c) in try Self.cases().sorted(by: { $0.key < $1.key }) {
            let label = "\(layout)/\(name)"
            XCTAssertEqual(WanPrompts.clean(c.prompt), c.prompt_cleaned, "\(label) prompt cleaning")
            let (ids, _) = try pipeline.tokenizer.promptIDs(WanPrompts.clean(c.prompt), maxLength: 512)
            XCTAssertEqual(ids.map(Int64.init), try io.tensor("\(name).input_ids").integers(), "\(label) token ids")
            assertClose(try pipeline.encode(prompt: c.prompt), try io.tensor("\(name).prompt_embeds"), relL2: tolerance, "\(label) prompt_embeds")
            if let negative = c.negative_prompt_used, c.guidance_scale > 1 {
                assertClose(try pipeline.encode(prompt: negative), try io.tensor("\(name).negative_prompt_embeds"), relL2: tolerance, "\(label) negative_prompt_embeds")
            }
            let session = try pipeline.session(try settings(c), latents: try io.tensor("\(name).latents_in"))
            XCTAssertEqual(session.totalSteps, c.num_inference_steps)
            for step in 0..<c.num_inference_steps {
                try session.step()
                assertClose(try session.latents, try io.tensor("\(name).step\(step).latents"), relL2: tolerance, "\(label) step \(step) latents")
            }
            assertClose(try session.latents, try io.tensor("\(name).latents_out"), relL2: tolerance, "\(label) final latents")
            assertClose(try session.decode(), try io.tensor("\(name).video"), relL2: tolerance, "\(label) video")
        }
    }

    func testDiffusersFolderMatchesWanPipeline() throws { try run(layout: "diffusers") }
    func testOriginalWanFolderMatchesWanPipeline() throws { try run(layout: "wan") }

    func testInvalidSettingsFailBeforeAnyModelWork() throws {
        var settings = GenerationSettings(prompt: "x")
        settings.frames = 8
        XCTAssertThrowsError(try settings.validate()) { XCTAssertTrue("\($0)".contains("4k + 1"), "\($0)") }
        settings.frames = 5
        settings.height = 100
        XCTAssertThrowsError(try settings.validate()) { XCTAssertTrue("\($0)".contains("multiples of 16"), "\($0)") }
        settings.height = 32
        settings.sampler = SamplerConfiguration(kind: .unipc, steps: 0, shift: 5)
        XCTAssertThrowsError(try settings.validate())
    }

    func testPromptCleaningFollowsDiffusers() {
        XCTAssertEqual(WanPrompts.clean("  a\t\tb \n c  "), "a b c")
        XCTAssertEqual(WanPrompts.clean("fish &amp;amp; chips &#x41;&#66; &lt;3"), "fish & chips AB <3")
        XCTAssertEqual(WanPrompts.clean("\u{3000}東京\u{A0}の猫\u{1F}"), "東京 の猫")
    }
}
