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
