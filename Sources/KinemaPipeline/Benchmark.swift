import Foundation
import KinemaCUDA
import KinemaCore
import KinemaModels
import KinemaNN

// `kinema bench`: times the Wan DiT forward at real model shapes with synthetic weights (or a real model).
// Timing: warm-up runs first, then the median of the timed runs; inputs are random, never zeros.

public struct DiTBenchmarkRequest {
    public var config: WanConfig
    /// Latent grid (frames, height, width) — pixels are 4× / 8× / 8× these.
    public var latentFrames: Int
    public var latentHeight: Int
    public var latentWidth: Int
    public var textTokens: Int = 512
    public var precision: Precision
    public var device: Device
    public var warmup: Int = 1
    public var iterations: Int = 3
    /// GPU allocator budget in bytes (nil: KINEMA_MAX_VRAM or none).
    public var maxDeviceMemory: Int?
    /// After the timed runs, one more run with per-kernel GPU timing (events around every launch).
    public var profile = false

    public init(config: WanConfig, latentFrames: Int, latentHeight: Int, latentWidth: Int, precision: Precision, device: Device) {
        self.config = config
        self.latentFrames = latentFrames
        self.latentHeight = latentHeight
        self.latentWidth = latentWidth
        self.precision = precision
        self.device = device
    }
}

public struct DiTBenchmarkReport: Codable {
    public var tokens: Int
    public var loadSeconds: Double
    public var stepSeconds: [Double]
    public var medianSeconds: Double
    /// Matmul + attention FLOPs of one forward (2 per multiply-add).
    public var flops: Double
    public var achievedGFLOPS: Double
    /// Peak bytes in use in Kinema's device allocator during the forwards (weights included; the peak
    /// is reset after the build, so loading transients do not count). GPU runs only.
    public var peakDeviceBytes: Int?
    /// Bytes in use after the build, before the first forward: the weights and what the model caches.
    public var residentDeviceBytes: Int?
    /// The largest groups of blocks in use at the peak, e.g. "3 × 200.0 MiB" (GPU runs).
    public var peakBlocks: [String]?
    /// Per-kernel GPU time of one profiled forward, longest first (with `profile`).
    public var kernels: [KernelTime]?
    /// Which implementation ran attention / conv3d, and the cuDNN problems planned (GPU runs).
    public var selection: String?
    public var cudnnPlans: [String]?
}

public enum DiTBenchmark {
    /// FLOPs of one Wan DiT forward: the block GEMMs, self- and cross-attention, embeddings and head.
    public static func flops(_ c: WanConfig, tokens: Int, textTokens: Int, imageTokens: Int = 0) -> Double {
        let (l, d, f) = (Double(tokens), Double(c.dim), Double(c.ffnDim))
        let lt = Double(textTokens)
        let perBlock =
            2 * l * d * d * 4  // self-attention q, k, v, o
            + 2 * l * d * d * 2 + 2 * (lt + Double(imageTokens)) * d * d * 2  // cross q, o; k, v over the context
            + 2 * l * d * f * 2  // FFN
            + 4 * l * l * d  // self-attention QKᵀ and PV
            + 4 * l * (lt + Double(imageTokens)) * d  // cross-attention
        let embeddings = 2 * l * Double(c.inDim * 4) * d + 2 * lt * (Double(c.textDim) * d + d * d) + 2 * l * d * Double(c.outDim * 4)
        return perBlock * Double(c.numLayers) + embeddings
    }

    public static func run(_ request: DiTBenchmarkRequest) throws -> DiTBenchmarkReport {
        let backend = try Backends.make(request.device, maxDeviceMemory: request.maxDeviceMemory)
        let c = request.config
        let clock = ContinuousClock()
        let loadStart = clock.now
        let store = WeightStore(synthesizingFor: "Wan transformer (synthetic)", backend: backend, seed: 1)
        let model = try store.build { try WanTransformer($0, config: c, precision: request.precision) }
        let loadSeconds = ComponentForward.seconds(clock.now - loadStart)
        let resident = (backend as? CUDABackend)?.context.memoryUse.inUse
        (backend as? CUDABackend)?.context.resetPeakMemory()

        var random = SyntheticWeights(seed: 7)
        let batch = 1
        let latents = try random.tensor(
            shape: [batch, c.inDim, request.latentFrames, request.latentHeight, request.latentWidth], dtype: .f32)
        let text = try random.tensor(shape: [batch, request.textTokens, c.textDim], dtype: .f32)
        let image = try c.imageDim.map { try random.tensor(shape: [batch, 257, $0], dtype: .f32) }
        let inputs = WanTransformerInputs(latents: latents, timestep: try Tensor([937.5], shape: [1]), text: text, image: image)
        for _ in 0..<request.warmup { _ = try backend.download(try model.forward(inputs)) }
        var times: [Double] = []
        for _ in 0..<max(1, request.iterations) {
            let start = clock.now
            _ = try backend.download(try model.forward(inputs))
            times.append(ComponentForward.seconds(clock.now - start))
        }
        let median = times.sorted()[times.count / 2]
        var kernels: [KernelTime]?
        if request.profile, let gpu = backend as? CUDABackend {
            gpu.context.startProfiling()
            gpu.context.resetProfile()
            _ = try backend.download(try model.forward(inputs))
            kernels = try gpu.context.kernelProfile()
        }
        let tokens = request.latentFrames * (request.latentHeight / 2) * (request.latentWidth / 2)
        let work = flops(c, tokens: tokens, textTokens: request.textTokens, imageTokens: image == nil ? 0 : 257)
        return DiTBenchmarkReport(
            tokens: tokens, loadSeconds: loadSeconds, stepSeconds: times, medianSeconds: median, flops: work,
            achievedGFLOPS: work / median / 1e9, peakDeviceBytes: Backends.peakDeviceBytes(backend), residentDeviceBytes: resident,
            peakBlocks: (backend as? CUDABackend)?.context.blocksAtPeak.prefix(12).map {
                String(format: "%d × %.1f MiB", $0.count, Double($0.bytes) / 1_048_576)
            },
            kernels: kernels,
            selection: (backend as? CUDABackend)?.librarySelection, cudnnPlans: (backend as? CUDABackend)?.cudnnPlanSummary)
    }
}
