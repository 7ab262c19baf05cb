import Foundation
import KinemaCore
import KinemaNN

// Conditioning embeddings of the Wan DiT (matches diffusers WanTimeTextImageEmbedding; Wan's
// time_embedding / time_projection / text_embedding / img_emb).

/// Sinusoidal timestep features, cos first: [cos(t·ωᵢ) | sin(t·ωᵢ)], ωᵢ = 10000^(−i/half).
/// Rounded like diffusers' f32 computation (f32 exponent, f32 product, then an accurate sin/cos), so the
/// large angles at t ≈ 1000 agree with the reference to f32 precision.
public func wanTimestepFeatures(_ timesteps: [Float], dim: Int) throws -> Tensor {
    let half = dim / 2
    let logPeriod = Float(Foundation.log(10000.0))
    let frequencies: [Float] = (0..<half).map { index in
        let exponent = (-logPeriod * Float(index)) / Float(half)
        return Float(Foundation.exp(Double(exponent)))
    }
    var values = [Float](repeating: 0, count: timesteps.count * dim)
    for (row, t) in timesteps.enumerated() {
        for index in 0..<half {
            let angle = Double(t * frequencies[index])
            values[row * dim + index] = Float(Foundation.cos(angle))
            values[row * dim + half + index] = Float(Foundation.sin(angle))
        }
    }
    return try Tensor(values, shape: [timesteps.count, dim])
}

/// time_embedding (Linear → SiLU → Linear) and time_projection (SiLU → Linear to 6·D). Kept in f32.
struct WanTimeEmbedding {
    let linear1: Linear  // time_embedding.0 [D, freq]
    let linear2: Linear  // time_embedding.2 [D, D]
    /// time_projection.1 [6D, D], stored in the compute dtype: it is the one large weight here (6·D² —
    /// 600 MiB in f32 for the 14B, the excess of Kinema's resident memory over diffusers' in the H100 run
    /// of 2026-11-27). It is widened to f32 for its GEMM, so the math stays f32 as in Wan's
    /// autocast(float32) region; the stored values are rounded to the compute dtype, as diffusers' are.
    let projection: Linear
    let freqDim: Int

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        linear1 = try Linear(w["time_embedding.0"], inFeatures: c.freqDim, outFeatures: c.dim, dtype: .f32)
        linear2 = try Linear(w["time_embedding.2"], inFeatures: c.dim, outFeatures: c.dim, dtype: .f32)
        projection = try Linear(w["time_projection.1"], inFeatures: c.dim, outFeatures: 6 * c.dim, dtype: dtype)
        freqDim = c.freqDim
    }

    /// timesteps [B] → (e [B, D], e0 [B, 6·D]), both f32.
    func callAsFunction(_ timesteps: Tensor, backend b: any Backend) throws -> (embedding: Tensor, projection: Tensor) {
        let features = try b.upload(wanTimestepFeatures(try b.download(timesteps).floats(), dim: freqDim))
        let embedding = try linear2(try b.unary(.silu, try linear1(features)))
        let weight = try b.cast(projection.weight, to: .f32)
        let projected = try b.linear(try b.unary(.silu, embedding), weight: weight, bias: projection.bias)
        return (embedding, projected)
    }
}

/// text_embedding: Linear(text_dim → D) → GELU(tanh) → Linear(D → D).
struct WanTextEmbedding {
    let linear1: Linear
    let linear2: Linear

    init(_ w: WeightScope, config c: WanConfig, dtype: DType) throws {
        linear1 = try Linear(w["text_embedding.0"], inFeatures: c.textDim, outFeatures: c.dim, dtype: dtype)
        linear2 = try Linear(w["text_embedding.2"], inFeatures: c.dim, outFeatures: c.dim, dtype: dtype)
    }

    /// [B, L, text_dim] → [B, L, D]
    func callAsFunction(_ context: Tensor, backend b: any Backend) throws -> Tensor {
        try linear2(try b.unary(.geluTanh, try linear1(context)))
    }
}

/// img_emb (I2V / FLF2V): [+ emb_pos] → LayerNorm → Linear → GELU(exact) → Linear → LayerNorm.
/// Both LayerNorms use eps 1e-5 (torch.nn.LayerNorm's default, as in Wan's MLPProj and diffusers).
struct WanImageEmbedding {
    let positions: Tensor?  // emb_pos [1, 2·257, image_dim] (FLF2V)
    let norm1: LayerNorm
    let linear1: Linear
    let linear2: Linear
    let norm2: LayerNorm

    init(_ w: WeightScope, config c: WanConfig, imageDim: Int, dtype: DType) throws {
        if let tokens = c.imagePositionTokens {
            positions = try w.tensor("img_emb.emb_pos", shape: [1, tokens, imageDim], dtype: .f32)
        } else {
            positions = nil
        }
        norm1 = try LayerNorm(w["img_emb.proj.0"], dim: imageDim, eps: 1e-5)
        linear1 = try Linear(w["img_emb.proj.1"], inFeatures: imageDim, outFeatures: imageDim, dtype: dtype)
        linear2 = try Linear(w["img_emb.proj.3"], inFeatures: imageDim, outFeatures: c.dim, dtype: dtype)
        norm2 = try LayerNorm(w["img_emb.proj.4"], dim: c.dim, eps: 1e-5)
    }

    /// [B, Li, image_dim] → [B, Li, D]. With position embeddings, pairs of images are laid end to end first
    /// ([B, 257, C] → [B/2, 514, C]) as diffusers and Wan do for first/last frames.
    func callAsFunction(_ features: Tensor, backend b: any Backend, dtype: DType) throws -> Tensor {
        var x = try b.cast(features, to: .f32)
        if let positions {
            x = try b.reshape(x, [-1, positions.shape[1], x.shape[2]])
            x = try b.add(x, positions)
        }
        x = try b.cast(try norm1(x), to: dtype)
        x = try linear2(try b.unary(.geluExact, try linear1(x)))
        return try norm2(try b.cast(x, to: .f32))
    }
}
