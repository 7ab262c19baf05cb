import KinemaCore

// 3-D convolution on channels-last activations (`Backend.conv3dChannelsLast`) as im2col + GEMM, with the
// output written channels-last directly, so no transposes (the VAE's layout on every backend):
//   out[b][P, Cout] = col[P, Cin·kT·kH·kW] · W[Cout, Cin·kT·kH·kW]ᵀ + bias, then + residual,
// where P runs over output positions (t, h, w) and a col row is the patch under one output position. The patch
// order is PyTorch's (channel-major, then the kernel taps), so each output sums the same products in the same
// order as the channels-first conv3d and PyTorch's unfold: the f32 goldens stay as close. im2col reads each
// tap's Cin channels as one contiguous run of x and scatters them `taps` apart. The residual is added after
// the bias and the products, as the reference's `conv(x) + h`. Tiles of positions keep col ≤
// `CPUConv.columnBudget`. A 1×1×1 convolution with stride 1 and no padding needs no col: x[b] is already
// [T·H·W, Cin].

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
        // Wᵀ as B [K, Cout]: the weight as [Cout, Cin, kT, kH, kW] rows (the patch order), read column-wise,
        // widened to f32 once (reused by every tile).
        let weightFloats = try CPUOperands.gatherFloats(try weight.permuted([0, 4, 1, 2, 3]), "conv3dChannelsLast weight")
        defer { weightFloats.deallocate() }
        let b = GemmOperand(unchecked: weightFloats, dtype: .f32, rows: depth, columns: outChannels, rowStride: 1, columnStride: depth)
        // A 1×1×1 convolution reads x[b] as the GEMM's A directly when its positions merge into one axis.
        let pointwise = kernel == [1, 1, 1] && stride == [1, 1, 1] && padding == [0, 0, 0]
        let directOperands = pointwise ? try CPUConv.itemOperands(x, viewedAs: [positions, inChannels]) : nil
        let needsColumn = directOperands == nil
        let geometry = Geometry(x: x, kernel: kernel, stride: stride, padding: padding, outSize: Array(outShape[1...3]))

        let tileWidth = min(positions, max(CPUConv.minimumTile, CPUConv.columnBudget / max(depth, 1)))
        let column = UnsafeMutablePointer<Float>.allocate(capacity: needsColumn ? max(depth * tileWidth, 1) : 0)
        let accumulator = UnsafeMutablePointer<Float>.allocate(capacity: output.dtype == .f32 ? 0 : tileWidth * outChannels)
        let residualRun = UnsafeMutablePointer<Float>.allocate(capacity: outChannels)
        let biasRow = UnsafeMutablePointer<Float>.allocate(capacity: outChannels)
        biasRow.initialize(repeating: 0, count: outChannels)
        if let biasValues { for k in 0..<outChannels { biasRow[k] = biasValues[k] } }
        defer {
            column.deallocate()
            accumulator.deallocate()
            residualRun.deallocate()
            biasRow.deallocate()
        }
        let engine = CPUGemm.engine

        for item in 0..<batch {
            let direct = directOperands?[item]
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
                // The bias first, then the products (as conv3d), then the residual.
                var update = GemmUpdate.overwrite
                if biasValues != nil {
                    update = .accumulate
                    for row in 0..<width { (target + row * outChannels).update(from: biasRow, count: outChannels) }
                }
                try CPUGemm.multiply(a, b, into: target, ldc: outChannels, update: update, engine: engine)
                if let residual {
                    for row in 0..<width {
                        let dst = target + row * outChannels
                        geometry.loadRow(of: residual, item: item, position: p0 + row, into: residualRun)
                        for k in 0..<outChannels { dst[k] += residualRun[k] }
                    }
                }
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

        /// col[p − p0, c·taps + (dt·kH + dh)·kW + dw] for every output position p in `positions` (flattened
        /// t·H'·W' + h·W' + w), taps = kT·kH·kW: input channel c of the pixel under that kernel tap, or 0 in the
        /// padding. Each tap's channels are loaded as one run into `run` and scattered `taps` apart. Positions
        /// are independent and filled in parallel.
        func im2col(batch item: Int, positions: Range<Int>, into column: UnsafeMutablePointer<Float>) {
            let (kt, kh, kw) = (kernel[0], kernel[1], kernel[2])
            let channels = x.shape[4]
            let taps = kt * kh * kw
            let depth = taps * channels
            let (outH, outW) = (outSize[1], outSize[2])
            let (inT, inH, inW) = (x.shape[1], x.shape[2], x.shape[3])
            let s = x.strides
            let base = UnsafeRawPointer(x.storage.base)
            let dtype = x.dtype
            let itemBase = x.offset + item * s[0]
            Parallel.forRanges(positions.count, grain: max(1, 16384 / max(depth, 1))) { range in
                let run = UnsafeMutablePointer<Float>.allocate(capacity: channels)
                defer { run.deallocate() }
                for index in range {
                    let p = positions.lowerBound + index
                    let ow = p % outW, oh = (p / outW) % outH, ot = p / (outW * outH)
                    let row = column + index * depth
                    var tap = 0
                    for dt in 0..<kt {
                        let ti = ot * stride[0] + dt - padding[0]
                        for dh in 0..<kh {
                            let hi = oh * stride[1] + dh - padding[1]
                            for dw in 0..<kw {
                                let wi = ow * stride[2] + dw - padding[2]
                                if ti < 0 || ti >= inT || hi < 0 || hi >= inH || wi < 0 || wi >= inW {
                                    for c in 0..<channels { row[c * taps + tap] = 0 }
                                } else {
                                    ElementRun.load(
                                        base, offset: itemBase + ti * s[1] + hi * s[2] + wi * s[3], stride: s[4], count: channels,
                                        dtype: dtype, into: run)
                                    for c in 0..<channels { row[c * taps + tap] = run[c] }
                                }
                                tap += 1
                            }
                        }
                    }
                }
            }
        }

        /// The Cout values of `tensor` [B, T', H', W', Cout] (any strides) at output position p of item.
        func loadRow(of tensor: Tensor, item: Int, position p: Int, into out: UnsafeMutablePointer<Float>) {
            let (outH, outW) = (outSize[1], outSize[2])
            let ow = p % outW, oh = (p / outW) % outH, ot = p / (outW * outH)
            let s = tensor.strides
            ElementRun.load(
                UnsafeRawPointer(tensor.storage.base), offset: tensor.offset + item * s[0] + ot * s[1] + oh * s[2] + ow * s[3],
                stride: s[4], count: tensor.shape[4], dtype: tensor.dtype, into: out)
        }
    }
}
