import Foundation
import KinemaCPU
import KinemaCUDA
import KinemaCore
import KinemaNN

// `kinema cudnn-probe` lines for the Hopper wgmma attention kernel (KINEMA_ATTENTION=wgmma), printed on
// sm_90 only: median GPU time and TFLOP/s of the mma.sync kernel and of the wgmma kernel on the Wan
// self-attention (L = 32,760, H = 12, d = 128) and text cross-attention shapes, and max |Δ| / rel-L2 of
// the wgmma output against the mma.sync kernel's. First, a diagnostics line that checks the kernel's two
// wgmma paths separately on a small strided problem: S = Q·Kᵀ (shared-memory descriptors) and the P·V of
// a one-hot P (register A, transposed V), so a wrong result points at one of them.

extension CUDNNProbe {
    static let wgmmaShapes = [
        AttentionShape(batch: 1, heads: 12, lq: 32760, lk: 32760, d: 128),
        AttentionShape(batch: 1, heads: 12, lq: 32760, lk: 512, d: 128),
    ]

    static func probeWGMMA(attention s: AttentionShape, iterations: Int, context: CUDAContext) -> String {
        let label = "wgmma sdpa B\(s.batch) H\(s.heads) Lq \(s.lq) Lk \(s.lk) D \(s.d) bf16"
        do {
            let (mmaSync, wgmma) = (try backend(.kinema, context), try backend(.wgmma, context))
            var random = SyntheticWeights(seed: 5)
            // [B, L, H, D] memory viewed as [B, H, L, D], as the DiT's head split leaves it.
            func operand(_ length: Int, _ scale: Float) throws -> Tensor {
                let host = try random.tensor(shape: [s.batch, length, s.heads, s.d], dtype: .f32)
                let scaled = try mmaSync.affine(try mmaSync.upload(host), scale: scale * 20, shift: 0)
                return try mmaSync.cast(scaled, to: .bf16).permuted([0, 2, 1, 3])
            }
            let (q, k, v) = (try operand(s.lq, 0.2), try operand(s.lk, 0.2), try operand(s.lk, 1))
            let scale = 1 / Float(s.d).squareRoot()
            let flops = 4 * Double(s.batch * s.heads) * Double(s.lq) * Double(s.lk) * Double(s.d)
            var line = label
            var reference: Tensor?
            do {
                let r = try time(context, iterations: iterations) { try mmaSync.attention(query: q, key: k, value: v, scale: scale) }
                reference = r.out
                line += String(format: " | mma.sync %.2f ms %.0f TFLOP/s", r.median * 1e3, flops / r.median / 1e12)
            } catch {
                line += " | mma.sync FAILED: \(error)"
            }
            do {
                let r = try time(context, iterations: iterations) { try wgmma.attention(query: q, key: k, value: v, scale: scale) }
                line += String(format: " | wgmma %.2f ms %.0f TFLOP/s (%d launches)", r.median * 1e3, flops / r.median / 1e12, wgmma.wgmmaAttentionLaunches)
                if let reference {
                    let (maxAbs, rel) = try difference(r.out, reference, on: mmaSync)
                    line += String(format: " | vs mma.sync max|Δ| %.3g rel-L2 %.3g", maxAbs, rel)
                }
            } catch {
                line += " | wgmma FAILED: \(error)"
            }
            return line
        } catch {
            return label + " | setup FAILED: \(error)"
        }
    }

    /// The diagnostics line: max |Δ| of tile 0's scores and of a one-hot P·V against host arithmetic on
    /// the same bf16 values, B = 1, H = 2, Lq = 200, Lk = 150, [B, L, H, D] memory seen as [B, H, L, D].
    static func wgmmaDiagnostics(context: CUDAContext) -> String {
        let (heads, lq, lk, d) = (2, 200, 150, 128)
        let label = "wgmma diagnostics H \(heads) Lq \(lq) Lk \(lk) D \(d) strided"
        do {
            let gpu = try backend(.wgmma, context)
            var random = SyntheticWeights(seed: 11)
            func operand(_ length: Int) throws -> Tensor {
                let values = try random.tensor(shape: [1, length, heads, d], dtype: .f32)
                return try CPUBackend.shared.cast(try CPUBackend.shared.affine(values, scale: 4, shift: 0), to: .bf16)
            }
            let (q, k, v) = (try operand(lq), try operand(lk), try operand(lk))
            func device(_ x: Tensor) throws -> Tensor { try gpu.upload(x).permuted([0, 2, 1, 3]) }
            let (scores, oneHot) = try gpu.wgmmaAttentionDiagnostics(query: try device(q), key: try device(k), value: try device(v))
            let (qf, kf, vf) = (try q.floats(), try k.floats(), try v.floats())
            let (gotScores, gotOneHot) = (try gpu.download(scores).floats(), try gpu.download(oneHot).floats())
            var (scoreError, scoreSize, valueError) = (0.0, 0.0, 0.0)
            for h in 0..<heads {
                for r in 0..<lq {
                    for c in 0..<d {
                        var dot = 0.0
                        if c < lk { for e in 0..<d { dot += Double(qf[(r * heads + h) * d + e]) * Double(kf[(c * heads + h) * d + e]) } }
                        let index = (h * lq + r) * d + c
                        scoreError = max(scoreError, abs(Double(gotScores[index]) - dot))
                        scoreSize = max(scoreSize, abs(dot))
                        let key = r % 128
                        let expected = key < lk ? Double(vf[(key * heads + h) * d + c]) : 0
                        valueError = max(valueError, abs(Double(gotOneHot[index]) - expected))
                    }
                }
            }
            return label + String(
                format: " | S = Q·Kᵀ (tile 0) max|Δ| %.3g of max|S| %.3g | one-hot P·V max|Δ| %.3g (exact: 0)", scoreError, scoreSize, valueError)
        } catch {
            return label + " | FAILED: \(error)"
        }
    }
}
