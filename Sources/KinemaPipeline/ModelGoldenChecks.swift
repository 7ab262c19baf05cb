import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// The model goldens (diffusers outputs in Tests/Fixtures, written by scripts/goldens) run on the GPU:
// the Wan DiT cases in both layouts, the Wan VAE decode and encode, and the CLIP vision encoder (Wan I2V's
// image encoder) in both layouts, in f32 and bf16; the I2V / FLF2V pipelines end to end in f32
// (ImageToVideoGoldenChecks.swift).

enum ModelGoldenChecks {
    static func run(gpu: any Backend, fixtures: String) -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        for name in ["t2v", "i2v", "odd"] {
            for layout in ["diffusers", "wan"] {
                for precision in Precision.allCases {
                    let tolerance = precision == .f32 ? 1e-5 : 1e-2
                    checks.append(check("Wan DiT \(name) \(layout) \(precision.rawValue)", tolerance: tolerance) {
                        let files = try ModelFiles.transformer(at: "\(fixtures)/wan_dit/\(name)/\(layout)")
                        let model = try WanTransformer.load(
                            from: files.weights, configJSON: try ModelFiles.configJSON(files), backend: gpu, precision: precision)
                        let io = try SafeTensors.open("\(fixtures)/wan_dit/\(name)/io.safetensors")
                        let inputs = WanTransformerInputs(
                            latents: try io.tensor("hidden_states"), timestep: try io.tensor("timestep"),
                            text: try io.tensor("encoder_hidden_states"),
                            image: io.info("encoder_hidden_states_image") != nil ? try io.tensor("encoder_hidden_states_image") : nil)
                        return (try gpu.download(try model.forward(inputs)), try io.tensor("sample"))
                    })
                }
            }
        }
        let vaeFolder = "\(fixtures)/wan_vae"
        if FileManager.default.fileExists(atPath: vaeFolder) {
            for precision in Precision.allCases {
                // diffusers' own bf16 run of the tiny VAE is 1–2% from its f32 output (fixture manifest).
                let tolerance = precision == .f32 ? 1e-5 : 3e-2
                checks.append(check("Wan VAE decode v13 \(precision.rawValue)", tolerance: tolerance) {
                    let vae = try loadVAE(vaeFolder, gpu: gpu, precision: precision)
                    let io = try SafeTensors.open(vaeFolder + "/io.safetensors")
                    return (try gpu.download(try vae.decode(try io.tensor("v13.dec.latents"))), try io.tensor("v13.sample"))
                })
                checks.append(check("Wan VAE encode v13 \(precision.rawValue)", tolerance: tolerance) {
                    let vae = try loadVAE(vaeFolder, gpu: gpu, precision: precision)
                    let io = try SafeTensors.open(vaeFolder + "/io.safetensors")
                    return (try gpu.download(try vae.encode(try io.tensor("v13.video"), output: .raw)), try io.tensor("v13.enc.mu"))
                })
            }
        }
        checks += clipChecks(gpu: gpu, fixtures: fixtures)
        checks += imageToVideo(gpu: gpu, fixtures: fixtures)
        return checks
    }

    /// CLIP vision encoder hidden_states[-2] against transformers (Tests/Fixtures/clip, clip_goldens.py).
    static func clipChecks(gpu: any Backend, fixtures: String) -> [DoctorCheck] {
        let folder = "\(fixtures)/clip"
        guard FileManager.default.fileExists(atPath: folder) else { return [] }
        var checks: [DoctorCheck] = []
        for layout in ["diffusers", "wan"] {
            for precision in Precision.allCases {
                let tolerance = precision == .f32 ? 1e-5 : 1e-2
                checks.append(check("CLIP vision \(layout) \(precision.rawValue)", tolerance: tolerance) {
                    let configPath = folder + "/image_encoder/config.json"
                    guard let data = FileManager.default.contents(atPath: configPath) else {
                        throw KinemaError.io(path: configPath, reason: "cannot read")
                    }
                    let config = try CLIPVisionConfig(json: data, origin: configPath)
                    let encoder = layout == "diffusers"
                        ? try CLIPVisionEncoder.load(
                            from: try Checkpoints.open(folder + "/image_encoder"), config: config, backend: gpu, precision: precision)
                        : try CLIPVisionEncoder.load(
                            from: try Checkpoints.open(folder + "/wan/models_clip.pth"), config: config, backend: gpu, precision: precision)
                    let io = try SafeTensors.open(folder + "/io.safetensors")
                    return (try encoder(pixelValues: try io.tensor("pixel_values")), try io.tensor("hidden_states_penultimate"))
                })
            }
        }
        return checks
    }

    static func loadVAE(_ folder: String, gpu: any Backend, precision: Precision) throws -> WanVAE {
        let path = folder + "/diffusers/config.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw KinemaError.io(path: path, reason: "cannot read") }
        return try WanVAE.load(
            from: try SafeTensors.open(folder + "/diffusers/diffusion_pytorch_model.safetensors"), configJSON: (data, path),
            backend: gpu, precision: precision)
    }

    static func check(_ name: String, tolerance: Double, _ body: () throws -> (Tensor, Tensor)) -> DoctorCheck {
        DoctorTrace.begin(name)
        do {
            let (actual, expected) = try body()
            guard actual.shape == expected.shape else {
                return DoctorCheck(name: name, passed: false, relativeError: nil, tolerance: tolerance, detail: "shape \(actual.shape) vs reference \(expected.shape)")
            }
            let error = try relativeL2(actual, expected)
            return DoctorCheck(name: name, passed: error <= tolerance, relativeError: error, tolerance: tolerance, detail: "")
        } catch {
            return DoctorCheck(name: name, passed: false, relativeError: nil, tolerance: tolerance, detail: "\(error)")
        }
    }
}
