import Foundation
import KinemaCore
import KinemaIO
import KinemaNN

// `kinema doctor` on the GPU: the tiny I2V / FLF2V pipelines of Tests/Fixtures/wan_i2v (diffusers'
// WanImageToVideoPipeline goldens, scripts/goldens/i2v_goldens.py) run end to end in f32 — CLIP, the VAE
// condition, every sampler step with CFG — and their final latents are compared with diffusers'.

extension ModelGoldenChecks {
    static func imageToVideo(gpu: any Backend, fixtures: String) -> [DoctorCheck] {
        let folder = fixtures + "/wan_i2v"
        guard FileManager.default.fileExists(atPath: folder + "/cases.json") else { return [] }
        return ["i2v", "flf2v"].map { name in
            check("Wan \(name) pipeline (CLIP + VAE condition + DiT steps) f32", tolerance: 1e-5) {
                let (settings, hasLast) = try caseSettings(folder + "/cases.json", name)
                let pipeline = try TextToVideoPipeline.load(try WanModelFolder.locate("\(folder)/\(name)"), backend: gpu, precision: .f32)
                let io = try SafeTensors.open(folder + "/io.safetensors")
                func image(_ key: String) throws -> RGBImage {
                    let t = try io.tensor("\(name).\(key)")
                    return RGBImage(width: t.shape[1], height: t.shape[0], pixels: try t.integers().map { UInt8(clamping: $0) })
                }
                let images = ImageConditioning(first: try image("image_decoded"), last: hasLast ? try image("last_image_decoded") : nil)
                let session = try pipeline.session(settings, images: images, latents: try io.tensor("\(name).latents_in"))
                while !session.isFinished { try session.step() }
                return (try session.latents, try io.tensor("\(name).latents_out"))
            }
        }
    }

    /// The generation settings of one case of wan_i2v/cases.json, and whether it has a last frame.
    static func caseSettings(_ path: String, _ name: String) throws -> (GenerationSettings, Bool) {
        guard let data = FileManager.default.contents(atPath: path),
            let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let c = (root["cases"] as? [String: Any])?[name] as? [String: Any],
            let prompt = c["prompt"] as? String, let frames = c["frames"] as? Int, let height = c["height"] as? Int,
            let width = c["width"] as? Int, let steps = c["steps"] as? Int, let guidance = (c["guidance_scale"] as? NSNumber)?.floatValue,
            let samplerName = c["sampler"] as? String, let sampler = SamplerKind(rawValue: samplerName),
            let shift = (c["shift"] as? NSNumber)?.doubleValue
        else { throw KinemaError.badFile(path: path, location: "cases.\(name)", reason: "missing or malformed case") }
        var settings = GenerationSettings(prompt: prompt)
        settings.negativePrompt = c["negative_prompt_used"] as? String ?? ""
        (settings.frames, settings.height, settings.width, settings.guidance) = (frames, height, width, guidance)
        settings.sampler = SamplerConfiguration(kind: sampler, steps: steps, shift: shift)
        return (settings, c["last_image"] is String)
    }
}
