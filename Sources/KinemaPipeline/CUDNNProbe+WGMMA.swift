import Foundation
import KinemaCPU
import KinemaCUDA
import KinemaCore
import KinemaNN

// `kinema cudnn-probe` lines for the Hopper wgmma attention kernel (KINEMA_ATTENTION=wgmma), printed on
// sm_90 only: `probe(attention:candidate: .wgmma)` (CUDNNProbe.swift) times the mma.sync and wgmma kernels
// on the Wan self-attention (L = 32,760, H = 12, d = 128) and text cross-attention shapes, with max |Δ| /
// rel-L2 of the wgmma output against the mma.sync kernel's. First, a diagnostics line that checks the kernel's two
// wgmma paths separately on a small strided problem: S = Q·Kᵀ (shared-memory descriptors) and the P·V of
// a one-hot P (register A, transposed V), so a wrong result points at one of them.

extension CUDNNProbe {
    static let wgmmaShapes = [
        AttentionShape(batch: 1, heads: 12, lq: 32760, lk: 32760, d: 128),
        AttentionShape(batch: 1, heads: 12, lq: 32760, lk: 512, d: 128),
    ]

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
