import Foundation
import KinemaCore

// The channels-last VAE ops on CUDA: conv3dChannelsLast through cuDNN's graph API
// (CUDNNChannelsLastConvolution.swift) with the composition through `conv3d` as fallback, and the fused
// rmsNorm(silu:) over the last axis. KINEMA_FUSED=off keeps the cuDNN convolution but adds bias and
// residual in Kinema's own pass (the path taken when cuDNN cannot fuse them), and composes rmsNorm(silu:).

extension CUDABackend {
    public func conv3dChannelsLast(
        _ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?, stride: [Int], padding: [Int]
    ) throws -> Tensor {
        let op = "conv3dChannelsLast"
        let outShape = try ChannelsLastConvolution.validate(x, weight: weight, bias: bias, residual: residual, stride: stride, padding: padding)
        try computable(x, op)
        try computable(weight, "\(op) weight")
        if let residual { try computable(residual, "\(op) residual") }
        if let y = try conv3dChannelsLastThroughCUDNN(x, weight: weight, bias: bias, residual: residual, outShape: outShape, stride: stride, padding: padding) {
            return y
        }
        return try composedConv3dChannelsLast(x, weight: weight, bias: bias, residual: residual, stride: stride, padding: padding)
    }

    /// The convolution through cuDNN's graph API, or nil when the composition should run it: KINEMA_CONV=kinema
    /// (or wgmma), mixed dtypes, an empty output, cuDNN not loaded, or (auto only) cuDNN without a plan, with
    /// one warning per problem. KINEMA_CONV=cudnn turns those last two into errors.
    func conv3dChannelsLastThroughCUDNN(
        _ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?, outShape: [Int], stride: [Int], padding: [Int]
    ) throws -> Tensor? {
        if convolutionChoice == .kinema || convolutionChoice == .wgmma { return nil }
        // f32 is the reference-precision path, not a speed path: it takes the composition through the legacy
        // conv3d, whose f32 algorithms match the CPU's FMA sums (graph engines may use TF32 tensor cores).
        if x.dtype == .f32 { return nil }
        guard weight.dtype == x.dtype, residual.map({ $0.dtype == x.dtype }) ?? true, outShape.allSatisfy({ $0 > 0 }), x.count > 0 else {
            return nil  // mixed dtypes (as conv3d's cuDNN path) or nothing to compute: the composition
        }
        let engine: CUDNNChannelsLastConvolution
        switch context.cudnnChannelsLast {
        case .success(let loaded): engine = loaded
        case .failure(let error):
            if convolutionChoice == .cudnn { throw KinemaError.unsupported("KINEMA_CONV=cudnn but \(error)") }
            return nil
        }
        let buffers = CUDNNChannelsLastConvolution.Buffers(
            x: try contiguous(x), w: try contiguous(weight), y: try empty(outShape, x.dtype),
            bias: try parameter(bias, length: outShape[4], "conv3dChannelsLast bias"), residual: try residual.map { try contiguous($0) })
        let fused: Bool
        do {
            fused = try engine.forward(buffers, stride: stride, padding: padding, fusion: fusedPasses, context: context)
        } catch {
            if convolutionChoice == .cudnn { throw error }
            context.warnOnce(
                "conv3dChannelsLast \(x.shape) \(weight.shape) \(stride) \(x.dtype)",
                "cuDNN channels-last conv3d failed for x \(x.shape) w \(weight.shape) stride \(stride) \(x.dtype.rawValue), "
                    + "using the channels-first composition: \(error)")
            return nil
        }
        if !fused, buffers.bias != nil || buffers.residual != nil {
            try addBiasResidual(buffers.y, bias: buffers.bias, residual: buffers.residual)
        }
        return buffers.y
    }

    /// y += bias (per last-axis element, f32) + residual, in place, one rounding. y and residual contiguous,
    /// one dtype, same shape.
    func addBiasResidual(_ y: Tensor, bias: Tensor?, residual: Tensor?) throws {
        guard let channels = y.shape.last, channels > 0, y.count > 0 else { return }
        let lanes = 16 / y.dtype.byteSize
        let aligned = [y, residual].compactMap { $0 }.allSatisfy { address($0) % 16 == 0 }
        let source = ElementwiseKernels.biasResidual(y.dtype)
        if aligned, channels % lanes == 0 {
            try launchLinear("kinema_bias_residual_vec", source, count: y.count / lanes) { arguments in
                arguments.append(address(y))
                arguments.append(optionalAddress(bias))
                arguments.append(optionalAddress(residual))
                arguments.append(Int64(y.count / lanes))
                arguments.append(Int32(channels))
            }
        } else {
            try launchLinear("kinema_bias_residual", source, count: y.count) { arguments in
                arguments.append(address(y))
                arguments.append(optionalAddress(bias))
                arguments.append(optionalAddress(residual))
                arguments.append(Int64(y.count))
                arguments.append(Int32(channels))
            }
        }
    }

    /// KINEMA_FUSED=off: `composedRMSNorm` (rmsNorm, then silu), as the other fused passes.
    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor {
        guard fusedPasses else { return try composedRMSNorm(x, weight: weight, eps: eps, silu: silu) }
        let out = try empty(x.shape, x.dtype)
        try rmsNormRows(x, weight: weight, eps: eps, silu: silu, into: out)
        return out
    }

    /// B = 1 (the VAE's decode and encode): the prefix is copied into the head of the output and the norm's
    /// rows are written straight after it, one buffer, no concatenation pass. Otherwise the composition.
    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool, after prefix: Tensor) throws -> Tensor {
        try PrefixedRows.validate(x, prefix: prefix)
        guard fusedPasses, x.shape[0] == 1 else { return try composedRMSNorm(x, weight: weight, eps: eps, silu: silu, after: prefix) }
        try onDevice(prefix, "rmsNorm prefix")
        var shape = x.shape
        shape[1] += prefix.shape[1]
        let out = try empty(shape, x.dtype)
        if prefix.count > 0 { try copy(prefix, into: try out.narrowed(axis: 1, start: 0, length: prefix.shape[1])) }
        // With B = 1 the rows after the prefix are one contiguous block of out.
        try rmsNormRows(x, weight: weight, eps: eps, silu: silu, into: try out.narrowed(axis: 1, start: prefix.shape[1], length: x.shape[1]))
        return out
    }

    /// The norm of x's rows (then SiLU when `silu`) into `out` (x's shape, contiguous, possibly a view at an
    /// offset): a lane group per row of whole 16-byte vectors (up to 256 vectors: 2,048 bf16), else a warp per row
    /// up to 512 wide, a block per row beyond.
    func rmsNormRows(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool, into out: Tensor) throws {
        let (input, count, width) = try rows(x, "rmsNorm")
        let w = try parameter(weight, length: width, "rmsNorm weight")
        guard count > 0 else { return }
        let source = RowKernels.norms(x.dtype)
        let lanes = 16 / x.dtype.byteSize
        let vectors = width / lanes
        // The warp-group kernels: (name, rows a warp holds, the vector count when rows are read as 16-byte vectors).
        var grouped: (name: String, rowsPerWarp: Int, vectors: Int?)?
        if width % lanes == 0, address(input) % 16 == 0, address(out) % 16 == 0, w.map({ address($0) % 16 == 0 }) ?? true,
            let variant = RowKernels.vectorRowVariants.first(where: { vectors <= $0.lanes * $0.vectorsPerLane })
        {
            grouped = (variant.name, 32 / variant.lanes, vectors)
        } else if let variant = RowKernels.warpRowVariants.first(where: { width <= $0.width }) {
            grouped = (variant.name, variant.rowsPerWarp, nil)
        }
        if let grouped {
            // 8 warps per 256-thread block, the grid capped where warps start striding.
            let rowsPerBlock = 8 * grouped.rowsPerWarp
            let blocks = min((count + rowsPerBlock - 1) / rowsPerBlock, context.multiprocessors * 16)
            try launch(grouped.name, source, grid: (blocks, 1, 1), block: (256, 1, 1)) { arguments in
                arguments.append(address(input))
                arguments.append(address(out))
                arguments.append(Int64(count))
                if let vectors = grouped.vectors { arguments.append(Int32(vectors)) }
                arguments.append(Int32(width))
                arguments.append(optionalAddress(w))
                arguments.append(eps)
                arguments.append(Int32(silu ? 1 : 0))
            }
        } else {
            try launch("kinema_rms_norm", source, grid: (count, 1, 1), block: (256, 1, 1)) { arguments in
                arguments.append(address(input))
                arguments.append(address(out))
                arguments.append(Int32(width))
                arguments.append(optionalAddress(w))
                arguments.append(eps)
                arguments.append(Int32(silu ? 1 : 0))
            }
        }
    }
}

extension CUDABackend {
    /// Planning passes run where the channels-last convolutions go through cuDNN's graph API (bf16 / f16, cuDNN
    /// loaded and not switched off, the graph engine's plans chosen here): once per tag and process.
    public func shouldPlanConvolutions(for tag: String, dtype: DType) -> Bool {
        guard dtype != .f32, convolutionChoice != .kinema, convolutionChoice != .wgmma, RuntimeOptions.current.convolutionPlanning,
            case .success(let engine) = context.cudnnChannelsLast
        else { return false }
        return engine.claimPlanning(tag)
    }

    public func planningConvolutions(_ body: () throws -> Void) throws {
        guard case .success(let engine) = context.cudnnChannelsLast else { return }
        try engine.recordingProblems(body, context: context)
    }
}
