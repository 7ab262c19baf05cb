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
    let eps: Float  // of the parameter-free LayerNorms before self-attention and the FFN
    let dtype: DType
    let backend: any Backend

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        modulation = try w.tensor("modulation", shape: [1, 6, c.dim], dtype: .f32)
        selfAttention = try WanSelfAttention(w["self_attn"], config: c, dtype: dtype)
        crossNorm = try LayerNorm(w["norm3"], dim: c.dim, eps: c.eps)
        crossAttention = try WanCrossAttention(w["cross_attn"], config: c, dtype: dtype)
        ffnIn = try Linear(w["ffn.0"], inFeatures: c.dim, outFeatures: c.ffnDim, dtype: dtype)
        ffnOut = try Linear(w["ffn.2"], inFeatures: c.ffnDim, outFeatures: c.dim, dtype: dtype)
        eps = c.eps
        self.dtype = dtype
        backend = w.backend
    }

    /// x [B, L, D] f32; e0 [B, 6, D] f32; text [B, Lt, D]; image [B, Li, D]? → [B, L, D] f32
    ///
    /// Memory: x is taken over (`consuming`; the caller passes `consume x`), so each residual update frees
    /// the stream it replaces, and every stage's temporaries live in their own scope. At 480×832×81 an f32
    /// stream is 200 MB (1.3B) / 640 MiB (14B); the block input held by the caller was the third copy alive
    /// at the FFN (H100 run, 2026-11-27).
    func callAsFunction(_ x: consuming Tensor, e0: Tensor, text: Tensor, image: Tensor?, rope: WanRoPE, ffnSlabBytes: Int) throws -> Tensor {
        let b = backend
        let parts = try b.add(modulation, e0).chunked(6, axis: 1)  // 6 × [B, 1, D]
        let (shift, scale, gate) = (parts[0], parts[1], parts[2])
        let (crossShift, crossScale, crossGate) = (parts[3], parts[4], parts[5])

        // Each norm is one fused pass: LayerNorm, modulation and the cast to the compute dtype; each
        // residual update one pass; bias and GELU run in the GEMM epilogues.
        do {
            let attended = try selfAttention(
                try b.modulatedLayerNorm(x, weight: nil, bias: nil, shift: shift, scale: scale, eps: eps, outDType: dtype), rope: rope)
            x = try b.gatedResidual(x, attended, gate: gate)
        }
        do {
            let crossInput = try b.modulatedLayerNorm(
                x, weight: crossNorm.weight, bias: crossNorm.bias, shift: nil, scale: nil, eps: crossNorm.eps, outDType: dtype)
            let attended = try crossAttention(crossInput, text: text, image: image)
            x = try b.gatedResidual(x, attended, gate: nil)
        }
        let ffnInput = try b.modulatedLayerNorm(
            x, weight: nil, bias: nil, shift: crossShift, scale: crossScale, eps: eps, outDType: dtype)
        return try feedForward(x, ffnInput, gate: crossGate, slabBytes: ffnSlabBytes)
    }

    /// x + ffn(input)·gate. The hidden activation [B, L, F] is the largest tensor of the forward (587 MB
    /// for the 1.3B model at 480×832×81, 905 MB for the 14B): the tokens are split into slabs so that only
    /// one slab's hidden rows exist at a time. Every op is row-wise, so the result is the same.
    /// x [B, L, D] f32, input [B, L, D] compute dtype, gate [B, 1, D] f32 → [B, L, D] f32
    private func feedForward(_ x: Tensor, _ input: consuming Tensor, gate: Tensor, slabBytes: Int) throws -> Tensor {
        let b = backend
        let length = x.shape[1]
        let hiddenBytes = x.shape[0] * length * ffnIn.weight.shape[0] * dtype.byteSize
        let slabs = min(length, max(1, (hiddenBytes + max(1, slabBytes) - 1) / max(1, slabBytes)))
        guard slabs > 1 else {
            return try b.gatedResidual(x, try ffnOut(try ffnIn(input, activation: .geluTanh)), gate: gate)
        }
        // The slabs' FFN outputs (compute dtype) are joined, then one gated residual pass: joining f32
        // residual slabs instead would hold a second f32 copy of x at the concat.
        let slab = (length + slabs - 1) / slabs
        var parts: [Tensor] = []
        for start in stride(from: 0, to: length, by: slab) {
            let rows = min(slab, length - start)
            let hidden = try ffnIn(try input.narrowed(axis: 1, start: start, length: rows), activation: .geluTanh)
            parts.append(try ffnOut(hidden))
        }
        _ = consume input
        let joined = try b.concat(parts, axis: 1)
        parts.removeAll()
        return try b.gatedResidual(x, joined, gate: gate)
    }
}
