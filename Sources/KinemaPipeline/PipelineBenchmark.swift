import Foundation
import KinemaCUDA
import KinemaCore
import KinemaModels
import KinemaNN

// `kinema bench --pipeline`: a whole text-to-video generation (umT5-XXL prompt encode, the sampler's steps
// of the Wan DiT, VAE decode to pixels on the host) with synthetic weights of the real Wan2.1 shapes — the
// counterpart of scripts/bench/diffusers_pipeline_baseline.py. Also times the umT5-XXL encode of one
// 512-token prompt alone. Wall-clock timing (the latents stay on the device, so each step is followed by a
// device synchronization before the clock is read; the video is downloaded at the end), warm-up first,
// median of the timed runs.

public struct PipelineBenchmarkRequest {
    public var transformer: WanConfig
    public var textEncoder: UMT5Config = .xxl
    public var vae: WanVAEConfig = .wan21
    public var settings: GenerationSettings
    public var precision: Precision
    public var device: Device
    public var warmup = 1
    public var iterations = 2
    public var maxDeviceMemory: Int?
    /// After timing, encode the prompt once more, and run one more generation, with per-kernel GPU timing
    /// (CUDA only): the steps' kernels against their wall time show where a step's time outside kernels goes.
    public var profile = false

    public init(transformer: WanConfig, settings: GenerationSettings, precision: Precision, device: Device) {
        self.transformer = transformer
        self.settings = settings
        self.precision = precision
        self.device = device
    }
}

public struct PipelineBenchmarkReport: Codable {
    public var buildSeconds: Double
    /// The process's first umT5 encode (its kernels compiled or read from the kernel cache, cuBLASLt's plans).
    public var firstTextEncodeSeconds: Double
    public var textEncodeSeconds: [Double]
    public var textEncodeMedianSeconds: Double
    /// The untimed warm-up generations, the first of them the process's first: the DiT's and VAE's kernels
    /// compiled or read from the kernel cache, cuDNN's attention and convolution plans chosen or recalled.
    public var warmupRuns: [PipelineRunTiming]
    /// One entry per timed generation.
    public var runs: [PipelineRunTiming]
    public var medianSeconds: Double
    public var peakDeviceBytes: Int?
    /// Per-kernel GPU time of one umT5-XXL encode, when profiled.
    public var textEncodeKernels: [KernelTime]?
    /// Per-kernel GPU time of all sampler steps of one profiled generation, and those steps' wall seconds.
    public var stepKernels: [KernelTime]?
    public var profiledStepSeconds: [Double]?
    /// Per-kernel GPU time of that generation's decode (to the host), and its wall seconds.
    public var decodeKernels: [KernelTime]?
    public var profiledDecodeSeconds: Double?
}

public struct PipelineRunTiming: Codable {
    public var encodeSeconds: Double
    public var stepSeconds: [Double]
    public var decodeSeconds: Double
    public var totalSeconds: Double
}

public enum PipelineBenchmark {
    public static func run(_ request: PipelineBenchmarkRequest) throws -> PipelineBenchmarkReport {
        try request.settings.validate()
        let backend = try Backends.make(request.device, maxDeviceMemory: request.maxDeviceMemory)
        let clock = ContinuousClock()
        func seconds(since start: ContinuousClock.Instant) -> Double { ComponentForward.seconds(clock.now - start) }

        let buildStart = clock.now
        let textEncoder = try WeightStore(synthesizingFor: "umT5 (synthetic)", backend: backend, seed: 21)
            .build { try UMT5Encoder($0, config: request.textEncoder, precision: request.precision) }
        let transformer = try WeightStore(synthesizingFor: "Wan transformer (synthetic)", backend: backend, seed: 1)
            .build { try WanTransformer($0, config: request.transformer, precision: request.precision) }
        let vae = try WeightStore(synthesizingFor: "Wan VAE (synthetic)", backend: backend, seed: 3)
            .build { try WanVAE($0, config: request.vae, precision: request.precision) }
        let pipeline = try TextToVideoPipeline(
            tokenizer: SyntheticPromptTokenizer(vocabularySize: request.textEncoder.vocabSize), textEncoder: textEncoder,
            transformer: transformer, vae: vae, backend: backend)
        let buildSeconds = seconds(since: buildStart)

        // The encoder alone on a full-length prompt (every position a real token).
        let ids = (0..<pipeline.textLength).map { 3 + ($0 * 7919) % (request.textEncoder.vocabSize - 3) }
        let mask = [Int](repeating: 1, count: ids.count)
        var encodeTimes: [Double] = []
        var firstEncodeSeconds = 0.0
        for index in 0..<(2 + 5) {
            let start = clock.now
            _ = try backend.download(try textEncoder.encodePrompt(ids: ids, mask: mask))
            if index == 0 { firstEncodeSeconds = seconds(since: start) }
            if index >= 2 { encodeTimes.append(seconds(since: start)) }
        }

        func generate() throws -> PipelineRunTiming {
            let start = clock.now
            let session = try pipeline.session(request.settings)
            let encodeSeconds = seconds(since: start)
            var steps: [Double] = []
            while !session.isFinished {
                let stepStart = clock.now
                try session.step()
                // The latents stay on the device now: wait for the step's work before reading the clock.
                try Backends.synchronize(backend)
                steps.append(seconds(since: stepStart))
            }
            let decodeStart = clock.now
            _ = try session.decode()
            return PipelineRunTiming(
                encodeSeconds: encodeSeconds, stepSeconds: steps, decodeSeconds: seconds(since: decodeStart),
                totalSeconds: seconds(since: start))
        }
        var warmupRuns: [PipelineRunTiming] = []
        for _ in 0..<request.warmup { warmupRuns.append(try generate()) }
        (backend as? CUDABackend)?.context.resetPeakMemory()
        var runs: [PipelineRunTiming] = []
        for _ in 0..<max(1, request.iterations) { runs.append(try generate()) }
        let totals = runs.map(\.totalSeconds).sorted()
        let peak = Backends.peakDeviceBytes(backend)
        var report = PipelineBenchmarkReport(
            buildSeconds: buildSeconds, firstTextEncodeSeconds: firstEncodeSeconds, textEncodeSeconds: encodeTimes,
            textEncodeMedianSeconds: encodeTimes.sorted()[encodeTimes.count / 2], warmupRuns: warmupRuns, runs: runs, medianSeconds: totals[totals.count / 2], peakDeviceBytes: peak)
        if request.profile, let gpu = backend as? CUDABackend {
            gpu.context.startProfiling()
            gpu.context.resetProfile()
            _ = try backend.download(try textEncoder.encodePrompt(ids: ids, mask: mask))
            report.textEncodeKernels = try gpu.context.kernelProfile()
            // One more generation: the steps' kernels (timed with events around each launch) against their wall time.
            let session = try pipeline.session(request.settings)
            try Backends.synchronize(backend)
            _ = try gpu.context.kernelProfile()  // collects the prompt encode's pending events, so reset drops them
            gpu.context.resetProfile()
            var stepSeconds: [Double] = []
            while !session.isFinished {
                let stepStart = clock.now
                try session.step()
                try Backends.synchronize(backend)
                stepSeconds.append(seconds(since: stepStart))
            }
            report.stepKernels = try gpu.context.kernelProfile()
            report.profiledStepSeconds = stepSeconds
            gpu.context.resetProfile()
            let decodeStart = clock.now
            _ = try session.decode()
            report.profiledDecodeSeconds = seconds(since: decodeStart)
            report.decodeKernels = try gpu.context.kernelProfile()
        }
        return report
    }
}
