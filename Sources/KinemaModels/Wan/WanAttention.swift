import Foundation
import KinemaCore
import KinemaNN

// Self- and cross-attention of a Wan block (matches diffusers WanAttention + WanAttnProcessor and Wan's
// WanSelfAttention / WanT2VCrossAttention / WanI2VCrossAttention). q and k are RMS-normalized over the full
// model width before the head split.

/// Splits [B, L, D] into heads and moves them forward: [B, H, L, d] as a strided view.
func splitHeads(_ x: Tensor, heads: Int, backend b: any Backend) throws -> Tensor {
    let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
    return try b.reshape(x, [batch, length, heads, width / heads]).permuted([0, 2, 1, 3])
}

/// [B, H, L, d] → [B, L, H·d]
func mergeHeads(_ x: Tensor, backend b: any Backend) throws -> Tensor {
    let (batch, heads, length, headDim) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return try b.reshape(try x.permuted([0, 2, 1, 3]), [batch, length, heads * headDim])
}

/// The q/k/v/o projections and q/k RMS norms that self- and cross-attention share.
struct WanAttentionProjections {
    let q, k, v, o: Linear
    let normQ, normK: RMSNorm

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        q = try Linear(w["q"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        k = try Linear(w["k"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        v = try Linear(w["v"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        o = try Linear(w["o"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        normQ = try RMSNorm(w["norm_q"], dim: c.dim, eps: c.eps)
        normK = try RMSNorm(w["norm_k"], dim: c.dim, eps: c.eps)
    }
}

struct WanSelfAttention {
    let projections: WanAttentionProjections
    let heads: Int
    let backend: any Backend

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        projections = try WanAttentionProjections(w, config: c, dtype: dtype)
        heads = c.numHeads
        backend = w.backend
    }

    /// x [B, L, D] (compute dtype) → [B, L, D]
    func callAsFunction(_ x: Tensor, rope: WanRoPE) throws -> Tensor {
        let b = backend
        let (q, k, v, o, normQ, normK) = (projections.q, projections.k, projections.v, projections.o, projections.normQ, projections.normK)
        let batch = x.shape[0]
        let length = x.shape[1]
        let headDim = x.shape[2] / heads
        // RoPE acts on [B, L, H, d]; attention reads the same memory as [B, H, L, d].
        let query = try b.rope(try b.reshape(try normQ(try q(x)), [batch, length, heads, headDim]), cos: rope.cos, sin: rope.sin)
        let key = try b.rope(try b.reshape(try normK(try k(x)), [batch, length, heads, headDim]), cos: rope.cos, sin: rope.sin)
        let value = try splitHeads(try v(x), heads: heads, backend: b)
        let attended = try b.attention(
            query: try query.permuted([0, 2, 1, 3]), key: try key.permuted([0, 2, 1, 3]), value: value,
            scale: 1 / Float(headDim).squareRoot())
        return try o(try mergeHeads(attended, backend: b))  // [B, L, D]
    }
}

struct WanCrossAttention {
    let projections: WanAttentionProjections
    /// The image branch of I2V/FLF2V models: separate k/v over the CLIP tokens, summed after attention.
    let imageKey: Linear?
    let imageValue: Linear?
    let imageNormK: RMSNorm?
    let heads: Int
    let backend: any Backend

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        projections = try WanAttentionProjections(w, config: c, dtype: dtype)
        if c.hasImageBranch {
            imageKey = try Linear(w["k_img"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
            imageValue = try Linear(w["v_img"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
            imageNormK = try RMSNorm(w["norm_k_img"], dim: c.dim, eps: c.eps)
        } else {
            imageKey = nil
            imageValue = nil
            imageNormK = nil
        }
        heads = c.numHeads
        backend = w.backend
    }

    /// x [B, L, D]; text [B, Lt, D]; image [B, Li, D] or nil → [B, L, D]
    func callAsFunction(_ x: Tensor, text: Tensor, image: Tensor?) throws -> Tensor {
        let b = backend
        let (q, k, v, o, normQ, normK) = (projections.q, projections.k, projections.v, projections.o, projections.normQ, projections.normK)
        let headDim = x.shape[2] / heads
        let scale = 1 / Float(headDim).squareRoot()
        let query = try splitHeads(try normQ(try q(x)), heads: heads, backend: b)
        let key = try splitHeads(try normK(try k(text)), heads: heads, backend: b)
        let value = try splitHeads(try v(text), heads: heads, backend: b)
        var attended = try b.attention(query: query, key: key, value: value, scale: scale)
        if let imageKey, let imageValue, let imageNormK {
            guard let image else {
                throw KinemaError.invalidArgument("this Wan model has an image branch (I2V): image features are required")
            }
            let keyImage = try splitHeads(try imageNormK(try imageKey(image)), heads: heads, backend: b)
            let valueImage = try splitHeads(try imageValue(image), heads: heads, backend: b)
            let attendedImage = try b.attention(query: query, key: keyImage, value: valueImage, scale: scale)
            attended = try b.add(attended, attendedImage)
        }
        return try o(try mergeHeads(attended, backend: b))
    }
}
