import Foundation
import KinemaCUDA
import KinemaCore
import KinemaModels
import KinemaNN

// `kinema bench --vae`: times the Wan2.1 VAE decode (real config: base_dim 96, z 16, dim_mult [1,2,4,4],
// 2 res blocks; synthetic weights) of random latents, one latent frame at a time with the causal cache,
// as diffusers' AutoencoderKLWan.decode does. Pixel sizes in, latent sizes derived: 81×480×832 → 21×60×104.
// Timing: warm-up first, then CUDA events around each decode (host clock on the CPU), median reported.
// Decoded chunks are dropped as they arrive (a pipeline would write them out), so the peak is the decoder's
// working set plus weights, not a held output video.

public struct VAEDecodeBenchmarkRequest {
    public var config: WanVAEConfig = .wan21
    /// Pixel frames (1 + 4k), height and width (multiples of 8).
    public var frames: Int
    public var height: Int
    public var width: Int
    public var precision: Precision
    public var device: Device
    public var warmup = 1
    public var iterations = 3
    public var maxDeviceMemory: Int?
    public var profile = false

    public init(frames: Int, height: Int, width: Int, precision: Precision, device: Device) {
        self.frames = frames
        self.height = height
        self.width = width
        self.precision = precision
        self.device = device
    }
}

public struct VAEDecodeBenchmarkReport: Codable {
    public var latentShape: [Int]
    public var outputShape: [Int]
    public var loadSeconds: Double
    public var decodeSeconds: [Double]
    /// The warm-up decodes, first included: what a one-off `generate` pays for kernel compiles and for
    /// choosing the convolution plans (cuDNN's are timed once per shape).
    public var warmupSeconds: [Double]
    public var medianSeconds: Double
    /// How the decode was timed: "cuda events" or "host clock".
    public var timing: String
    /// Peak bytes held by Kinema's allocator from the first timed decode on (weights included).
    public var peakDeviceBytes: Int?
    /// Which implementation ran attention / conv3d, and the cuDNN problems planned (GPU runs).
    public var selection: String?
    public var cudnnPlans: [String]?
    public var kernels: [KernelTime]?
}

public enum VAEDecodeBenchmark {
    public static func run(_ request: VAEDecodeBenchmarkRequest) throws -> VAEDecodeBenchmarkReport {
        let c = request.config
        let (spatial, temporal) = (c.spatialCompression, c.temporalCompression)
        guard request.frames >= 1, (request.frames - 1) % temporal == 0, request.height > 0, request.width > 0,
            request.height % spatial == 0, request.width % spatial == 0
        else {
            throw KinemaError.invalidArgument(
                "VAE bench: \(request.frames)×\(request.height)×\(request.width) pixels; needs 1 + \(temporal)·k frames and sizes that are multiples of \(spatial)")
        }
        let latentShape = [1, c.zDim, (request.frames - 1) / temporal + 1, request.height / spatial, request.width / spatial]
        let backend = try Backends.make(request.device, maxDeviceMemory: request.maxDeviceMemory)
        let gpu = backend as? CUDABackend
        let clock = ContinuousClock()
        let loadStart = clock.now
        let store = WeightStore(synthesizingFor: "Wan VAE (synthetic)", backend: backend, seed: 3)
        let vae = try store.build { try WanVAE($0, config: c, precision: request.precision) }
        let loadSeconds = ComponentForward.seconds(clock.now - loadStart)
        var random = SyntheticWeights(seed: 11)
        let latents = try backend.upload(try random.tensor(shape: latentShape, dtype: .f32))

        var outputShape: [Int] = []
        func decode() throws {
            var frames = 0
            var last: Tensor?
            try vae.decode(latents, input: .raw) { chunk in
                frames += chunk.shape[2]
                last = chunk
            }
            if let last { outputShape = [last.shape[0], last.shape[1], frames, last.shape[3], last.shape[4]] }
        }
        func timed() throws -> Double {
            if let gpu { return try gpu.context.timedOnGPU { try decode() }.seconds }
            let start = clock.now
            try decode()
            return ComponentForward.seconds(clock.now - start)
        }
        var warmups: [Double] = []
        for _ in 0..<request.warmup { warmups.append(try timed()) }
        gpu?.context.resetPeakMemory()
        var times: [Double] = []
        for _ in 0..<max(1, request.iterations) { times.append(try timed()) }
        let peak = Backends.peakDeviceBytes(backend)
        var kernels: [KernelTime]?
        if request.profile, let gpu {
            gpu.context.startProfiling()
            gpu.context.resetProfile()
            try decode()
            kernels = try gpu.context.kernelProfile()
        }
        return VAEDecodeBenchmarkReport(
            latentShape: latentShape, outputShape: outputShape, loadSeconds: loadSeconds, decodeSeconds: times, warmupSeconds: warmups,
            medianSeconds: times.sorted()[times.count / 2], timing: gpu == nil ? "host clock" : "cuda events", peakDeviceBytes: peak,
            selection: gpu?.librarySelection, cudnnPlans: gpu?.cudnnPlanSummary, kernels: kernels)
    }
}
