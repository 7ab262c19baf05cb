import Foundation
import KinemaCore
import KinemaIO
import KinemaNN

// The CLIP vision tower as Wan2.1 image-to-video uses it: the hidden states after the second-to-last block.
// Matches transformers CLIPVisionModel (hidden_states[-2], which is what diffusers' WanImageToVideoPipeline
// .encode_image returns) and Wan's wan/modules/clip.py VisionTransformer.forward(x, use_31_block=True)
// (`self.transformer[:-1](x)`). The two agree:
//   x = patch_embedding(pixels)       conv p×p stride p, no bias    [B, N, W]   (N = (H/p)·(W/p))
//   x = [cls; x] + position             learned, 1 + N positions      [B, L, W]   (L = 257 for ViT-H/14)
//   x = pre_norm(x)                      LayerNorm (transformers: pre_layrnorm)
//   per block 0 ..< numLayers − 1:  x += proj(attn(norm1(x)));  x += fc2(act(fc1(norm2(x))))
//   out = x                              NO post norm: post_norm / post_layernorm is applied only to the
//                                        pooled token (transformers) or the full-depth output (Wan), and
//                                        neither path feeds the penultimate states.
// The last block, the post norm and Wan's `head` are in every checkpoint; they are checked (present, right
// shape) but never loaded (`WeightScope.skip`).
//
// Precision: upstream runs this tower in f32 (diffusers' example loads the image encoder in float32) or
// under fp16 autocast (Wan's CLIPModel with clip_dtype = float16). Here `.f32` is the reference and `.bf16`
// stores weights and GEMM / attention operands in bf16 while the residual stream, LayerNorm statistics and
// the embeddings stay f32.

/// Intermediate tensors of a forward pass, named as the golden fixtures name them.
public enum CLIPVisionTap: String, CaseIterable, Sendable {
    case embeddings = "tap.embeddings"  // after pre_norm [B, L, W] (transformers hidden_states[0])
    case firstBlock = "tap.block0"  // after block 0 [B, L, W] (hidden_states[1])
}

public final class CLIPVisionTapRecorder {
    public private(set) var tensors: [CLIPVisionTap: Tensor] = [:]
    public init() {}
    func record(_ tap: CLIPVisionTap, _ tensor: Tensor, backend: any Backend) throws {
        tensors[tap] = try backend.download(tensor)
    }
}

/// One pre-LN transformer block (transformers CLIPEncoderLayer; Wan AttentionBlock with post_norm = False).
struct CLIPVisionBlock {
    let norm1, norm2: LayerNorm
    /// Fused input projection [3W, W] (rows q | k | v) and its bias [3W] f32.
    let qkvWeight: Tensor
    let qkvBias: Tensor
    let proj, fc1, fc2: Linear
    let config: CLIPVisionConfig
    let dtype: DType
    let backend: any Backend

    init(_ w: WeightScope, config c: CLIPVisionConfig, dtype: DType) throws {
        let width = c.hiddenSize
        norm1 = try LayerNorm(w["norm1"], dim: width, eps: c.eps)
        norm2 = try LayerNorm(w["norm2"], dim: width, eps: c.eps)
        let attn = w["attn"]
        if attn.contains("to_qkv.weight") {
            qkvWeight = try attn["to_qkv"].tensor("weight", shape: [3 * width, width], dtype: dtype)
            qkvBias = try attn["to_qkv"].tensor("bias", shape: [3 * width], dtype: .f32)
        } else {
            // transformers' separate projections, fused once at load so attention runs one GEMM.
            let parts = ["q_proj", "k_proj", "v_proj"]
            let weights = try parts.map { try attn[$0].tensor("weight", shape: [width, width], dtype: dtype) }
            let biases = try parts.map { try attn[$0].tensor("bias", shape: [width], dtype: .f32) }
            qkvWeight = try w.backend.concat(weights, axis: 0)
            qkvBias = try w.backend.concat(biases, axis: 0)
        }
        proj = try Linear(attn["proj"], inFeatures: width, outFeatures: width, dtype: dtype)
        fc1 = try Linear(w["mlp.0"], inFeatures: width, outFeatures: c.intermediateSize, dtype: dtype)
        fc2 = try Linear(w["mlp.2"], inFeatures: c.intermediateSize, outFeatures: width, dtype: dtype)
        config = c
        self.dtype = dtype
        backend = w.backend
    }

    /// Accounts for a block's weights without loading them (the block after the penultimate).
    static func skip(_ w: WeightScope, config c: CLIPVisionConfig) {
        let width = c.hiddenSize
        for norm in ["norm1", "norm2"] {
            w[norm].skip("weight", shape: [width])
            w[norm].skip("bias", shape: [width])
        }
        let attn = w["attn"]
        if attn.contains("to_qkv.weight") {
            attn["to_qkv"].skip("weight", shape: [3 * width, width])
            attn["to_qkv"].skip("bias", shape: [3 * width])
        } else {
            for part in ["q_proj", "k_proj", "v_proj"] {
                attn[part].skip("weight", shape: [width, width])
                attn[part].skip("bias", shape: [width])
            }
        }
        attn["proj"].skip("weight", shape: [width, width])
        attn["proj"].skip("bias", shape: [width])
        w["mlp.0"].skip("weight", shape: [c.intermediateSize, width])
        w["mlp.0"].skip("bias", shape: [c.intermediateSize])
        w["mlp.2"].skip("weight", shape: [width, c.intermediateSize])
        w["mlp.2"].skip("bias", shape: [width])
    }

    /// x [B, L, W] f32 → [B, L, W] f32
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let b = backend
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let (heads, headDim) = (config.numHeads, config.headDim)
        let qkv = try b.linear(try b.cast(try norm1(x), to: dtype), weight: qkvWeight, bias: qkvBias)  // [B, L, 3W]
        // [B, L, 3, H, D]: q, k, v as strided [B, H, L, D] views (unit last stride, as attention accepts).
        let split = try b.reshape(qkv, [batch, length, 3, heads, headDim])
        func part(_ index: Int) throws -> Tensor {
            try split.narrowed(axis: 2, start: index, length: 1).squeezed(2).permuted([0, 2, 1, 3])
        }
        let attended = try b.attention(
            query: try part(0), key: try part(1), value: try part(2), scale: 1 / Float(headDim).squareRoot())  // [B, H, L, D]
        let merged = try b.reshape(try b.contiguous(try attended.permuted([0, 2, 1, 3])), [batch, length, width])
        let y = try b.add(x, try proj(merged))  // f32 + compute dtype → f32
        var hidden = try fc1(try b.cast(try norm2(y), to: dtype))  // [B, L, intermediate]
        switch config.activation {
        case .gelu:
            hidden = try b.gelu(hidden, approximate: .none)
        case .quickGelu:
            hidden = try b.mul(hidden, try b.unary(.sigmoid, try b.affine(hidden, scale: 1.702, shift: 0)))
        }
        return try b.add(y, try fc2(hidden))
    }
}

public final class CLIPVisionEncoder {
    public let config: CLIPVisionConfig
    public let precision: Precision
    public let backend: any Backend
    /// Patch projection as a matrix [W, C·p·p] (the conv kernel flattened in (c, ky, kx) order).
    let patchWeight: Tensor
    /// [1, 1, W] f32
    let classEmbedding: Tensor
    /// [1, L, W] f32
    let positionEmbedding: Tensor
    let preNorm: LayerNorm
    /// Blocks 0 ..< numLayers − 1 (the last one is skipped).
    let blocks: [CLIPVisionBlock]

    /// Builds from canonical (Wan `visual.`-less) keys; see CLIPKeyLayouts.
    public init(_ w: WeightScope, config c: CLIPVisionConfig, precision: Precision) throws {
        try c.validate()
        let dtype = precision.computeDType
        let (width, length, patch) = (c.hiddenSize, c.sequenceLength, c.patchSize)
        config = c
        self.precision = precision
        backend = w.backend
        let kernel = try w["patch_embedding"].tensor("weight", shape: [width, c.numChannels, patch, patch], dtype: dtype)
        patchWeight = try backend.reshape(kernel, [width, c.numChannels * patch * patch])
        if w.contains("cls_embedding") {
            classEmbedding = try w.tensor("cls_embedding", shape: [1, 1, width], dtype: .f32)
            positionEmbedding = try w.tensor("pos_embedding", shape: [1, length, width], dtype: .f32)
        } else {
            classEmbedding = try backend.reshape(try w.tensor("class_embedding", shape: [width], dtype: .f32), [1, 1, width])
            positionEmbedding = try backend.reshape(
                try w["position_embedding"].tensor("weight", shape: [length, width], dtype: .f32), [1, length, width])
        }
        preNorm = try LayerNorm(w["pre_norm"], dim: width, eps: c.eps)
        blocks = try (0..<(c.numLayers - 1)).map { try CLIPVisionBlock(w["transformer.\($0)"], config: c, dtype: dtype) }
        CLIPVisionBlock.skip(w["transformer.\(c.numLayers - 1)"], config: c)
        w["post_norm"].skip("weight", shape: [width])
        w["post_norm"].skip("bias", shape: [width])
        // Wan's projection to the joint space ([W, 1024] for ViT-H/14); transformers' CLIPVisionModel has none.
        if w.contains("head") { w.skip("head") }
    }

    /// Loads from any tensor source in the transformers or Wan layout. The configuration is, in order of
    /// preference: `config`, a transformers `config.json`, or the ViT-H/14 preset (Wan's `.pth` has no
    /// config; strict loading rejects a checkpoint of any other shape).
    public static func load(
        from source: any TensorSource, config: CLIPVisionConfig? = nil, configJSON: (data: Data, origin: String)? = nil,
        backend: any Backend, precision: Precision
    ) throws -> CLIPVisionEncoder {
        let store = try WeightStore(
            source: source, backend: backend, component: "CLIP vision encoder", layouts: CLIPKeyLayouts.all,
            wrapperPrefixes: CLIPKeyLayouts.wrapperPrefixes, ignoring: CLIPKeyLayouts.ignored)
        let resolved = try config ?? configJSON.map { try CLIPVisionConfig(json: $0.data, origin: $0.origin) } ?? .vitH14
        return try store.build { try CLIPVisionEncoder($0, config: resolved, precision: precision) }
    }

    /// pixelValues [B, C, H, W] (any float dtype, host or device), already resized and normalized with the
    /// CLIP mean / std (`CLIPImagePreprocessing`), H = W = config.imageSize → the hidden states after the
    /// second-to-last block, [B, 1 + (H/p)·(W/p), W] f32 on the host ([B, 257, 1280] for ViT-H/14).
    /// Other sizes are refused rather than interpolating the position embedding (neither Wan nor
    /// diffusers does that).
    public func callAsFunction(pixelValues: Tensor) throws -> Tensor {
        try forward(pixelValues: pixelValues, taps: nil)
    }

    /// `callAsFunction(pixelValues:)`, recording stage taps.
    public func forward(pixelValues: Tensor, taps: CLIPVisionTapRecorder?) throws -> Tensor {
        let c = config
        guard pixelValues.rank == 4, pixelValues.dtype.isFloatingPoint, pixelValues.shape[0] > 0,
            pixelValues.shape[1] == c.numChannels, pixelValues.shape[2] == c.imageSize, pixelValues.shape[3] == c.imageSize
        else {
            throw KinemaError.shapeMismatch(
                context: "CLIP vision encoder pixel values", expected: "[B, \(c.numChannels), \(c.imageSize), \(c.imageSize)] float",
                found: "\(pixelValues.shape) \(pixelValues.dtype.rawValue)")
        }
        let b = backend
        let batch = pixelValues.shape[0]
        let (grid, patch, width) = (c.gridSize, c.patchSize, c.hiddenSize)
        // Non-overlapping p×p patches as rows: [B, C, g, p, g, p] → [B, g, g, C, p, p] → [B, N, C·p·p].
        let pixels = try b.reshape(try b.upload(pixelValues), [batch, c.numChannels, grid, patch, grid, patch])
        let rows = try b.reshape(
            try b.contiguous(try pixels.permuted([0, 2, 4, 1, 3, 5])), [batch, grid * grid, c.numChannels * patch * patch])
        let patches = try b.cast(
            try b.linear(try b.cast(rows, to: precision.computeDType), weight: patchWeight, bias: nil), to: .f32)  // [B, N, W]
        let tokens = try b.concat([try classEmbedding.expanded(to: [batch, 1, width]), patches], axis: 1)  // [B, L, W]
        var x = try preNorm(try b.add(tokens, positionEmbedding))
        try taps?.record(.embeddings, x, backend: b)
        for (index, block) in blocks.enumerated() {
            x = try block(x)
            if index == 0 { try taps?.record(.firstBlock, x, backend: b) }
        }
        return try b.download(x)
    }
}
