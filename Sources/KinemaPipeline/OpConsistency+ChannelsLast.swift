import Foundation
import KinemaCPU
import KinemaCUDA
import KinemaCore

// The channels-last VAE ops against the CPU reference: conv3dChannelsLast on the Wan VAE's kinds of
// convolution (3×3×3 causal with bias and residual, conv_in's 3 input channels, the head's 3 output channels,
// the 2-D downsample's stride [1, 2, 2], the temporal downsample's stride [2, 1, 1], the 1×1×1 shortcut) at
// odd sizes, and rmsNorm(silu:) at the VAE's widths, at each vector kernel's width, beyond the warp kernel's 512, and on a
// permuted input.
// The convolutions are also run with cuDNN forced (rows "cuDNN …") and with the epilogue unfused.

extension OpConsistency {
    struct ChannelsLastConv {
        var name: String
        var input: [Int]  // [B, T, H, W, Cin]
        var filter: [Int]  // [Cout, kT, kH, kW, Cin]
        var stride: [Int]
        var padding: [Int]
        var bias: Bool
        var residual: Bool
    }

    static let channelsLastConvs = [
        ChannelsLastConv(name: "3×3×3 causal pad [0,1,1] +bias +residual", input: [1, 5, 9, 11, 16], filter: [8, 3, 3, 3, 16],
                         stride: [1, 1, 1], padding: [0, 1, 1], bias: true, residual: true),
        ChannelsLastConv(name: "3×3×3 pad [1,1,1] no bias, Cin 3 (conv_in)", input: [1, 4, 10, 13, 3], filter: [16, 3, 3, 3, 3],
                         stride: [1, 1, 1], padding: [1, 1, 1], bias: false, residual: false),
        ChannelsLastConv(name: "3×3×3 Cout 3 (head) +bias", input: [1, 3, 8, 10, 8], filter: [3, 3, 3, 3, 8],
                         stride: [1, 1, 1], padding: [0, 1, 1], bias: true, residual: false),
        ChannelsLastConv(name: "1×3×3 stride [1,2,2] +bias, B 2 odd sizes", input: [2, 3, 9, 13, 8], filter: [12, 1, 3, 3, 8],
                         stride: [1, 2, 2], padding: [0, 0, 0], bias: true, residual: false),
        ChannelsLastConv(name: "3×1×1 stride [2,1,1] +bias (time downsample)", input: [1, 7, 6, 5, 8], filter: [8, 3, 1, 1, 8],
                         stride: [2, 1, 1], padding: [0, 0, 0], bias: true, residual: false),
        ChannelsLastConv(name: "1×1×1 +bias +residual (shortcut)", input: [1, 3, 7, 9, 12], filter: [20, 1, 1, 1, 12],
                         stride: [1, 1, 1], padding: [0, 0, 0], bias: true, residual: true),
        ChannelsLastConv(name: "3×3×3 pad [0,1,1] +residual, no bias", input: [1, 4, 6, 7, 32], filter: [32, 3, 3, 3, 32],
                         stride: [1, 1, 1], padding: [0, 1, 1], bias: false, residual: true),
    ]

    static func channelsLastCases(dtype: DType, tolerance: Double) throws -> [Case] {
        try channelsLastConvCases(dtype: dtype, tolerance: tolerance) + rmsNormSiLUCases(dtype: dtype, tolerance: tolerance)
    }

    static func channelsLastConvCases(dtype: DType, tolerance: Double) throws -> [Case] {
        var cases: [Case] = []
        for (index, conv) in channelsLastConvs.enumerated() {
            let seed = UInt64(60 + 4 * index)
            let x = try random(conv.input, seed: seed, dtype: dtype)
            let w = try random(conv.filter, seed: seed + 1, scale: 0.1, dtype: dtype)
            let bias = conv.bias ? try random([conv.filter[0]], seed: seed + 2) : nil
            let outShape = try ChannelsLastConvolution.validate(x, weight: w, bias: bias, residual: nil, stride: conv.stride, padding: conv.padding)
            let residual = conv.residual ? try random(outShape, seed: seed + 3, dtype: dtype) : nil
            cases.append(Case(name: "conv3dChannelsLast \(conv.name) \(conv.input)→\(conv.filter[0]) \(dtype.rawValue)", tolerance: tolerance, cudnn: true) { b in
                try b.conv3dChannelsLast(
                    try b.upload(x), weight: try b.upload(w), bias: try bias.map { try b.upload($0) }, residual: try residual.map { try b.upload($0) },
                    stride: conv.stride, padding: conv.padding)
            })
        }
        return cases
    }

    static func rmsNormSiLUCases(dtype: DType, tolerance: Double) throws -> [Case] {
        let tag = dtype.rawValue
        let video = try random([2, 3, 5, 7, 96], seed: 90, scale: 3, dtype: dtype)
        let weight96 = try random([96], seed: 91)
        let mid = try random([37, 384], seed: 92, dtype: dtype)
        let wide = try random([3, 1531], seed: 93, dtype: dtype)
        let wideWeight = try random([1531], seed: 94)
        return [
            Case(name: "rmsNorm+SiLU [2,3,5,7,96] weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(video), weight: try b.upload(weight96), eps: 1e-6, silu: true)
            },
            Case(name: "rmsNorm(silu: false) [37,384] no weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(mid), weight: nil, eps: 1e-6, silu: false)
            },
            Case(name: "rmsNorm+SiLU [4,11] no weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(try random([4, 11], seed: 95, dtype: dtype)), weight: nil, eps: 1e-6, silu: true)
            },
            Case(name: "rmsNorm+SiLU permuted [5,7,3,96]→[3,5,7,96]ᵀ weight \(tag)", tolerance: tolerance) { b in
                let x = try b.upload(try random([7, 5, 3, 96], seed: 96, dtype: dtype)).permuted([2, 1, 0, 3])
                return try b.rmsNorm(x, weight: try b.upload(weight96), eps: 1e-6, silu: true)
            },
            Case(name: "rmsNorm+SiLU after a 2-frame prefix [1,2|4,5,7,96] weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(video.narrowed(axis: 0, start: 0, length: 1)), weight: try b.upload(weight96), eps: 1e-6, silu: true,
                              after: try b.upload(try random([1, 2, 5, 7, 96], seed: 97, dtype: dtype)))
            },
            Case(name: "rmsNorm+SiLU after a 1-frame prefix, B 2 [2,1|3,5,7,96] \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(video), weight: nil, eps: 1e-6, silu: true,
                              after: try b.upload(try random([2, 1, 5, 7, 96], seed: 98, dtype: dtype)))
            },
            // Widths for each 16-byte-vector variant (bf16: 16, 24, 128, 192, 5 and 4 vectors a row; f32 twice as many,
            // up to 256: [5,1536] runs the block kernel in f32, [6,32] the 8-lane variant).
            Case(name: "rmsNorm+SiLU [41,192] weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(try random([41, 192], seed: 99, scale: 2, dtype: dtype)), weight: try b.upload(try random([192], seed: 100)),
                              eps: 1e-6, silu: true)
            },
            Case(name: "rmsNorm(silu: false) [13,128] no weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(try random([13, 128], seed: 101, dtype: dtype)), weight: nil, eps: 1e-6, silu: false)
            },
            Case(name: "rmsNorm+SiLU [9,1024] weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(try random([9, 1024], seed: 102, dtype: dtype)), weight: try b.upload(try random([1024], seed: 103)),
                              eps: 1e-6, silu: true)
            },
            Case(name: "rmsNorm(silu: false) [5,1536] no weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(try random([5, 1536], seed: 106, dtype: dtype)), weight: nil, eps: 1e-6, silu: false)
            },
            Case(name: "rmsNorm+SiLU [7,40] weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(try random([7, 40], seed: 104, dtype: dtype)), weight: try b.upload(try random([40], seed: 105)),
                              eps: 1e-6, silu: true)
            },
            Case(name: "rmsNorm+SiLU [6,32] weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(try random([6, 32], seed: 107, scale: 2, dtype: dtype)), weight: try b.upload(try random([32], seed: 108)),
                              eps: 1e-6, silu: true)
            },
            Case(name: "rmsNorm+SiLU [3,1531] (block kernel) weight \(tag)", tolerance: tolerance) { b in
                try b.rmsNorm(try b.upload(wide), weight: try b.upload(wideWeight), eps: 1e-6, silu: true)
            },
        ]
    }

    /// The channels-last convolutions with cuDNN forced and KINEMA_FUSED=off: cuDNN runs the convolution
    /// alone and Kinema's pass adds bias and residual (the path taken when cuDNN cannot fuse them).
    static func runUnfusedEpilogue(gpu: any Backend) -> [DoctorCheck] {
        var all: [Case] = []
        do {
            for dtype in [DType.f32, .bf16] {
                all += try channelsLastConvCases(dtype: dtype, tolerance: dtype == .f32 ? 1e-5 : 1e-2)
            }
        } catch {
            return [DoctorCheck(name: "channels-last conv cases", passed: false, relativeError: nil, tolerance: nil, detail: "\(error)")]
        }
        return check(all.map { Case(name: "cuDNN unfused epilogue " + $0.name, tolerance: $0.tolerance, cudnn: true, run: $0.run) }, gpu: gpu)
    }
}
