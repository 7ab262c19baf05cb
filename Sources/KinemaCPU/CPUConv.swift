import KinemaCore

// 3-D convolution (cross-correlation, as PyTorch's conv3d) on the CPU as im2col + GEMM:
//   out[b][Cout, P] = W[Cout, Cin·kT·kH·kW] · col[Cin·kT·kH·kW, P] (+ bias per Cout row),
// where P runs over output positions (t, h, w) and col holds the input patch of each position. col is
// built for a tile of positions at a time, so memory stays bounded (≤ columnBudget floats) however large
// the video; the output rows of a tile are written in place with ldc = T'·H'·W'.
// A 1×1×1 convolution with stride 1 and no padding needs no col at all: x[b] is already [Cin, T·H·W].
//
// Shapes met in Wan: the DiT patch embedding (kernel = stride = (1, 2, 2), K = Cin·4 = 64) and the VAE's
// 3×3×3 (padding 1, K = 27·Cin up to 13 824) and 1×1×1 convolutions.

enum CPUConv {
    /// Largest im2col tile in floats (16 MiB): at K = 13 824 that is ~300 positions, still a wide GEMM.
    static let columnBudget = 4 << 20
    /// Smallest tile width worth a GEMM call (used when K alone nearly fills the budget).
    static let minimumTile = 64

    static func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) throws -> Tensor {
        try CPUChecks.floating(x, "conv3d input")
        try CPUChecks.floating(weight, "conv3d weight")
        guard x.rank == 5, weight.rank == 5, weight.shape[1] == x.shape[1] else {
            throw KinemaError.shapeMismatch(
                context: "conv3d", expected: "x [B, Cin, T, H, W] with weight [Cout, Cin, kT, kH, kW]",
                found: "x \(x.shape), weight \(weight.shape)")
        }
        guard stride.count == 3, padding.count == 3, stride.allSatisfy({ $0 >= 1 }), padding.allSatisfy({ $0 >= 0 }) else {
            throw KinemaError.invalidArgument("conv3d: stride \(stride) must be 3 values ≥ 1 and padding \(padding) 3 values ≥ 0")
        }
        let batch = x.shape[0], inChannels = x.shape[1]
        let input = Array(x.shape[2...4])
        let outChannels = weight.shape[0]
        let kernel = Array(weight.shape[2...4])
        var outSize = [Int](repeating: 0, count: 3)
        for axis in 0..<3 {
            let padded = input[axis] + 2 * padding[axis]
            guard padded >= kernel[axis] else {
                throw KinemaError.shapeMismatch(
                    context: "conv3d", expected: "kernel \(kernel) no larger than the padded input",
                    found: "input \(input) with padding \(padding)")
            }
            outSize[axis] = (padded - kernel[axis]) / stride[axis] + 1
        }
        let biasValues = try bias.map { try CPUOperands.vector($0, count: outChannels, "conv3d bias") }
        let output = try Tensor.zeros([batch, outChannels] + outSize, dtype: x.dtype)
        guard output.count > 0 else { return output }

        let depth = inChannels * kernel.reduce(1, *)  // GEMM K
        let positions = outSize.reduce(1, *)  // GEMM N per batch item
        // The weight as A [Cout, K] in f32, widened once: it is reused by every tile, and BLAS needs f32.
        let weightFloats = try CPUOperands.gatherFloats(weight, "conv3d weight")
        defer { weightFloats.deallocate() }
        let a = GemmOperand(unchecked: weightFloats, dtype: .f32, rows: outChannels, columns: depth, rowStride: depth, columnStride: 1)
        let geometry = Geometry(x: x, kernel: kernel, stride: stride, padding: padding, outSize: outSize)
        let engine = CPUGemm.engine
        let pointwise = kernel == [1, 1, 1] && stride == [1, 1, 1] && padding == [0, 0, 0]
        // 1×1×1: x[b] viewed as [Cin, T·H·W] when its spatial axes merge (any dtype; the GEMM widens it).
        let directOperands = pointwise ? try itemOperands(x, viewedAs: [inChannels, positions]) : nil
        let needsColumn = directOperands == nil

        let tileWidth = depth == 0 ? positions : min(positions, max(minimumTile, columnBudget / depth))
        let column = UnsafeMutablePointer<Float>.allocate(capacity: needsColumn ? max(depth * tileWidth, 1) : 0)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: output.dtype == .f32 ? 0 : outChannels * tileWidth)
        defer {
            column.deallocate()
            scratch.deallocate()
        }

        for b in 0..<batch {
            let direct = directOperands?[b]
            for p0 in Swift.stride(from: 0, to: positions, by: tileWidth) {
                let width = min(tileWidth, positions - p0)
                let rhs: GemmOperand
                if let direct {
                    rhs = GemmOperand(
                        unchecked: direct.base + p0 * direct.columnStride * direct.dtype.byteSize, dtype: direct.dtype,
                        rows: inChannels, columns: width, rowStride: direct.rowStride, columnStride: direct.columnStride)
                } else {
                    geometry.im2col(batch: b, positions: p0..<(p0 + width), into: column)
                    rhs = GemmOperand(unchecked: column, dtype: .f32, rows: depth, columns: width, rowStride: width, columnStride: 1)
                }
                let outStart = b * outChannels * positions + p0
                let target: UnsafeMutablePointer<Float>
                let ldc: Int
                if output.dtype == .f32 {
                    target = output.hostPointer.assumingMemoryBound(to: Float.self) + outStart
                    ldc = positions
                } else {
                    target = scratch
                    ldc = width
                }
                if let biasValues {
                    for channel in 0..<outChannels { (target + channel * ldc).initialize(repeating: biasValues[channel], count: width) }
                }
                try CPUGemm.multiply(a, rhs, into: target, ldc: ldc, update: biasValues == nil ? .overwrite : .accumulate, engine: engine)
                if output.dtype != .f32 {
                    CPUOperands.store(
                        scratch, rows: outChannels, columns: width, sourceStride: width, into: output, start: outStart,
                        outputStride: positions)
                }
            }
        }
        return output
    }

    /// Each batch item of x viewed as a `shape` matrix (a 1×1×1 convolution's GEMM operand, no im2col), or nil
    /// when the view does not exist: items share strides, so all merge or none do. A plain loop on purpose —
    /// a nested throwing helper here was miscompiled by the optimized static build (2026-11-27).
    static func itemOperands(_ x: Tensor, viewedAs shape: [Int]) throws -> [GemmOperand]? {
        var operands: [GemmOperand] = []
        for item in 0..<x.shape[0] {
            guard let view = try x.narrowed(axis: 0, start: item, length: 1).viewed(as: shape) else { return nil }
            operands.append(try GemmOperand(matrixOf: view))
        }
        return operands
    }

    /// Index arithmetic of one convolution: input view, kernel, stride, padding and output sizes.
    struct Geometry {
        let x: Tensor
        let kernel: [Int], stride: [Int], padding: [Int], outSize: [Int]

        /// col[r, p − p0] for every patch row r = ((c·kT + dt)·kH + dh)·kW + dw and output position p in
        /// `positions` (flattened t·H'·W' + h·W' + w): the input element under that kernel tap, or 0 in the
        /// padding. Rows are independent and filled in parallel.
        func im2col(batch b: Int, positions: Range<Int>, into column: UnsafeMutablePointer<Float>) {
            let width = positions.count
            let (kt, kh, kw) = (kernel[0], kernel[1], kernel[2])
            let rows = x.shape[1] * kt * kh * kw
            let (outH, outW) = (outSize[1], outSize[2])
            let (inT, inH, inW) = (x.shape[2], x.shape[3], x.shape[4])
            let s = x.strides
            let base = UnsafeRawPointer(x.storage.base)
            let dtype = x.dtype
            Parallel.forRanges(rows, grain: max(1, 16384 / max(width, 1))) { range in
                for r in range {
                    let dw = r % kw, dh = (r / kw) % kh, dt = (r / (kw * kh)) % kt, channel = r / (kw * kh * kt)
                    let rowBase = x.offset + b * s[0] + channel * s[1]
                    let out = column + r * width
                    // The first output column w' whose input column w'·sW + dw − pW is ≥ 0, and the last + 1
                    // whose input column is < W: everything outside [wFirst, wEnd) reads padding.
                    let shift = dw - padding[2]
                    let wFirst = shift >= 0 ? 0 : ceilDiv(-shift, stride[2])
                    let wEnd = max(wFirst, min(outW, inW - shift <= 0 ? 0 : ceilDiv(inW - shift, stride[2])))
                    var p = positions.lowerBound
                    while p < positions.upperBound {
                        // One run: the rest of an output row (fixed t', h').
                        let ow = p % outW, oh = (p / outW) % outH, ot = p / (outW * outH)
                        let runEnd = min(positions.upperBound, p - ow + outW)
                        let dst = out + (p - positions.lowerBound)
                        let count = runEnd - p
                        let ti = ot * stride[0] + dt - padding[0], hi = oh * stride[1] + dh - padding[1]
                        if ti < 0 || ti >= inT || hi < 0 || hi >= inH {
                            dst.initialize(repeating: 0, count: count)
                        } else {
                            let lo = min(max(wFirst, ow), ow + count), hiEnd = max(lo, min(wEnd, ow + count))
                            dst.initialize(repeating: 0, count: lo - ow)
                            if hiEnd > lo {
                                StridedFloats.load(
                                    base, dtype: dtype, start: rowBase + ti * s[2] + hi * s[3] + (lo * stride[2] + shift) * s[4],
                                    stride: stride[2] * s[4], count: hiEnd - lo, into: dst + (lo - ow), outStride: 1)
                            }
                            (dst + (hiEnd - ow)).initialize(repeating: 0, count: ow + count - hiEnd)
                        }
                        p = runEnd
                    }
                }
            }
        }
    }
}
