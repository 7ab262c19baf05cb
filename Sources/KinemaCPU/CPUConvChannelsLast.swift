import KinemaCore

// 3-D convolution on channels-last activations (`Backend.conv3dChannelsLast`) as im2col + GEMM, with the
// output written channels-last directly, so no transposes (the VAE's layout on every backend):
//   out[b][P, Cout] = col[P, kT·kH·kW·Cin] · W[Cout, kT·kH·kW·Cin]ᵀ + bias + residual,
// where P runs over output positions (t, h, w) and a col row is the patch under one output position: for each
// kernel tap (dt, dh, dw) the Cin channels of one input pixel, a contiguous run in x. The weight
// [Cout, kT, kH, kW, Cin] is already W's row layout. Tiles of positions keep col ≤ `CPUConv.columnBudget`.
// A 1×1×1 convolution with stride 1 and no padding needs no col: x[b] is already [T·H·W, Cin].

enum CPUConvChannelsLast {
    static func conv3d(
        _ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?, stride: [Int], padding: [Int]
    ) throws -> Tensor {
        try CPUChecks.floating(x, "conv3dChannelsLast input")
        try CPUChecks.floating(weight, "conv3dChannelsLast weight")
        let outShape = try ChannelsLastConvolution.validate(x, weight: weight, bias: bias, residual: residual, stride: stride, padding: padding)
        if let residual { try CPUChecks.floating(residual, "conv3dChannelsLast residual") }
        let (batch, inChannels, outChannels) = (x.shape[0], x.shape[4], weight.shape[0])
        let kernel = Array(weight.shape[1...3])
        let biasValues = try bias.map { try CPUOperands.vector($0, count: outChannels, "conv3dChannelsLast bias") }
        let output = try Tensor.zeros(outShape, dtype: x.dtype)
        guard output.count > 0 else { return output }

        let depth = kernel.reduce(1, *) * inChannels  // GEMM K
        let positions = outShape[1] * outShape[2] * outShape[3]  // GEMM M per batch item
        // Wᵀ as B [K, Cout]: the weight rows read column-wise, widened to f32 once (reused by every tile).
        let weightFloats = try CPUOperands.gatherFloats(weight, "conv3dChannelsLast weight")
        defer { weightFloats.deallocate() }
        let b = GemmOperand(unchecked: weightFloats, dtype: .f32, rows: depth, columns: outChannels, rowStride: 1, columnStride: depth)
        // A 1×1×1 convolution reads x[b] as the GEMM's A directly when its positions merge into one axis.
        let pointwise = kernel == [1, 1, 1] && stride == [1, 1, 1] && padding == [0, 0, 0]
        func directOperand(_ item: Int) throws -> GemmOperand? {
            guard pointwise, let view = try x.narrowed(axis: 0, start: item, length: 1).viewed(as: [positions, inChannels]) else { return nil }
            return try GemmOperand(matrixOf: view)
        }
        let needsColumn = try directOperand(0) == nil  // items share strides: one answers for all
        let geometry = Geometry(x: x, kernel: kernel, stride: stride, padding: padding, outSize: Array(outShape[1...3]))

        let tileWidth = min(positions, max(CPUConv.minimumTile, CPUConv.columnBudget / max(depth, 1)))
        let column = UnsafeMutablePointer<Float>.allocate(capacity: needsColumn ? max(depth * tileWidth, 1) : 0)
        let accumulator = UnsafeMutablePointer<Float>.allocate(capacity: output.dtype == .f32 ? 0 : tileWidth * outChannels)
        let residualRun = UnsafeMutablePointer<Float>.allocate(capacity: residual == nil ? 0 : outChannels)
        defer {
            column.deallocate()
            accumulator.deallocate()
            residualRun.deallocate()
        }
        let engine = CPUGemm.engine

        for item in 0..<batch {
            let direct = needsColumn ? nil : try directOperand(item)
            for p0 in Swift.stride(from: 0, to: positions, by: tileWidth) {
                let width = min(tileWidth, positions - p0)
                let a: GemmOperand
                if let direct {
                    a = direct.rowSlice(p0..<(p0 + width))
                } else {
                    geometry.im2col(batch: item, positions: p0..<(p0 + width), into: column)
                    a = GemmOperand(unchecked: column, dtype: .f32, rows: width, columns: depth, rowStride: depth, columnStride: 1)
                }
                let outStart = (item * positions + p0) * outChannels
                let target = output.dtype == .f32 ? output.hostPointer.assumingMemoryBound(to: Float.self) + outStart : accumulator
                // Start from bias + residual, then accumulate the GEMM: one rounding for the whole sum.
                var update = GemmUpdate.overwrite
                if biasValues != nil || residual != nil {
                    update = .accumulate
                    for row in 0..<width {
                        let dst = target + row * outChannels
                        if let biasValues {
                            biasValues.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: outChannels) }
                        } else {
                            dst.update(repeating: 0, count: outChannels)
                        }
                        if let residual {
                            try geometry.loadRow(of: residual, item: item, position: p0 + row, into: residualRun)
                            for k in 0..<outChannels { dst[k] += residualRun[k] }
                        }
                    }
                }
                try CPUGemm.multiply(a, b, into: target, ldc: outChannels, update: update, engine: engine)
                if output.dtype != .f32 {
                    CPUOperands.store(accumulator, rows: 1, columns: width * outChannels, sourceStride: 0, into: output, start: outStart)
                }
            }
        }
        return output
    }

    /// Index arithmetic of one channels-last convolution.
    struct Geometry {
        let x: Tensor
        let kernel: [Int], stride: [Int], padding: [Int], outSize: [Int]

        /// col[p − p0, ((dt·kH + dh)·kW + dw)·Cin + c] for every output position p in `positions` (flattened
        /// t·H'·W' + h·W' + w): input channel c of the pixel under that kernel tap, or 0 in the padding.
        /// Positions are independent and filled in parallel.
        func im2col(batch item: Int, positions: Range<Int>, into column: UnsafeMutablePointer<Float>) {
            let (kt, kh, kw) = (kernel[0], kernel[1], kernel[2])
            let channels = x.shape[4]
            let depth = kt * kh * kw * channels
            let (outH, outW) = (outSize[1], outSize[2])
            let (inT, inH, inW) = (x.shape[1], x.shape[2], x.shape[3])
            let s = x.strides
            let base = UnsafeRawPointer(x.storage.base)
            let dtype = x.dtype
            let itemBase = x.offset + item * s[0]
            let denseRows = s[4] == 1 && s[3] == channels
            Parallel.forRanges(positions.count, grain: max(1, 16384 / max(depth, 1))) { range in
                for index in range {
                    let p = positions.lowerBound + index
                    let ow = p % outW, oh = (p / outW) % outH, ot = p / (outW * outH)
                    var dst = column + index * depth
                    let wStart = ow * stride[2] - padding[2]
                    for dt in 0..<kt {
                        let ti = ot * stride[0] + dt - padding[0]
                        for dh in 0..<kh {
                            let hi = oh * stride[1] + dh - padding[1]
                            // The kW taps of a row read kW neighbouring pixels: one run of kW·Cin elements
                            // when they are all inside and stored densely (the usual case).
                            if denseRows, ti >= 0, ti < inT, hi >= 0, hi < inH, wStart >= 0, wStart + kw <= inW {
                                ElementRun.load(
                                    base, offset: itemBase + ti * s[1] + hi * s[2] + wStart * s[3], stride: 1, count: kw * channels,
                                    dtype: dtype, into: dst)
                                dst += kw * channels
                                continue
                            }
                            for dw in 0..<kw {
                                let wi = ow * stride[2] + dw - padding[2]
                                if ti < 0 || ti >= inT || hi < 0 || hi >= inH || wi < 0 || wi >= inW {
                                    dst.update(repeating: 0, count: channels)
                                } else {
                                    ElementRun.load(
                                        base, offset: itemBase + ti * s[1] + hi * s[2] + wi * s[3], stride: s[4], count: channels,
                                        dtype: dtype, into: dst)
                                }
                                dst += channels
                            }
                        }
                    }
                }
            }
        }

        /// The Cout values of `tensor` [B, T', H', W', Cout] (any strides) at output position p of item.
        func loadRow(of tensor: Tensor, item: Int, position p: Int, into out: UnsafeMutablePointer<Float>) throws {
            let (outH, outW) = (outSize[1], outSize[2])
            let ow = p % outW, oh = (p / outW) % outH, ot = p / (outW * outH)
            let s = tensor.strides
            ElementRun.load(
                UnsafeRawPointer(tensor.storage.base), offset: tensor.offset + item * s[0] + ot * s[1] + oh * s[2] + ow * s[3],
                stride: s[4], count: tensor.shape[4], dtype: tensor.dtype, into: out)
        }
    }
}
