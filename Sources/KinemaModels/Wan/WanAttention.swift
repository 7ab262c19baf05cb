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

/// Self-attention: q, k and v come from one GEMM (their weights stacked to [3D, D] at load; the checkpoint
/// keys stay q/k/v), q and k are RMS-normalized and rotated in one pass each, v is read as a strided slice.
struct WanSelfAttention {
    let qkv: Linear  // [3D, D]: rows 0..<D are q, D..<2D k, 2D..<3D v
    let o: Linear
    let normQ, normK: RMSNorm
    let heads: Int
    let backend: any Backend

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        let q = try Linear(w["q"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        let k = try Linear(w["k"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        let v = try Linear(w["v"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        qkv = try Linear(stacking: [q, k, v])
        o = try Linear(w["o"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        normQ = try RMSNorm(w["norm_q"], dim: c.dim, eps: c.eps)
        normK = try RMSNorm(w["norm_k"], dim: c.dim, eps: c.eps)
        heads = c.numHeads
        backend = w.backend
    }

    /// x [B, L, D] (compute dtype) → [B, L, D]
    func callAsFunction(_ x: Tensor, rope: WanRoPE) throws -> Tensor {
        let b = backend
        let width = x.shape[2]
        let projected = try qkv(x)  // [B, L, 3D]
        func part(_ index: Int) throws -> Tensor { try projected.narrowed(axis: 2, start: index * width, length: width) }
        // [B, L, D] → RMSNorm over D, RoPE per head → contiguous [B, L, D], read as [B, H, L, d] by attention.
        let query = try b.rmsNormRope(try part(0), weight: normQ.weight, eps: normQ.eps, cos: rope.cos, sin: rope.sin, heads: heads)
        let key = try b.rmsNormRope(try part(1), weight: normK.weight, eps: normK.eps, cos: rope.cos, sin: rope.sin, heads: heads)
        let attended = try b.attention(
            query: try splitHeads(query, heads: heads, backend: b), key: try splitHeads(key, heads: heads, backend: b),
            value: try splitHeads(try part(2), heads: heads, backend: b), scale: 1 / Float(width / heads).squareRoot())
        return try o(try mergeHeads(attended, backend: b))  // [B, L, D]
    }
}

/// Cross-attention over the text (and, for I2V, image) tokens. k and v of the text come from one GEMM
/// (weights stacked to [2D, D]). The text is the same at every step and block input, so k/v could be
/// cached per block across denoising steps; they are recomputed here (512 tokens: ~2% of the block's GEMM work).
struct WanCrossAttention {
    let q: Linear
    let kv: Linear  // [2D, D]: rows 0..<D are k, D..<2D v
    let o: Linear
    let normQ, normK: RMSNorm
    /// The image branch of I2V/FLF2V models: separate k/v over the CLIP tokens, summed after attention.
    let imageKey: Linear?
    let imageValue: Linear?
    let imageNormK: RMSNorm?
    let heads: Int
    let backend: any Backend

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        q = try Linear(w["q"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        let k = try Linear(w["k"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        let v = try Linear(w["v"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        kv = try Linear(stacking: [k, v])
        o = try Linear(w["o"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
        normQ = try RMSNorm(w["norm_q"], dim: c.dim, eps: c.eps)
        normK = try RMSNorm(w["norm_k"], dim: c.dim, eps: c.eps)
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
        let width = x.shape[2]
        let scale = 1 / Float(width / heads).squareRoot()
        let query = try splitHeads(try normQ(try q(x)), heads: heads, backend: b)
        let textKV = try kv(text)  // [B, Lt, 2D]
        let key = try splitHeads(try normK(try textKV.narrowed(axis: 2, start: 0, length: width)), heads: heads, backend: b)
        let value = try splitHeads(try textKV.narrowed(axis: 2, start: width, length: width), heads: heads, backend: b)
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
