import KinemaCore

// The decoder's upsampling — nearest ×2 in H and W, then a 3×3 conv (pad 1) — as four 2×2 convolutions of the
// small input, one per output phase, interleaved. On a nearest-upsampled input, output pixel (2i + a, 2j + b)
// sees upsampled rows 2i + a − 1 … 2i + a + 1, i.e. input rows {i − 1, i} for a = 0 and {i, i + 1} for a = 1
// (columns likewise), so its 3×3 taps collapse onto a 2×2 input window: for a = 0 tap row 0 alone is window row
// 0 and tap rows 1 + 2 sum into window row 1; for a = 1 tap rows 0 + 1 sum into window row 0 and tap row 2 is
// window row 1. 16 taps for four output pixels instead of 36 (0.44× the FLOPs), and no upsampled tensor.
//
// Each phase is a 2×2 conv with padding 1 on the small input ([H + 1, W + 1] outputs): phase a takes output
// rows a ..< a + H, phase b columns b ..< b + W. The phase weights are summed in f32 from the stored 3×3 taps
// and rounded once to the compute dtype. Used for bf16 / f16 only: in f32 the pre-summed taps move a whole
// pipeline's output by ≈ 1e-5 relative (the end-to-end golden's f32 bound), so f32 keeps the reference form.
// KINEMA_VAE_SUBPIXEL=0 runs the reference form in every dtype.

struct WanSubPixelUpsample {
    /// Phase (a, b) at index 2a + b: [Cout, 1, 2, 2, Cin], compute dtype.
    let phases: [Tensor]
    let bias: Tensor  // [Cout] f32
    let backend: any Backend

    /// From a per-frame 3×3 conv's channels-last filter [Cout, 1, 3, 3, Cin].
    init(weight: Tensor, bias: Tensor, backend: any Backend) throws {
        guard weight.rank == 5, weight.shape[1] == 1, weight.shape[2] == 3, weight.shape[3] == 3 else {
            throw KinemaError.shapeMismatch(context: "sub-pixel upsample", expected: "filter [Cout, 1, 3, 3, Cin]", found: "\(weight.shape)")
        }
        let (cout, cin) = (weight.shape[0], weight.shape[4])
        let taps = try backend.download(weight).floats()  // [Cout][3][3][Cin]
        // Window row (or column) p of phase a collects these tap rows.
        let groups = [[[0], [1, 2]], [[0, 1], [2]]]
        var phases: [Tensor] = []
        for a in 0..<2 {
            for b in 0..<2 {
                var summed = [Float](repeating: 0, count: cout * 4 * cin)
                for o in 0..<cout {
                    for p in 0..<2 {
                        for q in 0..<2 {
                            let out = ((o * 2 + p) * 2 + q) * cin
                            for u in groups[a][p] {
                                for v in groups[b][q] {
                                    let tap = ((o * 3 + u) * 3 + v) * cin
                                    for c in 0..<cin { summed[out + c] += taps[tap + c] }
                                }
                            }
                        }
                    }
                }
                let host = try Tensor(summed, shape: [cout, 1, 2, 2, cin])
                phases.append(try backend.cast(try backend.upload(host), to: weight.dtype))
            }
        }
        self.phases = phases
        self.bias = bias
        self.backend = backend
    }

    /// x [B, T, H, W, Cin] → conv3×3(nearest×2(x)) [B, T, 2H, 2W, Cout].
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let b = backend
        let (batch, frames, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var rows: [Tensor] = []
        for a in 0..<2 {
            var columns: [Tensor] = []
            for c in 0..<2 {
                let full = try b.conv3dChannelsLast(x, weight: phases[2 * a + c], bias: bias, residual: nil, stride: [1, 1, 1], padding: [0, 1, 1])
                let phase = try full.narrowed(axis: 2, start: a, length: height).narrowed(axis: 3, start: c, length: width)
                columns.append(try phase.unsqueezed(4))  // [B, T, H, W, 1, Cout]
            }
            // [B, T, H, W, 2, Cout] is [B, T, H, 2W, Cout]: columns 2j and 2j + 1 side by side.
            let row = try b.concat(columns, axis: 4)
            rows.append(try b.reshape(row, [batch, frames, height, 2 * width, row.shape[5]]).unsqueezed(3))
        }
        // [B, T, H, 2, 2W, Cout] is [B, T, 2H, 2W, Cout].
        let out = try b.concat(rows, axis: 3)
        return try b.reshape(out, [batch, frames, 2 * height, 2 * width, out.shape[5]])
    }
}
