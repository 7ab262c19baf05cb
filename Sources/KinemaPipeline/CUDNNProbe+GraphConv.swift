import KinemaCUDA
import KinemaCore
import KinemaNN

// The VAE's decoder convolutions through cuDNN's legacy API (what runs today) against the graph API in NCDHW
// and in channels-last (NDHWC) layout: whether a channels-last VAE is worth building (issue 7). Each graph
// line gives heuristics mode A's first plans with their times, and the fastest output's difference from
// the legacy result (bias-free on both sides).
extension CUDNNProbe {
    static func probe(graphConv s: ConvShape, iterations: Int, context: CUDAContext) -> [String] {
        let label = "graph conv3d \(s.name) bf16"
        do {
            let gpu = try backend(.cudnn, context)
            var random = SyntheticWeights(seed: 10)
            let x = try gpu.cast(try gpu.upload(try random.tensor(shape: s.input, dtype: .f32)), to: .bf16)
            let w = try gpu.cast(try gpu.affine(try gpu.upload(try random.tensor(shape: s.filter, dtype: .f32)), scale: 0.05, shift: 0), to: .bf16)
            let outFrames = s.input[2] + 2 * s.padding[0] - s.filter[2] + 1
            let flops = 2 * Double(s.filter.reduce(1, *)) * Double(outFrames * s.input[3] * s.input[4]) * Double(s.input[0])
            let legacy = try time(context, iterations: iterations) {
                try gpu.conv3d(x, weight: w, bias: nil, stride: [1, 1, 1], padding: s.padding)
            }
            var lines = [label + String(format: " | legacy %.2f ms %.0f TFLOP/s", legacy.median * 1e3, flops / legacy.median / 1e12)]
            for channelsLast in [false, true] {
                var line = "  graph \(channelsLast ? "NDHWC" : "NCDHW")"
                do {
                    let timing = try gpu.timeGraphConvolution(
                        x: x, weight: w, padding: s.padding, channelsLast: channelsLast, plans: 4, iterations: iterations)
                    for plan in timing.plans {
                        line += String(format: " | engine %d %.2f ms %.0f TFLOP/s ws %d MiB", plan.engine, plan.milliseconds,
                                       flops / (plan.milliseconds / 1e3) / 1e12, plan.workspace >> 20)
                    }
                    let (maxAbs, rel) = try difference(timing.output, legacy.out, on: gpu)
                    line += String(format: " | fastest vs legacy max|Δ| %.3g rel-L2 %.3g", maxAbs, rel)
                } catch {
                    line += " | FAILED: \(error)"
                }
                lines.append(line)
            }
            return lines
        } catch {
            return [label + " | setup FAILED: \(error)"]
        }
    }
}

// The channels-last op as the VAE will call it: conv3dChannelsLast with bias and residual (plan cached after
// the first call, median of the timed calls) against what the NCDHW VAE runs today for the same work, the
// legacy cuDNN conv3d with its bias pass, then the residual add.
extension CUDNNProbe {
    static func probe(channelsLast s: ConvShape, iterations: Int, context: CUDAContext) -> String {
        let label = "conv3dChannelsLast \(s.name) bf16 +bias +residual"
        do {
            let gpu = try backend(.cudnn, context)
            var random = SyntheticWeights(seed: 11)
            let x = try gpu.cast(try gpu.upload(try random.tensor(shape: s.input, dtype: .f32)), to: .bf16)
            let w = try gpu.cast(try gpu.affine(try gpu.upload(try random.tensor(shape: s.filter, dtype: .f32)), scale: 0.05, shift: 0), to: .bf16)
            let bias = try gpu.upload(try random.tensor(shape: [s.filter[0]], dtype: .f32))
            var out = [s.input[0], s.filter[0], 0, 0, 0]
            for axis in 0..<3 { out[2 + axis] = s.input[2 + axis] + 2 * s.padding[axis] - s.filter[2 + axis] + 1 }
            let residual = try gpu.cast(try gpu.upload(try random.tensor(shape: out, dtype: .f32)), to: .bf16)
            // The same values channels-last (copies made once, outside the timing).
            let toLast = [0, 2, 3, 4, 1]
            let (xLast, wLast, rLast) = (
                try gpu.contiguous(try x.permuted(toLast)), try gpu.contiguous(try w.permuted(toLast)), try gpu.contiguous(try residual.permuted(toLast))
            )
            let flops = 2 * Double(s.filter.reduce(1, *)) * Double(out[2] * out[3] * out[4]) * Double(s.input[0])
            let legacy = try time(context, iterations: iterations) {
                try gpu.add(try gpu.conv3d(x, weight: w, bias: bias, stride: [1, 1, 1], padding: s.padding), residual)
            }
            var line = label + String(format: " | legacy NCDHW conv3d+bias, add %.2f ms", legacy.median * 1e3)
            do {
                let fused = try time(context, iterations: iterations) {
                    try gpu.conv3dChannelsLast(xLast, weight: wLast, bias: bias, residual: rLast, stride: [1, 1, 1], padding: s.padding)
                }
                line += String(
                    format: " | channels-last op %.2f ms %.0f TFLOP/s (first call %.2f s) | %.2f× legacy", fused.median * 1e3,
                    flops / fused.median / 1e12, fused.first, legacy.median / fused.median)
                let (maxAbs, rel) = try difference(try gpu.contiguous(try fused.out.permuted([0, 4, 1, 2, 3])), legacy.out, on: gpu)
                line += String(format: " | vs legacy max|Δ| %.3g rel-L2 %.3g", maxAbs, rel)
            } catch {
                line += " | channels-last op FAILED: \(error)"
            }
            return line
        } catch {
            return label + " | setup FAILED: \(error)"
        }
    }
}
