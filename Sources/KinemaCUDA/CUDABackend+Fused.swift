import Foundation
import KinemaCore

// The fused DiT-block passes on CUDA (Kernels/FusedKernels.swift). Rows longer than the kernels keep in
// registers (D > 8192), and every row with KINEMA_FUSED=off, fall back to the composition of the unfused
// ops, which computes the same thing.

extension CUDABackend {
    public func modulatedLayerNorm(
        _ x: Tensor, weight: Tensor?, bias: Tensor?, shift: Tensor?, scale: Tensor?, eps: Float, outDType: DType
    ) throws -> Tensor {
        let op = "modulatedLayerNorm"
        try computable(x, op)
        guard KernelPrelude.isComputable(outDType) else {
            throw KinemaError.dtypeMismatch(context: "\(op) output on CUDA", expected: "f32, bf16 or f16", found: outDType)
        }
        guard x.rank == 3, x.shape[2] > 0 else {
            throw KinemaError.shapeMismatch(context: op, expected: "x [B, L, D] with D > 0", found: "\(x.shape)")
        }
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let w = try parameter(weight, length: width, "\(op) weight")
        let b = try parameter(bias, length: width, "\(op) bias")
        let shiftRows = try modulationRows(shift, batch: batch, width: width, "\(op) shift")
        let scaleRows = try modulationRows(scale, batch: batch, width: width, "\(op) scale")
        guard fusedPasses, let threads = FusedKernels.threads(count: width, perThread: FusedKernels.valuesPerThread) else {
            var y = try layerNorm(x, weight: w, bias: b, eps: eps)
            if let scale { y = try binary(.mul, y, try affine(scale, scale: 1, shift: 1)) }
            if let shift { y = try binary(.add, y, shift) }
            return try cast(y, to: outDType)
        }
        let input = try contiguous(x)
        let out = try empty(x.shape, outDType)
        let rows = batch * length
        guard rows > 0 else { return out }
        try launch(
            "kinema_modulated_layer_norm", FusedKernels.modulatedLayerNorm(x.dtype, out: outDType), grid: (rows, 1, 1),
            block: (threads, 1, 1)
        ) { arguments in
            arguments.append(address(input))
            arguments.append(address(out))
            arguments.append(Int32(length))
            arguments.append(Int32(width))
            arguments.append(optionalAddress(w))
            arguments.append(optionalAddress(b))
            arguments.append(optionalAddress(shiftRows?.tensor))
            arguments.append(Int64(shiftRows?.stride ?? 0))
            arguments.append(optionalAddress(scaleRows?.tensor))
            arguments.append(Int64(scaleRows?.stride ?? 0))
            arguments.append(eps)
        }
        return out
    }

    public func gatedResidual(_ x: Tensor, _ y: Tensor, gate: Tensor?) throws -> Tensor {
        let op = "gatedResidual"
        try computable(x, op)
        try computable(y, "\(op) y")
        guard x.rank == 3, y.shape == x.shape else {
            throw KinemaError.shapeMismatch(context: op, expected: "x [B, L, D] and y of the same shape", found: "x \(x.shape), y \(y.shape)")
        }
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let gateRows = try modulationRows(gate, batch: batch, width: width, "\(op) gate")
        let rows = batch * length
        guard rows > 0, width > 0 else { return try empty(x.shape, x.dtype) }
        guard fusedPasses, let threads = FusedKernels.threads(count: width, perThread: FusedKernels.valuesPerThread) else {
            let update = try gate.map { try binary(.mul, y, $0) } ?? y
            return try cast(try binary(.add, x, update), to: x.dtype)
        }
        let out = try empty(x.shape, x.dtype)
        let (left, right) = (try contiguous(x), try contiguous(y))
        try launch(
            "kinema_gated_residual", FusedKernels.gatedResidual(x.dtype, y.dtype), grid: (rows, 1, 1), block: (threads, 1, 1)
        ) { arguments in
            arguments.append(address(left))
            arguments.append(address(right))
            arguments.append(address(out))
            arguments.append(Int32(length))
            arguments.append(Int32(width))
            arguments.append(optionalAddress(gateRows?.tensor))
            arguments.append(Int64(gateRows?.stride ?? 0))
        }
        return out
    }

    public func rmsNormRope(_ x: Tensor, weight: Tensor?, eps: Float, cos: Tensor, sin: Tensor, heads: Int) throws -> Tensor {
        let op = "rmsNormRope"
        try computable(x, op)
        guard x.rank == 3, heads > 0, x.shape[2] > 0, x.shape[2] % (2 * heads) == 0 else {
            throw KinemaError.shapeMismatch(context: op, expected: "x [B, L, H·d] with \(heads) heads of even size d", found: "\(x.shape)")
        }
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let half = width / heads / 2
        guard cos.shape == [length, half], sin.shape == [length, half] else {
            throw KinemaError.shapeMismatch(context: "\(op) tables", expected: "[\(length), \(half)]", found: "\(cos.shape), \(sin.shape)")
        }
        let w = try parameter(weight, length: width, "\(op) weight")
        guard fusedPasses, let threads = FusedKernels.threads(count: width / 2, perThread: FusedKernels.pairsPerThread) else {
            let normed = try rmsNorm(x, weight: w, eps: eps)
            let rotated = try rope(try reshape(normed, [batch, length, heads, 2 * half]), cos: cos, sin: sin)
            return try reshape(rotated, x.shape)
        }
        let input = x.strides[2] == 1 || width == 1 ? x : try contiguous(x)
        let (c, s) = (try cast(try upload(cos), to: .f32), try cast(try upload(sin), to: .f32))
        let out = try empty(x.shape, x.dtype)
        let rows = batch * length
        guard rows > 0 else { return out }
        try launch("kinema_rms_norm_rope", FusedKernels.rmsNormRope(x.dtype), grid: (rows, 1, 1), block: (threads, 1, 1)) { arguments in
            arguments.append(address(input))
            arguments.append(Int64(input.strides[0]))
            arguments.append(Int64(input.strides[1]))
            arguments.append(address(out))
            arguments.append(Int32(length))
            arguments.append(Int32(width))
            arguments.append(Int32(half))
            arguments.append(optionalAddress(w))
            arguments.append(address(c))
            arguments.append(address(s))
            arguments.append(eps)
        }
        return out
    }

    /// A [B, 1, D] or [1, 1, D] modulation tensor as f32 rows with unit element stride, and the element
    /// stride between samples (0 when shared). Strided f32 views (chunks of [B, 6, D]) are used as they are.
    private func modulationRows(_ t: Tensor?, batch: Int, width: Int, _ context: String) throws -> (tensor: Tensor, stride: Int)? {
        guard let t else { return nil }
        try computable(t, context)
        guard t.rank == 3, t.shape[0] == batch || t.shape[0] == 1, t.shape[1] == 1, t.shape[2] == width else {
            throw KinemaError.shapeMismatch(context: context, expected: "[\(batch), 1, \(width)] or [1, 1, \(width)]", found: "\(t.shape)")
        }
        let rows = t.dtype == .f32 && (t.strides[2] == 1 || width == 1) ? t : try cast(t, to: .f32)
        return (rows, t.shape[0] == 1 ? 0 : rows.strides[0])
    }

    public func channelRMSNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor {
        let op = "channelRMSNorm"
        try computable(x, op)
        guard x.rank >= 2 else {
            throw KinemaError.shapeMismatch(context: op, expected: "x [B, C, …]", found: "\(x.shape)")
        }
        let (batch, channels) = (x.shape[0], x.shape[1])
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        let w = try parameter(weight, length: channels, "\(op) weight")
        guard fusedPasses, channels <= Int(Int32.max) else {
            return try composedChannelRMSNorm(x, weight: w, eps: eps, silu: silu)
        }
        let input = try contiguous(x)
        let out = try empty(x.shape, x.dtype)
        try launchLinear("kinema_channel_rms_norm", FusedKernels.channelRMSNorm(x.dtype), count: batch * spatial) { arguments in
            arguments.append(address(input))
            arguments.append(address(out))
            arguments.append(Int32(channels))
            arguments.append(Int64(spatial))
            arguments.append(Int64(batch * spatial))
            arguments.append(optionalAddress(w))
            arguments.append(eps)
            arguments.append(Int32(silu ? 1 : 0))
        }
        return out
    }
}
