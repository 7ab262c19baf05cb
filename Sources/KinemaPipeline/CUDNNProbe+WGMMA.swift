import Foundation
import KinemaCUDA
import KinemaCore
import KinemaNN

// `kinema cudnn-probe` lines for the Hopper wgmma attention kernel (KINEMA_ATTENTION=wgmma), printed on
// sm_90 only: median GPU time and TFLOP/s of the mma.sync kernel and of the wgmma kernel on the Wan
// self-attention (L = 32,760, H = 12, d = 128) and text cross-attention shapes, and max |Δ| / rel-L2 of
// the wgmma output against the mma.sync kernel's.

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
}
