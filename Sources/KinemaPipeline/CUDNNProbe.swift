import Foundation
import KinemaCUDA
import KinemaCore
import KinemaNN

// `kinema cudnn-probe`: cuDNN against Kinema's own kernels on the GPU at the Wan shapes that matter —
// self-attention over 32,760 tokens (480×832×81), cross-attention to 512 text / 257 image tokens, and VAE
// decoder convolutions at 480p — with plan-build time, median GPU time (CUDA events), TFLOP/s, and the
// difference between the two outputs. One compact line per problem, printed as soon as it is measured.
// On sm_90 the wgmma attention kernel is timed first (CUDNNProbe+WGMMA.swift).

public enum CUDNNProbe {
    struct AttentionShape {
        var batch, heads, lq, lk, d: Int
    }

    struct ConvShape {
        var name: String
        var input: [Int]  // [B, Ci, T, H, W]
        var filter: [Int]  // [Co, Ci, kT, kH, kW]
        var padding: [Int]
    }

    static let attentionShapes = [
        AttentionShape(batch: 1, heads: 12, lq: 32760, lk: 32760, d: 128),
        AttentionShape(batch: 1, heads: 12, lq: 32760, lk: 512, d: 128),
        AttentionShape(batch: 1, heads: 12, lq: 32760, lk: 257, d: 128),
        AttentionShape(batch: 1, heads: 12, lq: 4096, lk: 4096, d: 64),
    ]

    /// Decoder convs of the Wan2.1 VAE at 480×832 (time input = 1 or 4 frames + 2 cached frames).
    static let convShapes = [
        ConvShape(name: "mid 384ch 60×104 3×3×3", input: [1, 384, 3, 60, 104], filter: [384, 384, 3, 3, 3], padding: [0, 1, 1]),
        ConvShape(name: "up 192ch 240×416 3×3×3", input: [1, 192, 6, 240, 416], filter: [192, 192, 3, 3, 3], padding: [0, 1, 1]),
        ConvShape(name: "up 96ch 480×832 3×3×3", input: [1, 96, 6, 480, 832], filter: [96, 96, 3, 3, 3], padding: [0, 1, 1]),
        ConvShape(name: "resample 2D 384ch 120×208 1×3×3", input: [1, 384, 4, 120, 208], filter: [192, 384, 1, 3, 3], padding: [0, 1, 1]),
    ]

    /// Runs the probe on cuda:`ordinal`, handing each output line to `emit` as it is ready.
    /// With `wgmmaOnly`, just the wgmma attention lines (nothing on GPUs other than sm_90).
    public static func run(ordinal: Int = 0, iterations: Int = 5, wgmmaOnly: Bool = false, emit: (String) -> Void) throws {
        let gpu = try CUDABackend(ordinal: ordinal)
        let context = gpu.context
        emit("gpu \(context.name), cc \(context.computeCapability.major).\(context.computeCapability.minor)")
        if context.architecture == "sm_90a" {
            emit(wgmmaDiagnostics(context: context))
            for shape in wgmmaShapes { emit(probe(attention: shape, candidate: .wgmma, iterations: iterations, context: context)) }
        }
        if wgmmaOnly {
            if context.architecture != "sm_90a" { emit("wgmma: needs sm_90, this GPU is \(context.architecture)") }
            return
        }
        for shape in gemmShapes { emit(probe(gemm: shape, iterations: iterations, context: context)) }
        emit("cudnn \(context.cudnnDescription)")
        guard context.cudnnAvailable else { return }
        for shape in attentionShapes {
            emit(probe(attention: shape, iterations: iterations, context: context))
        }
        for dtype in [DType.bf16, .f32] {
            for shape in convShapes {
                emit(probe(conv: shape, dtype: dtype, iterations: iterations, context: context))
            }
        }
        for shape in convShapes {
            for line in probe(graphConv: shape, iterations: iterations, context: context) { emit(line) }
            emit(probe(channelsLast: shape, iterations: iterations, context: context))
        }
        for line in gpu.cudnnPlanSummary { emit("plan \(line)") }
    }

    /// Times `body` `iterations` times with CUDA events after one untimed call; returns the first call's
    /// wall time (plan building / algorithm search) and the median.
    static func time(_ context: CUDAContext, iterations: Int, _ body: () throws -> Tensor) throws -> (first: Double, median: Double, out: Tensor) {
        let clock = ContinuousClock()
        let start = clock.now
        let out = try body()
        try context.synchronize()
        let first = ComponentForward.seconds(clock.now - start)
        var times: [Double] = []
        for _ in 0..<max(1, iterations) { times.append(try context.timedOnGPU { _ = try body() }.seconds) }
        return (first, times.sorted()[times.count / 2], out)
    }

    static func backend(_ choice: LibraryChoice, _ context: CUDAContext) throws -> CUDABackend {
        let backend = try CUDABackend(ordinal: context.ordinal)
        backend.attentionChoice = choice
        backend.convolutionChoice = choice
        return backend
    }

    /// Max |a − b| and ‖a − b‖ / ‖b‖ over host copies.
    static func difference(_ a: Tensor, _ b: Tensor, on gpu: CUDABackend) throws -> (maxAbs: Double, relativeL2: Double) {
        let (x, y) = (try gpu.download(a).floats(), try gpu.download(b).floats())
        var (maxAbs, diff, norm) = (0.0, 0.0, 0.0)
        for (u, v) in zip(x, y) {
            let d = Double(u) - Double(v)
            if d.isNaN { return (.nan, .nan) }
            maxAbs = max(maxAbs, abs(d))
            diff += d * d
            norm += Double(v) * Double(v)
        }
        return (maxAbs, diff.squareRoot() / max(norm.squareRoot(), 1e-30))
    }

    /// Kinema's mma.sync kernel against `candidate` (cuDNN, or the wgmma kernel) on one attention problem:
    /// both times, TFLOP/s, and the candidate's difference from the mma.sync output.
    static func probe(attention s: AttentionShape, candidate: LibraryChoice = .cudnn, iterations: Int, context: CUDAContext) -> String {
        let wgmma = candidate == .wgmma
        let (referenceName, candidateName) = wgmma ? ("mma.sync", "wgmma") : ("kinema", "cudnn")
        let label = (wgmma ? "wgmma " : "") + "sdpa B\(s.batch) H\(s.heads) Lq \(s.lq) Lk \(s.lk) D \(s.d) bf16"
        do {
            let (ours, other) = (try backend(.kinema, context), try backend(candidate, context))
            var random = SyntheticWeights(seed: 5)
            // [B, L, H, D] memory viewed as [B, H, L, D], as the DiT's head split leaves it.
            func operand(_ length: Int, _ scale: Float) throws -> Tensor {
                let host = try random.tensor(shape: [s.batch, length, s.heads, s.d], dtype: .f32)
                let scaled = try ours.affine(try ours.upload(host), scale: scale * 20, shift: 0)
                return try ours.cast(scaled, to: .bf16).permuted([0, 2, 1, 3])
            }
            let (q, k, v) = (try operand(s.lq, 0.2), try operand(s.lk, 0.2), try operand(s.lk, 1))
            let scale = 1 / Float(s.d).squareRoot()
            let flops = 4 * Double(s.batch * s.heads) * Double(s.lq) * Double(s.lk) * Double(s.d)
            var line = label
            var reference: Tensor?
            do {
                let r = try time(context, iterations: iterations) { try ours.attention(query: q, key: k, value: v, scale: scale) }
                reference = r.out
                line += String(format: " | %@ %.2f ms %.0f TFLOP/s", referenceName, r.median * 1e3, flops / r.median / 1e12)
            } catch {
                line += " | \(referenceName) FAILED: \(error)"
            }
            do {
                let r = try time(context, iterations: iterations) { try other.attention(query: q, key: k, value: v, scale: scale) }
                line += wgmma
                    ? String(format: " | wgmma %.2f ms %.0f TFLOP/s (%d launches)", r.median * 1e3, flops / r.median / 1e12, other.wgmmaAttentionLaunches)
                    : String(format: " | cudnn plan ok, first call %.2f s, %.2f ms %.0f TFLOP/s", r.first, r.median * 1e3, flops / r.median / 1e12)
                if let reference {
                    let (maxAbs, rel) = try difference(r.out, reference, on: ours)
                    line += String(format: " | vs %@ max|Δ| %.3g rel-L2 %.3g", referenceName, maxAbs, rel)
                }
            } catch {
                line += " | \(candidateName) FAILED: \(error)"
            }
            return line
        } catch {
            return label + " | setup FAILED: \(error)"
        }
    }

    static func probe(conv s: ConvShape, dtype: DType, iterations: Int, context: CUDAContext) -> String {
        let label = "conv3d \(s.name) \(dtype.rawValue) x \(s.input) w \(s.filter)"
        do {
            let (ours, viaCUDNN) = (try backend(.kinema, context), try backend(.cudnn, context))
            var random = SyntheticWeights(seed: 9)
            let x = try ours.cast(try ours.upload(try random.tensor(shape: s.input, dtype: .f32)), to: dtype)
            let w = try ours.cast(try ours.affine(try ours.upload(try random.tensor(shape: s.filter, dtype: .f32)), scale: 0.05, shift: 0), to: dtype)
            let bias = try ours.upload(try random.tensor(shape: [s.filter[0]], dtype: .f32))
            let outFrames = s.input[2] - s.filter[2] + 1
            let flops = 2 * Double(s.filter.reduce(1, *)) * Double(outFrames * s.input[3] * s.input[4]) * Double(s.input[0])
            var line = label
            var reference: Tensor?
            do {
                let r = try time(context, iterations: iterations) {
                    try ours.conv3d(x, weight: w, bias: bias, stride: [1, 1, 1], padding: s.padding)
                }
                reference = r.out
                line += String(format: " | kinema %.2f ms %.1f TFLOP/s", r.median * 1e3, flops / r.median / 1e12)
            } catch {
                line += " | kinema FAILED: \(error)"
            }
            do {
                let r = try time(context, iterations: iterations) {
                    try viaCUDNN.conv3d(x, weight: w, bias: bias, stride: [1, 1, 1], padding: s.padding)
                }
                line += String(format: " | cudnn ok, first call %.2f s, %.2f ms %.1f TFLOP/s", r.first, r.median * 1e3, flops / r.median / 1e12)
                if let reference {
                    let (maxAbs, rel) = try difference(r.out, reference, on: ours)
                    line += String(format: " | vs kinema max|Δ| %.3g rel-L2 %.3g", maxAbs, rel)
                }
            } catch {
                line += " | cudnn FAILED: \(error)"
            }
            return line
        } catch {
            return label + " | setup FAILED: \(error)"
        }
    }
}
