import ArgumentParser
import Foundation
import KinemaCore
import KinemaIO
import KinemaNN
import KinemaPipeline

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a video from a prompt (and an image) with a Wan2.1 T2V, I2V or FLF2V model.",
        discussion: """
            MODEL is a diffusers pipeline folder (model_index.json, e.g. Wan2.1-T2V-1.3B-Diffusers) or an original \
            Wan folder (config.json, diffusion_pytorch_model*.safetensors, models_t5_umt5-xxl-enc-bf16.pth, \
            Wan2.1_VAE.pth, google/umt5-xxl/). --transformer replaces the DiT with a single file such as LightX2V's \
            4-step distilled model. Without --model, the bundled demo model (models/kinema-demo, or \
            $KINEMA_DEMO_MODEL) runs: its 4-step student where the bundle has one, else its base model. A folder's kinema_defaults.json sets its own defaults. \
            The output format follows the extension: .gif, .png (numbered frames), .apng, \
            .y4m, .mp4 (needs ffmpeg). Command-line values override --config, which overrides the defaults. \
            Image-to-video (Wan2.1-I2V models, which add image_encoder/ + image_processor/ or \
            models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth): --image gives the first frame (PNG or JPEG); \
            --height × --width is then the target area and the video keeps the image's aspect ratio (sides \
            multiples of 16). First-last-frame models (Wan2.1-FLF2V) also take --last-image.
            """)

    @Option(help: "Model folder (diffusers pipeline or original Wan layout; default: the bundled demo model).") var model: String?
    @Option(help: "A single-file transformer that replaces the folder's (LightX2V / ComfyUI .safetensors).") var transformer: String?
    @Option(help: "What to generate.") var prompt: String
    @Option(help: "What to avoid (default: Wan's negative prompt).") var negativePrompt: String?
    @Option(help: "First frame for image-to-video (PNG or JPEG).") var image: String?
    @Option(help: "Last frame for first-last-frame-to-video (PNG or JPEG; needs --image and an FLF2V model).") var lastImage: String?
    @Option(help: "Video size rule for --image: diffusers (default; WanImageToVideoPipeline's example) or wan (Wan2.1's image2video.py).")
    var sizeRule: WanVideoSizeRule = .diffusers
    @Option(help: "Frames, 4k+1 (default 81).") var frames: Int?
    @Option(help: "Height in pixels, a multiple of 16 (default 480).") var height: Int?
    @Option(help: "Width in pixels, a multiple of 16 (default 832).") var width: Int?
    @Option(help: "Denoising steps (default 50).") var steps: Int?
    @Option(help: "Classifier-free guidance scale; 1 disables CFG (default 5).") var guidance: Float?
    @Option(help: "Flow shift (default: the model's scheduler config, else 5).") var shift: Double?
    @Option(help: "Sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (default unipc).") var sampler: SamplerKind?
    @Option(help: "Step-distill timesteps, comma separated, e.g. 1000,750,500,250 (implies --sampler stepDistill).")
    var denoisingSteps: String?
    @Option(help: "Random seed (printed when not given).") var seed: UInt64?
    @Option(help: "Initial latents (.safetensors with a tensor 'latents' [1, 16, T, H/8, W/8]) instead of seeded noise.")
    var latents: String?
    @Option(help: "LightX2V JSON config (infer_steps, target_video_length, sample_guide_scale, …).") var config: String?
    @Option(help: "Frames per second of the output.") var fps: Int?
    @Option(help: "Output file; the extension picks the format.") var output: String
    @OptionGroup var compute: ComputeOptions

    /// Settings from defaults, the model's scheduler config, --config and the flags, validated before any load.
    /// `configs`: LightX2V JSON files applied in order (the folder's defaults, then --config).
    func settings(schedulerShift: Double?, configs: [String]) throws -> (GenerationSettings, fps: Int, ignored: [String]) {
        var settings = GenerationSettings(prompt: prompt)
        settings.sampler.shift = schedulerShift ?? 5
        var outputFPS = 16
        var ignored: [String] = []
        for config in configs {
            guard let data = FileManager.default.contents(atPath: config) else { throw KinemaError.io(path: config, reason: "cannot read") }
            let parsed = try LightX2VConfig.parse(data, origin: config)
            parsed.apply(to: &settings)
            if let value = parsed.fps { outputFPS = value }
            ignored += parsed.ignoredKeys
        }
        if let negativePrompt { settings.negativePrompt = negativePrompt }
        if let frames { settings.frames = frames }
        if let height { settings.height = height }
        if let width { settings.width = width }
        if let steps { settings.sampler.steps = steps }
        if let guidance { settings.guidance = guidance }
        if let shift { settings.sampler.shift = shift }
        if let sampler { settings.sampler.kind = sampler }
        if let denoisingSteps {
            let values = denoisingSteps.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
                throw KinemaError.invalidArgument("--denoising-steps must be comma-separated integers, got '\(denoisingSteps)'")
            }
            settings.sampler.kind = .stepDistill
            settings.sampler.denoisingSteps = values.compactMap { $0 }
        }
        if settings.sampler.kind == .stepDistill, settings.sampler.denoisingSteps == nil {
            settings.sampler.denoisingSteps = SamplerConfiguration.lightX2VFourStep.denoisingSteps
        }
        if let fps { outputFPS = fps }
        guard outputFPS > 0, outputFPS <= 240 else { throw KinemaError.invalidArgument("--fps must be in 1…240, got \(outputFPS)") }
        settings.seed = seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        try settings.validate()
        _ = try VideoFormat.from(path: output)
        return (settings, outputFPS, ignored)
    }

    func run() throws {
        try runReportingErrors {
            let clock = ContinuousClock()
            let started = clock.now
            // Everything that can be checked without weights is checked first.
            var modelPath = model
            var transformerPath = transformer
            var configPath = config
            if model == nil {
                if image != nil || lastImage != nil {
                    throw KinemaError.invalidArgument(
                        "--image needs an image-to-video model: pass --model with a Wan2.1 I2V or FLF2V folder (the bundled demo model is text-to-video)")
                }
                let demo = try DemoModel.locate(executable: executablePath(), currentDirectory: FileManager.default.currentDirectoryPath)
                modelPath = demo.folder
                if demo.defaultVariant == .student {
                    note("model: bundled demo model \(demo.folder) (4-step student)")
                    transformerPath = transformer ?? demo.studentTransformer
                    configPath = config ?? demo.studentConfig
                } else {
                    note("model: bundled demo model \(demo.folder) (base model, its default steps with CFG; this bundle has no 4-step student)")
                }
            }
            let folder = try WanModelFolder.locate(modelPath ?? "", transformerOverride: transformerPath)
            let configs = [folder.defaultsConfig, configPath].compactMap { $0 }
            var (settings, outputFPS, ignored) = try settings(schedulerShift: folder.schedulerShift, configs: configs)
            let images = try ImageInputs.prepare(folder: folder, imagePath: image, lastImagePath: lastImage, settings: &settings, rule: sizeRule)
            if let images {
                note("video size \(settings.width)×\(settings.height) from the \(images.first.width)×\(images.first.height) image")
            }
            _ = try compute.memoryBudget()
            if !ignored.isEmpty { note("config: ignored keys \(ignored.joined(separator: ", "))") }
            if seed == nil { note("seed: \(settings.seed)") }
            var start: Tensor?
            if let latents {
                start = try Checkpoints.open(latents).tensor("latents")
            }

            let backend = try compute.makeBackend()
            let loadStart = clock.now
            let pipeline = try TextToVideoPipeline.load(folder, backend: backend, precision: compute.precision)
            let loadTime = clock.now - loadStart
            note("loaded \(folder.layout.rawValue) model in \(format(loadTime)) on \(backend.device)")

            let encodeStart = clock.now
            let session = try images.map { try pipeline.session(settings, images: $0, latents: start) }
                ?? pipeline.session(settings, latents: start)
            let encodeTime = clock.now - encodeStart
            var progress = ProgressBar(total: session.totalSteps)
            var stepTimes: [Duration] = []
            while !session.isFinished {
                let stepStart = clock.now
                try session.step()
                try Backends.synchronize(session.pipeline.backend)  // the step's time, not its queueing time
                stepTimes.append(clock.now - stepStart)
                progress.update(done: session.completedSteps, lastStep: stepTimes.last ?? .zero)
            }
            progress.finish()
            let decodeStart = clock.now
            let video = try session.decode()
            let decodeTime = clock.now - decodeStart
            var options = VideoWriteOptions()
            options.fps = outputFPS
            let written = try VideoWriter.write(video, layout: .channelsFirst, to: output, options: options)
            let total = clock.now - started

            let stepSum = stepTimes.reduce(Duration.zero, +)
            note("steps: " + stepTimes.map(format).joined(separator: ", "))
            var memory = "peak host memory \(peakResidentMegabytes()) MiB"
            if let peak = Backends.peakDeviceBytes(backend) { memory += ", peak GPU memory (Kinema allocator) \(peak >> 20) MiB" }
            note("\(images == nil ? "text" : "text + image") encode \(format(encodeTime)), \(stepTimes.count) steps \(format(stepSum)) (\(format(stepSum / max(stepTimes.count, 1)))/step), VAE decode \(format(decodeTime)), total \(format(total)), \(memory)")
            print(written.count == 1 ? written[0] : "\(written.count) files: \(written.first ?? "")…")
        }
    }
}

extension SamplerKind: ExpressibleByArgument {}
extension WanVideoSizeRule: ExpressibleByArgument {}

/// The running binary's path (Linux: /proc/self/exe), for finding files installed beside it.
func executablePath() -> String? {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? Bundle.main.executablePath
}

func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

func format(_ duration: Duration) -> String {
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    return seconds < 10 ? String(format: "%.2f s", seconds) : String(format: "%.1f s", seconds)
}

func peakResidentMegabytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) / 1024
}

/// A one-line progress bar on stderr: step, bar, seconds per step, ETA.
struct ProgressBar {
    let total: Int
    private var perStep: [Double] = []
    private let interactive = isatty(2) != 0

    init(total: Int) { self.total = total }

    mutating func update(done: Int, lastStep: Duration) {
        let seconds = Double(lastStep.components.seconds) + Double(lastStep.components.attoseconds) * 1e-18
        perStep.append(seconds)
        let mean = perStep.reduce(0, +) / Double(perStep.count)
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "step %d/%d %@ %.2f s/step, ETA %.0f s", done, total, bar, mean, mean * Double(total - done))
        FileHandle.standardError.write(Data(((interactive ? "\r" : "") + line + (interactive ? "" : "\n")).utf8))
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
