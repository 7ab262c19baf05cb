import KinemaCUDA
import KinemaCore
import KinemaNN

// The card's bf16 matmul rate, measured the way issue 7 states its model-FLOP-utilization target ("≥ 60% of
// the card's measured bf16 matmul rate"): cuBLASLt through Backend.linear on random operands (never zeros:
// the tensor cores draw less power, and run faster, on zeros), median of CUDA-event timings after one
// untimed call. The square 8192³ problem is the reference; the Wan FFN GEMMs show what the models get.
extension CUDNNProbe {
    struct GEMMShape {
        let name: String
        let m, k, n: Int
    }

    static let gemmShapes = [
        GEMMShape(name: "square", m: 8192, k: 8192, n: 8192),
        GEMMShape(name: "1.3B FFN up", m: 32760, k: 1536, n: 8960),
        GEMMShape(name: "14B FFN up", m: 32760, k: 5120, n: 13824),
        GEMMShape(name: "14B QKV", m: 32760, k: 5120, n: 15360),
    ]

    /// One line: x [m, k] · w [n, k]ᵀ in bf16 with f32 accumulation, time and TFLOP/s.
    static func probe(gemm s: GEMMShape, iterations: Int, context: CUDAContext) -> String {
        let label = "gemm \(s.name) \(s.m)×\(s.k)×\(s.n) bf16"
        do {
            let gpu = try CUDABackend(ordinal: context.ordinal)
            var random = SyntheticWeights(seed: 11)
            func operand(_ rows: Int, _ columns: Int) throws -> Tensor {
                try gpu.cast(try gpu.upload(try random.tensor(shape: [rows, columns], dtype: .f32)), to: .bf16)
            }
            let (x, w) = (try operand(s.m, s.k), try operand(s.n, s.k))
            let r = try time(context, iterations: iterations) { try gpu.linear(x, weight: w, bias: nil) }
            let flops = 2 * Double(s.m) * Double(s.k) * Double(s.n)
            return label + String(format: " | %.2f ms %.0f TFLOP/s", r.median * 1e3, flops / r.median / 1e12)
        } catch {
            return label + " | FAILED: \(error)"
        }
    }
}
