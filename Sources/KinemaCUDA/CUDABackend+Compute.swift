import Foundation
import KinemaCore

// Row ops, reductions, RoPE and the matrix ops of the CUDA backend.

extension CUDABackend {
    /// f32 contiguous copy of an optional parameter vector (norm weights, biases), checked to be [length].
    func parameter(_ x: Tensor?, length: Int, _ name: String) throws -> Tensor? {
        guard let x else { return nil }
        guard x.count == length else {
            throw KinemaError.shapeMismatch(context: name, expected: "[\(length)]", found: "\(x.shape)")
        }
        return try cast(try upload(x), to: .f32)
    }

    func rows(_ x: Tensor, _ op: String) throws -> (input: Tensor, rows: Int, width: Int) {
        try computable(x, op)
        guard let width = x.shape.last, width > 0 else {
            throw KinemaError.invalidArgument("\(op): needs a non-empty last axis, got \(x.shape)")
        }
        return (try contiguous(x), x.count / width, width)
    }

    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        let (input, count, width) = try rows(x, "layerNorm")
        let (w, b) = (try parameter(weight, length: width, "layerNorm weight"), try parameter(bias, length: width, "layerNorm bias"))
        let out = try empty(x.shape, x.dtype)
        guard count > 0 else { return out }
        try launch("kinema_layer_norm", RowKernels.norms(x.dtype), grid: (count, 1, 1), block: (256, 1, 1)) { arguments in
            arguments.append(address(input))
            arguments.append(address(out))
            arguments.append(Int32(width))
            arguments.append(optionalAddress(w))
            arguments.append(optionalAddress(b))
            arguments.append(eps)
        }
        return out
    }

    /// Rows of whole 16-byte vectors (up to 2,048 bf16) take a lane group per row, other rows up to 512 wide a warp
    /// per row, wider ones a block per row (`rmsNormRows`).
    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        let out = try empty(x.shape, x.dtype)
        try rmsNormRows(x, weight: weight, eps: eps, silu: false, into: out)
        return out
    }

    public func softmax(_ x: Tensor) throws -> Tensor {
        let (input, count, width) = try rows(x, "softmax")
        let out = try empty(x.shape, x.dtype)
        guard count > 0 else { return out }
        try launch("kinema_softmax", RowKernels.norms(x.dtype), grid: (count, 1, 1), block: (256, 1, 1)) { arguments in
            arguments.append(address(input))
            arguments.append(address(out))
            arguments.append(Int32(width))
        }
        return out
    }

    public func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int], keepDims: Bool) throws -> Tensor {
        try computable(x, "reduce")
        let resolved = Set(try axes.map { try x.axis($0) })
        guard !resolved.isEmpty else { throw KinemaError.invalidArgument("reduce: no axes given") }
        let kept = (0..<x.rank).filter { !resolved.contains($0) }
        let reduced = (0..<x.rank).filter { resolved.contains($0) }
        // Move the reduced axes last, then reduce contiguous rows.
        let ordered = try contiguous(try x.permuted(kept + reduced))
        let width = reduced.reduce(1) { $0 * x.shape[$1] }
        let count = kept.reduce(1) { $0 * x.shape[$1] }
        let outShape = keepDims ? x.shape.enumerated().map { resolved.contains($0.offset) ? 1 : $0.element } : kept.map { x.shape[$0] }
        let out = try empty(outShape, x.dtype)
        guard count > 0, width > 0 else { return out }
        let code: Int32 = op == .sum ? 0 : op == .mean ? 1 : 2
        try launch("kinema_reduce", RowKernels.norms(x.dtype), grid: (count, 1, 1), block: (256, 1, 1)) { arguments in
            arguments.append(address(ordered))
            arguments.append(address(out))
            arguments.append(Int64(width))
            arguments.append(code)
        }
        return out
    }

    public func rope(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor {
        try computable(x, "rope")
        guard x.rank == 4, x.shape[3] % 2 == 0 else {
            throw KinemaError.shapeMismatch(context: "rope", expected: "[B, L, H, D] with even D", found: "\(x.shape)")
        }
        let (length, heads, half) = (x.shape[1], x.shape[2], x.shape[3] / 2)
        guard cos.shape == [length, half], sin.shape == [length, half] else {
            throw KinemaError.shapeMismatch(context: "rope tables", expected: "[\(length), \(half)]", found: "\(cos.shape), \(sin.shape)")
        }
        let input = try contiguous(x)
        let (c, s) = (try cast(try upload(cos), to: .f32), try cast(try upload(sin), to: .f32))
        let out = try empty(x.shape, x.dtype)
        let pairs = x.count / 2
        try launchLinear("kinema_rope", RowKernels.norms(x.dtype), count: pairs) { arguments in
            arguments.append(address(input))
            arguments.append(address(out))
            arguments.append(Int64(pairs))
            arguments.append(Int32(length))
            arguments.append(Int32(heads))
            arguments.append(Int32(half))
            arguments.append(address(c))
            arguments.append(address(s))
        }
        return out
    }

    // MARK: - Matrix ops

    /// out[batch] = activation(a[batch] · b[batch] + bias) for 3-D operand views (batch, rows, cols) with
    /// any strides: cuBLASLt when the operands suit it (one float dtype, D in it or f32 from bf16/f16 operands,
    /// unit inner stride), with bias and GELU in its epilogue, else the built-in tiled kernel and separate
    /// bias/GELU passes. `bias` is [N] f32 or nil. `scale` multiplies the product (cuBLASLt's alpha): only with an
    /// f32 D and neither bias nor activation, so that the fallback's separate scaling rounds once too.
    private func batchedGemm(
        _ a: Tensor, _ b: Tensor, bias: Tensor?, activation: LinearActivation = .none, scale: Float = 1, outType: DType
    ) throws -> Tensor {
        guard scale == 1 || (bias == nil && activation == .none && outType == .f32) else {
            throw KinemaError.invalidArgument("batchedGemm: a scale only with an f32 output and without bias or activation")
        }
        let (batch, m, k, n) = (a.shape[0], a.shape[1], a.shape[2], b.shape[2])
        let out = try empty([batch, m, n], outType)
        guard batch > 0, m > 0, n > 0 else { return out }
        guard k > 0 else {
            // An empty product: the result is activation(bias) broadcast over the rows.
            let zero = try zeros([batch, m, n], dtype: outType)
            let biased = try bias.map { try binary(.add, zero, $0) } ?? zero
            let activated = activation == .geluTanh ? try unary(.geluTanh, biased) : biased
            return try cast(activated, to: outType)
        }
        // D in the operands' dtype, or f32 from bf16/f16 operands (attention scores kept unrounded).
        let outTypeSuits = outType == a.dtype || (outType == .f32 && (a.dtype == .bf16 || a.dtype == .f16))
        if case .success(let blas) = context.blasLt, a.dtype == b.dtype, outTypeSuits, a.strides[2] == 1 || k == 1,
            a.strides[1] >= k || m == 1
        {
            // B either row-major [K, N] or a transposed view of a row-major [N, K] matrix (a Linear weight).
            let transposed = b.strides[1] == 1 && b.strides[2] >= k && n > 1
            let rowMajor = b.strides[2] == 1 && (b.strides[1] >= n || k == 1)
            if transposed || rowMajor {
                let useTransposed = transposed && !rowMajor
                let operands = (
                    a: CUBLASLt.Operand(address: address(a), dtype: a.dtype, rowStride: max(a.strides[1], k), batchStride: a.strides[0]),
                    b: CUBLASLt.Operand(
                        address: address(b), dtype: b.dtype, rowStride: useTransposed ? b.strides[2] : max(b.strides[1], n),
                        batchStride: b.strides[0]),
                    d: CUBLASLt.Operand(address: address(out), dtype: outType, rowStride: n, batchStride: m * n))
                try context.makeCurrent()
                let epilogue: CUBLASLt.Epilogue
                switch (bias != nil, activation) {
                case (false, .none): epilogue = .none
                case (true, .none): epilogue = .bias
                case (false, .geluTanh): epilogue = .gelu
                case (true, .geluTanh): epilogue = .geluBias
                }
                if epilogue != .none, fusedPasses {
                    // cuBLASLt reads the bias in D's dtype; a failure (no algorithm with this epilogue) falls
                    // back to the plain GEMM and separate passes below.
                    let biasInD = try bias.map { try cast($0, to: outType) }
                    do {
                        try context.profiled("cublasLt gemm+\(epilogue) \(a.dtype.rawValue)") {
                            try blas.gemm(
                                a: operands.a, b: operands.b, d: operands.d, m: m, n: n, k: k, batch: batch, transposedB: useTransposed,
                                epilogue: epilogue, bias: optionalAddress(biasInD), stream: context.stream)
                        }
                        return out
                    } catch {
                        // The separate passes round D before the bias and the GELU: say so once per shape.
                        context.warnOnce(
                            "gemm epilogue \(epilogue) \(m)x\(n)x\(k) \(a.dtype)",
                            "cuBLASLt \(epilogue) epilogue unavailable for M \(m) N \(n) K \(k) \(a.dtype.rawValue), using separate passes: \(error)")
                    }
                }
                var done = true
                do {
                    try context.profiled("cublasLt gemm \(a.dtype.rawValue)") {
                        try blas.gemm(
                            a: operands.a, b: operands.b, d: operands.d, m: m, n: n, k: k, batch: batch, transposedB: useTransposed,
                            alpha: scale, stream: context.stream)
                    }
                } catch {
                    // e.g. no algorithm for operands this poorly aligned (a view starting inside a row): Kinema's kernel.
                    done = false
                    context.warnOnce(
                        "gemm \(m)x\(n)x\(k) \(a.dtype) \(operands.a.address % 16) \(operands.b.address % 16)",
                        "cuBLASLt GEMM failed for M \(m) N \(n) K \(k) \(a.dtype.rawValue), using Kinema's kernel: \(error)")
                }
                if done {
                    if let bias { try addBias(out, bias) }
                    return activation == .geluTanh ? try unary(.geluTanh, out) : out
                }
            }
        }
        try launch("kinema_gemm", MatrixKernels.gemm(a.dtype, b.dtype, out: outType), grid: ((n + 15) / 16, (m + 15) / 16, batch), block: (16, 16, 1)) { arguments in
            arguments.append(address(a))
            arguments.append(Int64(a.strides[0]))
            arguments.append(Int64(a.strides[1]))
            arguments.append(Int64(a.strides[2]))
            arguments.append(address(b))
            arguments.append(Int64(b.strides[0]))
            arguments.append(Int64(b.strides[1]))
            arguments.append(Int64(b.strides[2]))
            arguments.append(address(out))
            arguments.append(Int32(m))
            arguments.append(Int32(n))
            arguments.append(Int32(k))
            arguments.append(optionalAddress(bias))
        }
        if scale != 1 { return try affine(out, scale: scale, shift: 0) }
        return activation == .geluTanh ? try unary(.geluTanh, out) : out
    }

    private func addBias(_ out: Tensor, _ bias: Tensor) throws {
        let columns = out.shape[out.rank - 1]
        try launchLinear("kinema_bias", ElementwiseKernels.unary(out.dtype), count: out.count) { arguments in
            arguments.append(address(out))
            arguments.append(address(bias))
            arguments.append(Int64(out.count))
            arguments.append(Int32(columns))
        }
    }

    public func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try computable(a, "matmul")
        try computable(b, "matmul")
        guard a.rank >= 2, b.rank >= 2, a.shape[a.rank - 1] == b.shape[b.rank - 2] else {
            throw KinemaError.shapeMismatch(context: "matmul", expected: "[..., M, K] · [..., K, N]", found: "\(a.shape) · \(b.shape)")
        }
        let (m, k, n) = (a.shape[a.rank - 2], a.shape[a.rank - 1], b.shape[b.rank - 1])
        let batchA = Array(a.shape.dropLast(2))
        let batchB = Array(b.shape.dropLast(2))
        let rank = max(batchA.count, batchB.count)
        let pa = Array(repeating: 1, count: rank - batchA.count) + batchA
        let pb = Array(repeating: 1, count: rank - batchB.count) + batchB
        let batchShape = try zip(pa, pb).map { x, y -> Int in
            guard x == y || x == 1 || y == 1 else {
                throw KinemaError.shapeMismatch(context: "matmul batch", expected: "\(a.shape)", found: "\(b.shape)")
            }
            return max(x, y)
        }
        let batch = batchShape.reduce(1, *)
        // Broadcast views flattened to one batch axis: contiguous copies only when strides cannot merge.
        func flattened(_ x: Tensor, rows: Int, cols: Int) throws -> Tensor {
            let expanded = try x.expanded(to: batchShape + [rows, cols])
            if let view = try expanded.viewed(as: [batch, rows, cols]) { return view }
            return try reshape(try contiguous(expanded), [batch, rows, cols])
        }
        let result = try batchedGemm(try flattened(a, rows: m, cols: k), try flattened(b, rows: k, cols: n), bias: nil, outType: a.dtype)
        return try reshape(result, batchShape + [m, n])
    }

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: LinearActivation) throws -> Tensor {
        try computable(x, "linear")
        try computable(weight, "linear weight")
        guard weight.rank == 2, let features = x.shape.last, features == weight.shape[1] else {
            throw KinemaError.shapeMismatch(context: "linear", expected: "x [..., \(weight.shape.last ?? 0)] with weight [out, in]", found: "\(x.shape), weight \(weight.shape)")
        }
        let outFeatures = weight.shape[0]
        let rows = x.count / max(features, 1)
        let flat = try reshape(x, [1, rows, features])
        let transposed = try weight.transposed(0, 1).unsqueezed(0)  // [1, in, out] as a strided view
        let b = try bias.map { b -> Tensor in
            guard b.count == outFeatures else {
                throw KinemaError.shapeMismatch(context: "linear bias", expected: "[\(outFeatures)]", found: "\(b.shape)")
            }
            return try cast(try upload(b), to: .f32)
        }
        let result = try batchedGemm(flat, transposed, bias: b, activation: activation, outType: x.dtype)
        return try reshape(result, Array(x.shape.dropLast()) + [outFeatures])
    }

    public func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws -> Tensor {
        for (tensor, name) in [(query, "query"), (key, "key"), (value, "value")] {
            try computable(tensor, "attention \(name)")
            guard tensor.rank == 4, tensor.strides[3] == 1 || tensor.shape[3] == 1 else {
                throw KinemaError.shapeMismatch(context: "attention \(name)", expected: "[B, H, L, D] with unit last stride", found: "\(tensor.shape) strides \(tensor.strides)")
            }
        }
        let (batch, heads, lq, d) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let (lk, dv) = (key.shape[2], value.shape[3])
        guard key.shape == [batch, heads, lk, d], value.shape[0..<3] == [batch, heads, lk] else {
            throw KinemaError.shapeMismatch(context: "attention", expected: "q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv]", found: "\(query.shape), \(key.shape), \(value.shape)")
        }
        let (q, k, v) = (try cast(query, dtype: query.dtype), try cast(key, dtype: query.dtype), try cast(value, dtype: query.dtype))
        let rows = batch * heads * lq
        guard rows > 0, lk > 0 else { return try zeros([batch, heads, lq, dv], dtype: query.dtype) }
        if d > 256 || dv > 256 { return try composedAttention(query: q, key: k, value: v, scale: scale) }
        if let viaWGMMA = try attentionThroughWGMMA(query: q, key: k, value: v, scale: scale) { return viaWGMMA }
        if let viaCUDNN = try attentionThroughCUDNN(query: q, key: k, value: v, scale: scale) { return viaCUDNN }
        let out = try empty([batch, heads, lq, dv], query.dtype)
        if query.dtype == .bf16, d == FlashAttentionKernel.headDim, dv == FlashAttentionKernel.headDim,
            [q, k, v].allSatisfy({ t in t.strides.dropLast().allSatisfy { $0 % 2 == 0 } && address(t) % 4 == 0 }),
            batch * heads <= 65535
        {
            // Tensor-core path: 32-bit loads need even strides and 4-byte aligned rows.
            let grid = ((lq + FlashAttentionKernel.queriesPerBlock - 1) / FlashAttentionKernel.queriesPerBlock, batch * heads, 1)
            try launch("kinema_flash_attention", FlashAttentionKernel.source, grid: grid, block: (FlashAttentionKernel.threadsPerBlock, 1, 1)) { arguments in
                for t in [q, k, v] {
                    arguments.append(address(t))
                    arguments.append(Int64(t.strides[0]))
                    arguments.append(Int64(t.strides[1]))
                    arguments.append(Int64(t.strides[2]))
                }
                arguments.append(address(out))
                arguments.append(Int32(heads))
                arguments.append(Int32(lq))
                arguments.append(Int32(lk))
                arguments.append(scale * 1.4426950408889634)
            }
            return out
        }
        let warpsPerBlock = 4
        try launch("kinema_attention", MatrixKernels.attention(query.dtype), grid: ((rows + warpsPerBlock - 1) / warpsPerBlock, 1, 1), block: (32 * warpsPerBlock, 1, 1)) { arguments in
            for t in [q, k, v] {
                arguments.append(address(t))
                arguments.append(Int64(t.strides[0]))
                arguments.append(Int64(t.strides[1]))
                arguments.append(Int64(t.strides[2]))
            }
            arguments.append(address(out))
            arguments.append(Int64(rows))
            arguments.append(Int32(heads))
            arguments.append(Int32(lq))
            arguments.append(Int32(lk))
            arguments.append(Int32(d))
            arguments.append(Int32(dv))
            arguments.append(scale)
        }
        return out
    }

    /// Attention for head dims beyond the kernels' 256 (the Wan VAE's single 384-wide head): scores by GEMM,
    /// a row softmax in f32, then a GEMM with V — over batch·head slices that keep the Lq × Lk f32 scores
    /// within ~256 MiB (at 480p one VAE frame is 6240 × 6240 × 4 B = 156 MB).
    /// bf16/f16 operands stay in their dtype: the GEMMs run on tensor cores, accumulate in f32 and write the
    /// scores in f32; the probabilities are rounded to the operands' dtype before the GEMM with V, as
    /// PyTorch's fused attention does. (f32 operands: every stage in f32.)
    private func composedAttention(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws -> Tensor {
        let (batch, heads, lq, d) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let (lk, dv) = (key.shape[2], value.shape[3])
        let slices = batch * heads
        let dtype = query.dtype == .bf16 || query.dtype == .f16 ? query.dtype : .f32
        // [B, H, L, D] views → [B·H, L, D] (no copy when the views merge, e.g. slices of a stacked QKV).
        func slicesOf(_ x: Tensor, rows: Int, cols: Int) throws -> Tensor {
            let x = try cast(x, dtype: dtype)
            return try x.viewed(as: [slices, rows, cols]) ?? reshape(try contiguous(x), [slices, rows, cols])
        }
        let q = try slicesOf(query, rows: lq, cols: d)
        let k = try slicesOf(key, rows: lk, cols: d)
        let v = try slicesOf(value, rows: lk, cols: dv)
        let perSlice = max(1, lq * lk * DType.f32.byteSize)
        let step = max(1, min(slices, (256 << 20) / perSlice))
        var parts: [Tensor] = []
        for start in stride(from: 0, to: slices, by: step) {
            let count = min(step, slices - start)
            let (qs, ks, vs) = (
                try q.narrowed(axis: 0, start: start, length: count), try k.narrowed(axis: 0, start: start, length: count),
                try v.narrowed(axis: 0, start: start, length: count)
            )
            let scores = try batchedGemm(qs, try ks.transposed(1, 2), bias: nil, scale: scale, outType: .f32)  // [n, Lq, Lk] f32
            let probabilities = try cast(try softmax(scores), dtype: dtype)
            parts.append(try batchedGemm(probabilities, vs, bias: nil, outType: dtype))  // [n, Lq, Dv]
        }
        let out = parts.count == 1 ? parts[0] : try concat(parts, axis: 0)
        return try cast(try reshape(out, [batch, heads, lq, dv]), to: query.dtype)
    }

    /// Same-dtype operands for the attention kernel, keeping strided views when no conversion is needed.
    private func cast(_ x: Tensor, dtype: DType) throws -> Tensor {
        x.dtype == dtype ? x : try cast(x, to: dtype)
    }

    public func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) throws -> Tensor {
        try computable(x, "conv3d")
        try computable(weight, "conv3d weight")
        guard x.rank == 5, weight.rank == 5, x.shape[1] == weight.shape[1], stride.count == 3, padding.count == 3,
            stride.allSatisfy({ $0 > 0 }), padding.allSatisfy({ $0 >= 0 })
        else {
            throw KinemaError.shapeMismatch(context: "conv3d", expected: "x [B, Ci, T, H, W], weight [Co, Ci, kT, kH, kW], 3 strides/paddings", found: "\(x.shape), \(weight.shape), stride \(stride), padding \(padding)")
        }
        let (b, ci, t, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let (co, kt, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3], weight.shape[4])
        let to = (t + 2 * padding[0] - kt) / stride[0] + 1
        let ho = (h + 2 * padding[1] - kh) / stride[1] + 1
        let wo = (w + 2 * padding[2] - kw) / stride[2] + 1
        guard to > 0, ho > 0, wo > 0 else {
            throw KinemaError.invalidArgument("conv3d: kernel \(weight.shape) larger than padded input \(x.shape)")
        }
        let input = try contiguous(x)
        let filters = try contiguous(weight)
        let biasF32 = try parameter(bias, length: co, "conv3d bias")
        let out = try empty([b, co, to, ho, wo], x.dtype)
        if try conv3dThroughCUDNN(input: input, filters: filters, bias: biasF32, out: out, stride: stride, padding: padding) {
            return out
        }
        try launchLinear("kinema_conv3d", MatrixKernels.conv3d(x.dtype, weight.dtype), count: out.count) { arguments in
            arguments.append(address(input))
            arguments.append(address(filters))
            arguments.append(optionalAddress(biasF32))
            arguments.append(address(out))
            for value in [b, ci, t, h, w, co, kt, kh, kw, to, ho, wo, stride[0], stride[1], stride[2], padding[0], padding[1], padding[2]] {
                arguments.append(Int32(value))
            }
        }
        return out
    }
}
