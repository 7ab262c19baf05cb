import KinemaCore
import KinemaNN

// One Wan transformer block (matches diffusers WanTransformerBlock and Wan's WanAttentionBlock):
//   shift, scale, gate, c_shift, c_scale, c_gate = modulation [1,6,D] + e0 [B,6,D]
//   x += self_attn(LN(x)·(1+scale) + shift) · gate
//   x += cross_attn(LN_affine(x), context)            (norm3, no gate)
//   x += ffn(LN(x)·(1+c_scale) + c_shift) · c_gate
// The residual stream x stays f32; modulation is f32; GEMM/attention operands are in the compute dtype.

struct WanBlock {
    let modulation: Tensor  // [1, 6, D] f32
    let selfAttention: WanSelfAttention
    let crossNorm: LayerNorm  // norm3, affine
    let crossAttention: WanCrossAttention
    let ffnIn: Linear  // ffn.0 [F, D]
    let ffnOut: Linear  // ffn.2 [D, F]
    let norm: LayerNorm  // parameter-free, shared by the self-attention and FFN paths
    let dtype: DType
    let backend: any Backend

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        modulation = try w.tensor("modulation", shape: [1, 6, c.dim], dtype: .f32)
        selfAttention = try WanSelfAttention(w["self_attn"], config: c, dtype: dtype)
        crossNorm = try LayerNorm(w["norm3"], dim: c.dim, eps: c.eps)
        crossAttention = try WanCrossAttention(w["cross_attn"], config: c, dtype: dtype)
        ffnIn = try Linear(w["ffn.0"], inFeatures: c.dim, outFeatures: c.ffnDim, dtype: dtype)
        ffnOut = try Linear(w["ffn.2"], inFeatures: c.ffnDim, outFeatures: c.dim, dtype: dtype)
        norm = LayerNorm(eps: c.eps, backend: w.backend)
        self.dtype = dtype
        backend = w.backend
    }

    /// x [B, L, D] f32; e0 [B, 6, D] f32; text [B, Lt, D]; image [B, Li, D]? → [B, L, D] f32
    func callAsFunction(_ x: Tensor, e0: Tensor, text: Tensor, image: Tensor?, rope: WanRoPE) throws -> Tensor {
        let b = backend
        let parts = try b.add(modulation, e0).chunked(6, axis: 1)  // 6 × [B, 1, D]
        let (shift, scale, gate) = (parts[0], parts[1], parts[2])
        let (crossShift, crossScale, crossGate) = (parts[3], parts[4], parts[5])

        var x = x
        let attended = try selfAttention(try modulate(try norm(x), shift: shift, scale: scale), rope: rope)
        x = try b.add(x, try b.mul(attended, gate))
        let crossInput = try b.cast(try crossNorm(x), to: dtype)
        x = try b.add(x, try crossAttention(crossInput, text: text, image: image))
        let hidden = try b.unary(.geluTanh, try ffnIn(try modulate(try norm(x), shift: crossShift, scale: crossScale)))
        x = try b.add(x, try b.mul(try ffnOut(hidden), crossGate))
        return x
    }

    /// normed·(1 + scale) + shift in f32, then rounded to the compute dtype.
    private func modulate(_ normed: Tensor, shift: Tensor, scale: Tensor) throws -> Tensor {
        let b = backend
        let scaled = try b.mul(normed, try b.affine(scale, scale: 1, shift: 1))
        return try b.cast(try b.add(scaled, shift), to: dtype)
    }
}
