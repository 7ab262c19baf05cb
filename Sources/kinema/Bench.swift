import ArgumentParser
import Foundation
import KinemaCUDA
import KinemaCore
import KinemaModels
import KinemaPipeline

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the Wan DiT forward (or, with --vae, the VAE decode) at a real model shape with synthetic weights.",
        discussion: "Sizes are latent sizes: pixels are 4·(F−1)+1 frames and 8× height/width. Prints per-step seconds and GFLOP/s; --json writes the report.")

    enum Shape: String, ExpressibleByArgument, CaseIterable {
        case t2v1_3b = "1.3b", t2v14b = "14b", i2v14b = "i2v-14b"
        var config: WanConfig {
            switch self {
            case .t2v1_3b: return .t2v1_3B
            case .t2v14b: return .t2v14B
            case .i2v14b: return .i2v14B
            }
        }
    }

    @Option(help: "Model shape: \(Shape.allCases.map(\.rawValue).joined(separator: ", ")).")
    var shape: Shape = .t2v1_3b

    @Option(help: "Latent frames.") var frames = 8
    @Option(help: "Latent height (even).") var height = 16
    @Option(help: "Latent width (even).") var width = 16
    @Option(help: "Text tokens in the context.") var textTokens = 512
    @Option(help: "Warm-up runs.") var warmup = 1
    @Option(help: "Timed runs (the median is reported).") var iterations = 3
    @Option(help: "Write the report as JSON to this file.") var json: String?
    @Flag(help: "After timing, run once more with per-kernel GPU timing and print the breakdown.") var profile = false
    @Flag(help: "Time the Wan2.1 VAE decode instead; --frames/--height/--width are then PIXEL sizes (e.g. 81, 480, 832).")
    var vae = false
    @Flag(help: "Time a whole text-to-video generation instead (umT5-XXL encode, --steps DiT steps, VAE decode); --frames/--height/--width are then PIXEL sizes.")
    var pipeline = false
    @Option(help: "--pipeline: sampler steps (UniPC, shift 5).") var steps = 4
    @Option(help: "--pipeline: classifier-free guidance scale (≤ 1: one DiT pass per step).") var guidance: Float = 1
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        if vae { return try runVAE() }
        if pipeline { return try runPipeline() }
        try runReportingErrors {
            var request = DiTBenchmarkRequest(
                config: shape.config, latentFrames: frames, latentHeight: height, latentWidth: width,
                precision: compute.precision, device: compute.device.device)
            request.textTokens = textTokens
            request.warmup = warmup
            request.iterations = iterations
            request.maxDeviceMemory = try compute.memoryBudget()
            request.profile = profile
            let report = try DiTBenchmark.run(request)
            print("Wan DiT \(shape.rawValue), \(compute.precision.rawValue), \(compute.device.device): latent \(frames)×\(height)×\(width) = \(report.tokens) tokens, \(textTokens) text tokens")
            print(String(format: "  build (synthetic weights): %.2f s", report.loadSeconds))
            print("  steps: " + report.stepSeconds.map { String(format: "%.3f s", $0) }.joined(separator: ", "))
            print(String(format: "  median: %.3f s/forward, %.1f GFLOP/s (%.3g FLOP)", report.medianSeconds, report.achievedGFLOPS, report.flops))
            if let peak = report.peakDeviceBytes { print("  peak device memory (Kinema allocator): \(formatBytes(peak))") }
            if let resident = report.residentDeviceBytes { print("  resident after build (weights): \(formatBytes(resident))") }
            if let blocks = report.peakBlocks { print("  largest blocks in use at the peak: " + blocks.joined(separator: ", ")) }
            printSelection(report.selection, report.cudnnPlans)
            if let kernels = report.kernels {
                let total = kernels.reduce(0) { $0 + $1.milliseconds }
                print(String(format: "  per-kernel GPU time of one profiled forward (%.1f ms in kernels):", total))
                for kernel in kernels.prefix(25) {
                    print(String(format: "    %9.2f ms %5.1f%%  %6d calls  %@", kernel.milliseconds, 100 * kernel.milliseconds / max(total, 1e-9), kernel.calls, kernel.name))
                }
            }
            try writeJSON(report)
        }
    }

    private func runVAE() throws {
        try runReportingErrors {
            var request = VAEDecodeBenchmarkRequest(
                frames: frames, height: height, width: width, precision: compute.precision, device: compute.device.device)
            request.warmup = warmup
            request.iterations = iterations
            request.maxDeviceMemory = try compute.memoryBudget()
            request.profile = profile
            let report = try VAEDecodeBenchmark.run(request)
            print("Wan2.1 VAE decode, \(compute.precision.rawValue), \(compute.device.device): latent \(report.latentShape) → video \(report.outputShape)")
            print(String(format: "  build (synthetic weights): %.2f s", report.loadSeconds))
            if !report.warmupSeconds.isEmpty {
                print("  warm-up decodes (first: kernel compiles, conv plan choice): " + report.warmupSeconds.map { String(format: "%.3f s", $0) }.joined(separator: ", "))
            }
            print("  decodes (\(report.timing)): " + report.decodeSeconds.map { String(format: "%.3f s", $0) }.joined(separator: ", "))
            print(String(format: "  median: %.3f s/decode", report.medianSeconds))
            if let peak = report.peakDeviceBytes { print("  peak device memory (Kinema allocator): \(formatBytes(peak))") }
            printSelection(report.selection, report.cudnnPlans)
            if let kernels = report.kernels { printKernels(kernels, of: "decode") }
            try writeJSON(report)
        }
    }

    private func runPipeline() throws {
        try runReportingErrors {
            var settings = GenerationSettings(prompt: "a red circle moving right across a white background, smooth motion, high detail")
            settings.frames = frames
            settings.height = height
            settings.width = width
            settings.sampler = SamplerConfiguration(kind: .unipc, steps: steps, shift: 5)
            settings.guidance = guidance
            settings.negativePrompt = ""
            var request = PipelineBenchmarkRequest(
                transformer: shape.config, settings: settings, precision: compute.precision, device: compute.device.device)
            request.warmup = warmup
            request.iterations = iterations
            request.maxDeviceMemory = try compute.memoryBudget()
            request.profile = profile
            let report = try PipelineBenchmark.run(request)
            print("Wan2.1 text-to-video \(shape.rawValue) + umT5-XXL + VAE, \(compute.precision.rawValue), \(compute.device.device): \(frames)×\(height)×\(width), \(steps) steps, guidance \(guidance)")
            print(String(format: "  build (synthetic weights): %.2f s", report.buildSeconds))
            print(String(format: "  umT5-XXL encode of a 512-token prompt: median %.4f s (the process's first: %.3f s)",
                         report.textEncodeMedianSeconds, report.firstTextEncodeSeconds))
            func describe(_ run: PipelineRunTiming) -> String {
                String(format: "encode %.3f s, steps %@, decode %.3f s, total %.3f s", run.encodeSeconds,
                       run.stepSeconds.map { String(format: "%.3f", $0) }.joined(separator: "/"), run.decodeSeconds, run.totalSeconds)
            }
            if let first = report.warmupRuns.first {
                print("  first generation (kernels compiled or read from the cache, cuDNN plans chosen or recalled): " + describe(first))
            }
            for run in report.runs { print("  run: " + describe(run)) }
            print(String(format: "  median: %.3f s per generation", report.medianSeconds))
            if let peak = report.peakDeviceBytes { print("  peak device memory (Kinema allocator): \(formatBytes(peak))") }
            if let kernels = report.textEncodeKernels { printKernels(kernels, of: "umT5-XXL encode") }
            if let kernels = report.stepKernels, let wall = report.profiledStepSeconds {
                print("  profiled generation, steps' wall: " + wall.map { String(format: "%.3f s", $0) }.joined(separator: ", "))
                printKernels(kernels, of: "generation's \(wall.count) steps")
            }
            if let kernels = report.decodeKernels, let wall = report.profiledDecodeSeconds {
                print(String(format: "  profiled decode to the host: %.3f s wall", wall))
                printKernels(kernels, of: "decode")
            }
            try writeJSON(report)
        }
    }

    private func printSelection(_ selection: String?, _ plans: [String]?) {
        if let selection { print("  \(selection)") }
        for plan in plans ?? [] { print("    cuDNN \(plan)") }
    }

    private func printKernels(_ kernels: [KernelTime], of what: String) {
        let total = kernels.reduce(0) { $0 + $1.milliseconds }
        print(String(format: "  per-kernel GPU time of one profiled %@ (%.1f ms in kernels):", what, total))
        for kernel in kernels.prefix(25) {
            print(String(format: "    %9.2f ms %5.1f%%  %6d calls  %@", kernel.milliseconds, 100 * kernel.milliseconds / max(total, 1e-9), kernel.calls, kernel.name))
        }
    }

    private func writeJSON<Report: Encodable>(_ report: Report) throws {
        guard let json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: json))
    }
}
