import Foundation
import KinemaCore
import KinemaPipeline
import XCTest

// LightX2V's JSON inference configs mapped onto generation settings.

final class LightX2VConfigTests: XCTestCase {
    /// LightX2V's configs/distill/wan21/wan_t2v_distill_fp8_4step_cfg.json, as published.
    let distill = """
        {"infer_steps":4,"target_video_length":81,"text_len":512,"target_height":480,"target_width":832,
         "self_attn_1_type":"flash_attn3","cross_attn_1_type":"flash_attn3","cross_attn_2_type":"flash_attn3",
         "sample_guide_scale":6,"sample_shift":5,"enable_cfg":false,"cpu_offload":false,"offload_granularity":"model",
         "denoising_step_list":[1000,750,500,250],"dit_quantized":true,
         "dit_quantized_ckpt":"lightx2v/Wan2.1-Distill-Models/wan2.1_t2v_14b_scaled_fp8_e4m3_lightx2v_4step.safetensors",
         "dit_quant_scheme":"fp8-sgl"}
        """

    func testDistillConfigSelectsTheFourStepSamplerWithoutCFG() throws {
        let config = try LightX2VConfig.parse(Data(distill.utf8), origin: "distill.json")
        var settings = GenerationSettings(prompt: "p")
        config.apply(to: &settings)
        XCTAssertEqual(settings.sampler.kind, .stepDistill)
        XCTAssertEqual(settings.sampler.denoisingSteps, [1000, 750, 500, 250])
        XCTAssertEqual(settings.sampler.shift, 5)
        XCTAssertEqual(settings.guidance, 1, "enable_cfg false turns guidance off")
        XCTAssertEqual([settings.frames, settings.height, settings.width], [81, 480, 832])
        XCTAssertEqual(
            config.ignoredKeys,
            ["cpu_offload", "cross_attn_1_type", "cross_attn_2_type", "dit_quant_scheme", "dit_quantized", "dit_quantized_ckpt",
             "offload_granularity", "self_attn_1_type", "text_len"])
        try settings.validate()
    }

    func testSmallIntegersAndGuidanceLists() throws {
        let config = try LightX2VConfig.parse(Data(#"{"infer_steps": 1, "sample_guide_scale": [3.5, 3.0], "seed": 0}"#.utf8), origin: "c.json")
        XCTAssertEqual(config.steps, 1)
        XCTAssertEqual(config.guidance, 3.5)
        XCTAssertEqual(config.seed, 0)
    }

    func testBadValuesNameTheKey() {
        for (text, key) in [(#"{"infer_steps": "four"}"#, "infer_steps"), (#"{"infer_steps": 2.5}"#, "infer_steps"),
                            (#"{"enable_cfg": "no"}"#, "enable_cfg"), (#"{"denoising_step_list": [1000, "x"]}"#, "denoising_step_list"),
                            (#"{"seed": -3}"#, "seed")] {
            XCTAssertThrowsError(try LightX2VConfig.parse(Data(text.utf8), origin: "c.json"), text) { error in
                guard case KinemaError.badFile(_, let location, _) = error else { return XCTFail("\(text): \(error)") }
                XCTAssertEqual(location, key, text)
            }
        }
        XCTAssertThrowsError(try LightX2VConfig.parse(Data("[]".utf8), origin: "c.json"))
    }
}
