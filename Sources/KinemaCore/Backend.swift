// The operations a compute device provides. Model code calls these through `any Backend`, so the same
// model runs on the CPU reference backend and on CUDA.
//
// Conventions shared by every implementation:
// - Inputs may be arbitrary strided views unless a method says otherwise.
// - Arithmetic is done in f32 whatever the storage dtype (bf16/f16/f8 are loaded, computed in f32 and
//   rounded once on store); reductions accumulate in f32 or wider.
// - The result has the dtype of the first (activation) operand unless stated; weights, norm parameters
//   and tables may have another float dtype.
// - Results are new contiguous tensors on the backend's device.

public enum UnaryOp: String, Sendable, CaseIterable {
    case silu, geluTanh, geluExact, exp, neg, sqrt, rsqrt, tanh, sigmoid, square, abs, sin, cos
}

public enum BinaryOp: String, Sendable, CaseIterable {
    case add, sub, mul, div, maximum, minimum
}

/// The activation `linear` applies in its epilogue (after the bias, before rounding).
public enum LinearActivation: String, Sendable, CaseIterable {
    case none
    /// GELU, tanh approximation (PyTorch's approximate="tanh"; cuBLASLt's GELU epilogue).
    case geluTanh
}

public enum ReduceOp: String, Sendable, CaseIterable {
    case sum, mean, max
}

public protocol Backend: AnyObject, Sendable {
    var device: Device { get }

    /// Copies a tensor from any device to this backend's device (a no-op for tensors already there).
    func upload(_ x: Tensor) throws -> Tensor
    /// Copies a tensor from this backend's device to host memory, contiguous.
    func download(_ x: Tensor) throws -> Tensor
    /// A zero-filled tensor on this device.
    func zeros(_ shape: [Int], dtype: DType) throws -> Tensor

    /// Returns `x` itself when already contiguous, else a contiguous copy.
    func contiguous(_ x: Tensor) throws -> Tensor
    /// Converts element type (rounding as PyTorch does; f8e4m3 saturates at ±448 as current PyTorch does).
    func cast(_ x: Tensor, to dtype: DType) throws -> Tensor

    func unary(_ op: UnaryOp, _ x: Tensor) throws -> Tensor
    /// Elementwise with NumPy broadcasting. Result dtype: f32 if either operand is f32, else `a.dtype`.
    func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) throws -> Tensor
    /// `x · scale + shift` with scalars.
    func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor
    /// Reduces over `axes`; `mean` and `sum` accumulate in f64.
    func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int], keepDims: Bool) throws -> Tensor

    /// Softmax over the last axis.
    func softmax(_ x: Tensor) throws -> Tensor
    /// LayerNorm over the last axis; statistics in f32. `weight`/`bias` are [D] or nil.
    func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor
    /// RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · weight; statistics in f32.
    func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor

    /// Batched matrix product [..., M, K] · [..., K, N] → [..., M, N]; batch axes broadcast.
    func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// activation(x [..., in] · weightᵀ + bias) → [..., out] in x's dtype; weight [out, in], bias [out] or nil.
    /// The product accumulates in f32; bias and activation are applied in f32 and the result is rounded
    /// once (the GEMM epilogue). cuBLASLt reads the bias in the output dtype, so on CUDA a bf16 output
    /// sees its bias rounded to bf16 first (as a bf16 PyTorch model's bias is).
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: LinearActivation) throws -> Tensor
    /// Scaled dot-product attention without a mask. query [B, H, Lq, D], key [B, H, Lk, D],
    /// value [B, H, Lk, Dv] → [B, H, Lq, Dv]. Inputs may be strided views with unit last stride.
    /// Works in O(Lq + Lk) extra memory per head (never materializes Lq × Lk).
    func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws -> Tensor
    /// Rotary embedding on interleaved pairs: x [B, L, H, D]; cos, sin [L, D/2] (f32).
    /// (x[2i], x[2i+1]) ↦ (x[2i]·cos − x[2i+1]·sin, x[2i]·sin + x[2i+1]·cos).
    func rope(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor

    // Fused passes of the DiT block (each equals a composition of the ops above, rounded once).

    /// LayerNorm over the last axis, then the adaLN modulation, then a cast — one pass:
    /// y = (LN(x)·weight + bias)·(1 + scale) + shift, computed in f32 and rounded once to `outDType`.
    /// x [B, L, D] (any float dtype, any strides); weight, bias [D] or nil; shift, scale [B, 1, D] or
    /// [1, 1, D] (broadcast over L) or nil. Statistics as `layerNorm`. Result [B, L, D] contiguous.
    func modulatedLayerNorm(
        _ x: Tensor, weight: Tensor?, bias: Tensor?, shift: Tensor?, scale: Tensor?, eps: Float, outDType: DType
    ) throws -> Tensor
    /// The gated residual update x + y·gate (gate nil: x + y), in f32 with the product rounded to f32
    /// before the sum (as `add(x, mul(y, gate))`). x [B, L, D] float; y [B, L, D] any float dtype;
    /// gate [B, 1, D] or [1, 1, D] (broadcast over L). Result: x's shape and dtype, contiguous.
    func gatedResidual(_ x: Tensor, _ y: Tensor, gate: Tensor?) throws -> Tensor
    /// Wan's q/k path: RMSNorm over the full width (x / sqrt(mean(x²) + eps) · weight), then the
    /// interleaved RoPE of `rope` applied per head, in f32 and rounded once to x's dtype.
    /// x [B, L, H·d] with unit last stride (rows may be strided, e.g. a slice of a fused QKV output);
    /// weight [H·d] or nil; cos, sin [L, d/2]. Result [B, L, H·d] contiguous (viewable as [B, L, H, d]).
    func rmsNormRope(_ x: Tensor, weight: Tensor?, eps: Float, cos: Tensor, sin: Tensor, heads: Int) throws -> Tensor
    /// The Wan VAE's norm: RMS over the channel axis of x [B, C, …] (any trailing axes, any strides),
    /// x / sqrt(mean_c(x²) + eps) · weight[c], then SiLU when `silu`, in f32 and rounded once to x's dtype.
    /// weight [C] or nil. Result: x's shape, contiguous. Equals `composedChannelRMSNorm` (rounded once).
    func channelRMSNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor
    /// Concatenates along `axis`; all other axes must match.
    func concat(_ xs: [Tensor], axis: Int) throws -> Tensor
    /// Row gather (an embedding lookup): out[r, :] = table[indices[r], :], bytes copied unchanged, in one
    /// pass instead of one copy per row. table [V, D] of any dtype with unit last stride (rows may be
    /// strided, e.g. a column slice); indices are host values in 0..<V, repeats allowed. Result
    /// [indices.count, D] contiguous in table's dtype. An index outside 0..<V is a KinemaError
    /// (`RowGather.validate`), checked before any work.
    func gatherRows(_ table: Tensor, indices: [Int]) throws -> Tensor
    /// 3-D convolution (cross-correlation, as PyTorch). x [B, Cin, T, H, W], weight [Cout, Cin, kT, kH, kW],
    /// bias [Cout] or nil; zero padding applied symmetrically per axis.
    func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) throws -> Tensor
    /// 3-D convolution on channels-last activations (the Wan VAE's layout: cuDNN's tensor-core convolutions
    /// are native to it, and a frame range is one contiguous block). x [B, T, H, W, Cin], weight
    /// [Cout, kT, kH, kW, Cin], bias [Cout] (f32) or nil, residual [B, T', H', W', Cout] or nil →
    /// conv(x) + bias + residual as [B, T', H', W', Cout], contiguous, in x's dtype. Stride and symmetric zero
    /// padding per axis (T, H, W), as `conv3d`. Equals `composedConv3dChannelsLast`.
    func conv3dChannelsLast(
        _ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?, stride: [Int], padding: [Int]
    ) throws -> Tensor
    /// `rmsNorm` over the last axis, then SiLU when `silu`, computed in f32 and rounded once to x's dtype
    /// (the channels-last form of `channelRMSNorm`). x [..., C], weight [C] or nil. Result contiguous.
    /// Equals `composedRMSNorm(silu:)`.
    func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor
    /// `rmsNorm(silu:)` of x [B, T, …, C] written after `prefix` [B, P, …, C] (copied unchanged) along axis 1:
    /// → [B, P + T, …, C], contiguous. The VAE's causal convolution input (the previous chunk's normalized
    /// frames, then this chunk's) built in one buffer instead of a norm and a concatenation. Equals
    /// `composedRMSNorm(after:)`.
    func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool, after prefix: Tensor) throws -> Tensor

    /// A queue of device → host copies that may run while more work is queued (the VAE's frames copied out
    /// while later frames decode). Default: each copy made at once (`ImmediateHostDownloads`).
    func makeHostDownloadQueue() throws -> any HostDownloadQueue

    /// Whether a model should run `planningConvolutions` before its first real pass of the kind `tag` names
    /// (true at most once per tag and process, and only where the backend prepares convolution plans).
    func shouldPlanConvolutions(for tag: String, dtype: DType) -> Bool
    /// Runs `body` with `conv3dChannelsLast` only recording its problems — their outputs are left
    /// uninitialized, so whatever `body` computes is garbage — then prepares the recorded problems' plans
    /// (CUDA: cuDNN compiles them on every core). Default: nothing.
    func planningConvolutions(_ body: () throws -> Void) throws
}

extension Backend {
    public func shouldPlanConvolutions(for tag: String, dtype: DType) -> Bool { false }
    public func planningConvolutions(_ body: () throws -> Void) throws {}
}

extension Backend {
    /// A view when strides allow, otherwise a contiguous copy reshaped.
    public func reshape(_ x: Tensor, _ shape: [Int]) throws -> Tensor {
        if let view = try x.viewed(as: shape) { return view }
        guard let view = try contiguous(x).viewed(as: shape) else {
            throw KinemaError.shapeMismatch(context: "reshape", expected: "\(shape)", found: "\(x.shape)")
        }
        return view
    }

    /// x [..., in] · weightᵀ + bias (no activation).
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        try linear(x, weight: weight, bias: bias, activation: .none)
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.add, a, b) }
    public func sub(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.sub, a, b) }
    public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.mul, a, b) }
    public func div(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.div, a, b) }

    public func silu(_ x: Tensor) throws -> Tensor { try unary(.silu, x) }
    /// GELU as `torch.nn.functional.gelu(x, approximate:)`.
    public func gelu(_ x: Tensor, approximate: GELUApproximation) throws -> Tensor {
        try unary(approximate == .tanh ? .geluTanh : .geluExact, x)
    }

    /// Mean over `axes` (f64 accumulation), dropping them unless `keepDims`.
    public func mean(_ x: Tensor, axes: [Int], keepDims: Bool = false) throws -> Tensor {
        try reduce(.mean, x, axes: axes, keepDims: keepDims)
    }
}

/// PyTorch's `approximate=` argument of GELU: "none" is the erf form, "tanh" the tanh approximation.
public enum GELUApproximation: String, Sendable {
    case none, tanh
}

extension Backend {
    /// `channelRMSNorm` as a composition of the basic ops: the channel axis moved last, `rmsNorm` over it,
    /// `silu`, and back to [B, C, …] contiguous. The CPU reference, and CUDA's path with KINEMA_FUSED=0.
    public func composedChannelRMSNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor {
        guard x.rank >= 2 else {
            throw KinemaError.shapeMismatch(context: "channelRMSNorm", expected: "x [B, C, …]", found: "\(x.shape)")
        }
        let toChannelsLast = [0] + Array(2..<x.rank) + [1]
        let toChannelsFirst = [0, x.rank - 1] + Array(1..<(x.rank - 1))
        var y = try rmsNorm(try x.permuted(toChannelsLast), weight: weight, eps: eps)
        if silu { y = try self.silu(y) }
        return try contiguous(try y.permuted(toChannelsFirst))
    }
}

extension Backend {
    /// `conv3dChannelsLast` through the channels-first `conv3d`: x and the weight permuted to [B, Cin, T, H, W]
    /// and [Cout, Cin, kT, kH, kW], the result permuted back, the residual added. CUDA's path whenever cuDNN's
    /// graph API is not used (f32, KINEMA_CONV=kinema, no plan); the CPU has its own channels-last im2col.
    public func composedConv3dChannelsLast(
        _ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?, stride: [Int], padding: [Int]
    ) throws -> Tensor {
        try ChannelsLastConvolution.validate(x, weight: weight, bias: bias, residual: residual, stride: stride, padding: padding)
        let channelsFirst = try contiguous(try x.permuted([0, 4, 1, 2, 3]))
        let filters = try contiguous(try weight.permuted([0, 4, 1, 2, 3]))
        let y = try conv3d(channelsFirst, weight: filters, bias: bias, stride: stride, padding: padding)
        let back = try contiguous(try y.permuted([0, 2, 3, 4, 1]))
        guard let residual else { return back }
        return try add(back, residual)
    }

    /// `rmsNorm(silu:after:)` as `rmsNorm(silu:)` then `concat` on axis 1.
    public func composedRMSNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool, after prefix: Tensor) throws -> Tensor {
        try PrefixedRows.validate(x, prefix: prefix)
        return try concat([prefix, try rmsNorm(x, weight: weight, eps: eps, silu: silu)], axis: 1)
    }

    /// `rmsNorm(silu:)` as `rmsNorm` then `silu` (rounded twice in a low-precision dtype).
    public func composedRMSNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor {
        let y = try rmsNorm(x, weight: weight, eps: eps)
        return silu ? try self.silu(y) : y
    }
}

/// Shape checks shared by every `conv3dChannelsLast` implementation.
public enum ChannelsLastConvolution {
    /// The output shape [B, T', H', W', Cout], or a KinemaError naming what does not fit.
    @discardableResult
    public static func validate(
        _ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?, stride: [Int], padding: [Int]
    ) throws -> [Int] {
        guard x.rank == 5, weight.rank == 5, x.shape[4] == weight.shape[4] else {
            throw KinemaError.shapeMismatch(
                context: "conv3dChannelsLast", expected: "x [B, T, H, W, Cin] with weight [Cout, kT, kH, kW, Cin]",
                found: "x \(x.shape), weight \(weight.shape)")
        }
        guard stride.count == 3, padding.count == 3, stride.allSatisfy({ $0 >= 1 }), padding.allSatisfy({ $0 >= 0 }) else {
            throw KinemaError.invalidArgument("conv3dChannelsLast: stride \(stride) must be 3 values ≥ 1 and padding \(padding) 3 values ≥ 0")
        }
        let cout = weight.shape[0]
        if let bias, bias.shape != [cout] {
            throw KinemaError.shapeMismatch(context: "conv3dChannelsLast bias", expected: "[\(cout)]", found: "\(bias.shape)")
        }
        var out = [x.shape[0], 0, 0, 0, cout]
        for axis in 0..<3 {
            let padded = x.shape[1 + axis] + 2 * padding[axis]
            guard padded >= weight.shape[1 + axis] else {
                throw KinemaError.shapeMismatch(
                    context: "conv3dChannelsLast", expected: "kernel \(Array(weight.shape[1...3])) no larger than the padded input",
                    found: "x \(x.shape), padding \(padding)")
            }
            out[1 + axis] = (padded - weight.shape[1 + axis]) / stride[axis] + 1
        }
        if let residual, residual.shape != out {
            throw KinemaError.shapeMismatch(context: "conv3dChannelsLast residual", expected: "\(out)", found: "\(residual.shape)")
        }
        return out
    }
}

/// Shape checks of `rmsNorm(silu:after:)`.
public enum PrefixedRows {
    public static func validate(_ x: Tensor, prefix: Tensor) throws {
        guard x.rank >= 2, prefix.rank == x.rank, prefix.dtype == x.dtype, prefix.shape[0] == x.shape[0],
            Array(prefix.shape.dropFirst(2)) == Array(x.shape.dropFirst(2))
        else {
            throw KinemaError.shapeMismatch(
                context: "rmsNorm after a prefix", expected: "prefix [B, P, …] matching x \(x.shape) (\(x.dtype.rawValue)) but on axis 1",
                found: "\(prefix.shape) (\(prefix.dtype.rawValue))")
        }
    }
}
