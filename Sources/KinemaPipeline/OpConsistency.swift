import Foundation
import KinemaCPU
import KinemaCUDA
import KinemaCore
import KinemaNN

// Every CUDA op against the CPU reference, on shapes chosen to break kernels: odd sizes, one element,
// non-contiguous views, broadcasting, large magnitudes, f32 and bf16. Inputs are seeded random values,
// never zeros.

enum OpConsistency {
    struct Case {
        let name: String
        let tolerance: Double
        /// Attention and conv3d: run a second time with cuDNN forced (rows named "cuDNN …").
        var cudnn = false
        let run: (any Backend) throws -> Tensor

        init(name: String, tolerance: Double, cudnn: Bool = false, run: @escaping (any Backend) throws -> Tensor) {
            self.name = name
            self.tolerance = tolerance
            self.cudnn = cudnn
            self.run = run
        }
    }

    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1, dtype: DType = .f32) throws -> Tensor {
        var generator = SyntheticWeights(seed: seed)
        return try Tensor((0..<shape.reduce(1, *)).map { _ in generator.next() * 20 * scale }, shape: shape, dtype: dtype)
    }

    static func cases() throws -> [Case] {
        var cases: [Case] = []
        for dtype in [DType.f32, .bf16] {
            let tol = dtype == .f32 ? 1e-5 : 1e-2
            let tag = dtype.rawValue
            let x = try random([3, 37, 5], seed: 1, dtype: dtype)
            let y = try random([37, 1], seed: 2, dtype: dtype)
            cases.append(Case(name: "cast f32→\(tag)→f32", tolerance: 0) { b in
                try b.cast(try b.cast(try b.upload(try random([1, 1001], seed: 3)), to: dtype), to: .f32)
            })
            if dtype == .f32 {
                // Overlapped downloads (CUDA: pinned ring of 16 MiB slots, worker thread): a 20 MB result of a kernel
                // still running when it is queued, in two pieces placed in swapped order, the first one split over
                // two slots; then a small tensor. Equal to the immediate copies of the CPU backend.
                cases.append(Case(name: "host download queue, pieces across slots", tolerance: 0) { b in
                    let count = 5_000_000, split = 4_500_000
                    let x = try b.affine(try b.upload(try random([count], seed: 91)), scale: 0.5, shift: 1)
                    let small = try b.upload(try random([3, 7], seed: 92))
                    let out = try Tensor.uninitialized([count + 21], dtype: .f32)
                    let queue = try b.makeHostDownloadQueue()
                    do {
                        try queue.enqueue(x, pieces: [
                            HostCopyPiece(sourceOffset: 0, destination: out.hostPointer + (count - split) * 4, bytes: split * 4),
                            HostCopyPiece(sourceOffset: split * 4, destination: out.hostPointer, bytes: (count - split) * 4),
                        ])
                        try queue.enqueue(small, pieces: [HostCopyPiece(sourceOffset: 0, destination: out.hostPointer + count * 4, bytes: 84)])
                    } catch {
                        withExtendedLifetime(out) { try? queue.finish() }  // queued copies write into `out`: wait first
                        throw error
                    }
                    try queue.finish()
                    return out
                })
            }
            cases.append(Case(name: "contiguous permuted \(tag)", tolerance: 0) { b in
                try b.contiguous(try b.upload(x).permuted([2, 0, 1]))
            })
            for op in UnaryOp.allCases {
                let input = op == .sqrt || op == .rsqrt ? try b0abs(x) : x
                cases.append(Case(name: "unary \(op.rawValue) \(tag)", tolerance: max(tol, 2e-6)) { b in
                    try b.unary(op, try b.upload(input).transposed(0, 2))
                })
            }
            for op in BinaryOp.allCases {
                cases.append(Case(name: "binary \(op.rawValue) broadcast \(tag)", tolerance: tol) { b in
                    try b.binary(op, try b.upload(x), try b.upload(y))
                })
            }
            // Contiguous same-shape operands: the 16-byte vector kernels (a whole number of vectors).
            let left = try random([3, 40, 56], seed: 56, dtype: dtype), right = try random([3, 40, 56], seed: 57, dtype: dtype)
            for op in [UnaryOp.silu, .geluTanh, .exp] {
                cases.append(Case(name: "unary \(op.rawValue) contiguous (vector) \(tag)", tolerance: max(tol, 2e-6)) { b in
                    try b.unary(op, try b.upload(left))
                })
            }
            for op in [BinaryOp.add, .mul, .div] {
                cases.append(Case(name: "binary \(op.rawValue) contiguous (vector) \(tag)", tolerance: tol) { b in
                    try b.binary(op, try b.upload(left), try b.upload(right))
                })
            }
            cases.append(Case(name: "binary add f32+\(tag)", tolerance: 1e-6) { b in
                try b.add(try b.upload(try random([3, 37, 5], seed: 4)), try b.upload(x))
            })
            cases.append(Case(name: "affine \(tag)", tolerance: tol) { b in try b.affine(try b.upload(x), scale: 1.5, shift: -0.25) })
            for op in ReduceOp.allCases {
                cases.append(Case(name: "reduce \(op.rawValue) axes [0,2] \(tag)", tolerance: tol) { b in
                    try b.reduce(op, try b.upload(x), axes: [0, 2], keepDims: true)
                })
            }
            let rows = try random([7, 1531], seed: 5, scale: 100, dtype: dtype)
            let weight = try random([1531], seed: 6)
            let bias = try random([1531], seed: 7)
            cases.append(Case(name: "softmax large magnitude \(tag)", tolerance: tol) { b in try b.softmax(try b.upload(rows)) })
            cases.append(Case(name: "layerNorm affine \(tag)", tolerance: tol) { b in
                try b.layerNorm(try b.upload(rows), weight: try b.upload(weight), bias: try b.upload(bias), eps: 1e-6)
            })
            cases.append(Case(name: "layerNorm plain \(tag)", tolerance: tol) { b in
                try b.layerNorm(try b.upload(rows), weight: nil, bias: nil, eps: 1e-6)
            })
            cases.append(Case(name: "rmsNorm \(tag)", tolerance: tol) { b in
                try b.rmsNorm(try b.upload(rows), weight: try b.upload(weight), eps: 1e-6)
            })
            let ropeInput = try random([2, 45, 3, 128], seed: 8, dtype: dtype)
            let cosTable = try random([45, 64], seed: 9, scale: 0.05)
            let sinTable = try random([45, 64], seed: 10, scale: 0.05)
            cases.append(Case(name: "rope [2,45,3,128] \(tag)", tolerance: tol) { b in
                try b.rope(try b.upload(ropeInput), cos: try b.upload(cosTable), sin: try b.upload(sinTable))
            })
            cases.append(Case(name: "concat axis 1 \(tag)", tolerance: 0) { b in
                try b.concat([try b.upload(x), try b.upload(try random([3, 2, 5], seed: 11, dtype: dtype))], axis: 1)
            })
            // The VAE cache concatenation along T: long contiguous runs, copied as 16-byte vectors.
            cases.append(Case(name: "concat frames [1,16,2|3,6,8] (vector copies) \(tag)", tolerance: 0) { b in
                let history = try b.upload(try random([1, 16, 2, 6, 8], seed: 54, dtype: dtype))
                return try b.concat([history, try b.upload(try random([1, 16, 3, 6, 8], seed: 55, dtype: dtype))], axis: 2)
            })
            // Embedding lookups: repeated and unordered indices including the first and last rows; an odd
            // width (element copies), a width moved as 16-byte vectors, and a column slice of the table
            // (strided rows starting one element in: narrower units).
            let vocabulary = try random([41, 1531], seed: 56, dtype: dtype)
            let lookups = [40, 0, 7, 7, 33, 2, 40, 19, 5, 0, 12]
            cases.append(Case(name: "gatherRows [41,1531] odd width \(tag)", tolerance: 0) { b in
                try b.gatherRows(try b.upload(vocabulary), indices: lookups)
            })
            let vectorTable = try random([41, 264], seed: 57, dtype: dtype)
            cases.append(Case(name: "gatherRows [41,264] (vector rows) \(tag)", tolerance: 0) { b in
                try b.gatherRows(try b.upload(vectorTable), indices: lookups + lookups.reversed())
            })
            cases.append(Case(name: "gatherRows column slice [41,1531][:,1:257] \(tag)", tolerance: 0) { b in
                try b.gatherRows(try b.upload(vocabulary).narrowed(axis: 1, start: 1, length: 256), indices: lookups)
            })
            let a = try random([2, 1, 33, 70], seed: 12, scale: 0.1, dtype: dtype)
            let m = try random([3, 70, 19], seed: 13, scale: 0.1, dtype: dtype)
            cases.append(Case(name: "matmul broadcast [2,1,33,70]·[3,70,19] \(tag)", tolerance: tol) { b in
                try b.matmul(try b.upload(a), try b.upload(m))
            })
            let activations = try random([5, 17, 96], seed: 14, scale: 0.1, dtype: dtype)
            let w = try random([131, 96], seed: 15, scale: 0.1, dtype: dtype)
            let wb = try random([131], seed: 16)
            cases.append(Case(name: "linear [5,17,96]·[131,96]ᵀ+b \(tag)", tolerance: tol) { b in
                try b.linear(try b.upload(activations), weight: try b.upload(w), bias: try b.upload(wb))
            })
            let wide = try random([300, 1536], seed: 24, scale: 0.1, dtype: dtype)
            let ffn = try random([8960, 1536], seed: 25, scale: 0.05, dtype: dtype)
            let ffnBias = try random([8960], seed: 26)
            cases.append(Case(name: "linear Wan FFN [300,1536]·[8960,1536]ᵀ+b \(tag)", tolerance: tol) { b in
                try b.linear(try b.upload(wide), weight: try b.upload(ffn), bias: try b.upload(ffnBias))
            })
            cases.append(Case(name: "linear+GELU-tanh [5,17,96]·[131,96]ᵀ+b \(tag)", tolerance: tol) { b in
                try b.linear(try b.upload(activations), weight: try b.upload(w), bias: try b.upload(wb), activation: .geluTanh)
            })
            cases.append(Case(name: "linear+GELU-tanh no bias, strided rows \(tag)", tolerance: tol) { b in
                let rows = try b.upload(activations).narrowed(axis: 2, start: 0, length: 95)
                return try b.linear(rows, weight: try b.upload(w).narrowed(axis: 1, start: 0, length: 95), bias: nil, activation: .geluTanh)
            })
            cases.append(Case(name: "linear+bias on views starting one element into the row \(tag)", tolerance: tol) { b in
                // Operand addresses only element-aligned: cuBLASLt must be told (or Kinema's kernel runs it).
                let rows = try b.upload(activations).narrowed(axis: 2, start: 1, length: 95)
                return try b.linear(rows, weight: try b.upload(w).narrowed(axis: 1, start: 1, length: 95), bias: try b.upload(wb))
            })
            cases.append(Case(name: "linear Wan FFN + GELU-tanh [300,1536]·[8960,1536]ᵀ+b \(tag)", tolerance: tol) { b in
                try b.linear(try b.upload(wide), weight: try b.upload(ffn), bias: try b.upload(ffnBias), activation: .geluTanh)
            })
            cases += try fusedCases(dtype: dtype, tolerance: tol)
            cases += try channelsLastCases(dtype: dtype, tolerance: tol)
            // f16 takes the 16-bit paths of the norm kernels too (the vector rows' approximate SiLU): its own rows.
            if dtype == .bf16 { cases += try rmsNormSiLUCases(dtype: .f16, tolerance: 2e-3) }
            // Attention on [B, L, H, D] memory viewed as [B, H, L, D], odd lengths, D = 128.
            let q = try random([2, 37, 3, 128], seed: 17, scale: 0.1, dtype: dtype)
            let k = try random([2, 53, 3, 128], seed: 18, scale: 0.1, dtype: dtype)
            let v = try random([2, 53, 3, 128], seed: 19, dtype: dtype)
            cases.append(Case(name: "attention Lq 37 Lk 53 D 128 strided \(tag)", tolerance: tol, cudnn: true) { b in
                try b.attention(
                    query: try b.upload(q).permuted([0, 2, 1, 3]), key: try b.upload(k).permuted([0, 2, 1, 3]),
                    value: try b.upload(v).permuted([0, 2, 1, 3]), scale: 1 / Float(128).squareRoot())
            })
            let longQ = try random([1, 1000, 2, 128], seed: 27, scale: 0.2, dtype: dtype)
            let longK = try random([1, 1037, 2, 128], seed: 28, scale: 0.2, dtype: dtype)
            let longV = try random([1, 1037, 2, 128], seed: 29, dtype: dtype)
            cases.append(Case(name: "attention Lq 1000 Lk 1037 D 128 strided \(tag)", tolerance: tol, cudnn: true) { b in
                try b.attention(
                    query: try b.upload(longQ).permuted([0, 2, 1, 3]), key: try b.upload(longK).permuted([0, 2, 1, 3]),
                    value: try b.upload(longV).permuted([0, 2, 1, 3]), scale: 1 / Float(128).squareRoot())
            })
            // Cross-attention shape: 300 queries over 257 keys (the image-token count), D = 64.
            let crossQ = try random([1, 300, 2, 64], seed: 30, scale: 0.2, dtype: dtype)
            let crossK = try random([1, 257, 2, 64], seed: 31, scale: 0.2, dtype: dtype)
            let crossV = try random([1, 257, 2, 64], seed: 32, dtype: dtype)
            cases.append(Case(name: "attention Lq 300 Lk 257 D 64 strided \(tag)", tolerance: tol, cudnn: true) { b in
                try b.attention(
                    query: try b.upload(crossQ).permuted([0, 2, 1, 3]), key: try b.upload(crossK).permuted([0, 2, 1, 3]),
                    value: try b.upload(crossV).permuted([0, 2, 1, 3]), scale: 1 / Float(64).squareRoot())
            })
            // The Wan VAE's mid-block attention: one 384-wide head over a frame's pixels (beyond the kernels' D ≤ 256).
            let pixels = try random([3, 70, 3 * 384], seed: 33, scale: 0.1, dtype: dtype)
            cases.append(Case(name: "attention D 384 (VAE) [3,1,70,384] \(tag)", tolerance: tol) { b in
                let qkv = try b.upload(pixels)
                func part(_ i: Int) throws -> Tensor { try qkv.narrowed(axis: 2, start: i * 384, length: 384).unsqueezed(1) }
                return try b.attention(query: try part(0), key: try part(1), value: try part(2), scale: 1 / Float(384).squareRoot())
            })
            let video = try random([1, 5, 3, 10, 14], seed: 20, dtype: dtype)
            let patch = try random([7, 5, 1, 2, 2], seed: 21, scale: 0.1, dtype: dtype)
            let cube = try random([4, 5, 3, 3, 3], seed: 22, scale: 0.1, dtype: dtype)
            let convBias = try random([7], seed: 23)
            cases.append(Case(name: "conv3d patch (1,2,2) \(tag)", tolerance: tol, cudnn: true) { b in
                try b.conv3d(try b.upload(video), weight: try b.upload(patch), bias: try b.upload(convBias), stride: [1, 2, 2], padding: [0, 0, 0])
            })
            cases.append(Case(name: "conv3d 3×3×3 pad 1 \(tag)", tolerance: tol, cudnn: true) { b in
                try b.conv3d(try b.upload(video), weight: try b.upload(cube), bias: nil, stride: [1, 1, 1], padding: [1, 1, 1])
            })
        }
        return cases
    }

    /// The fused DiT-block passes on awkward shapes: odd widths and lengths, a batch of 2 with per-sample
    /// modulation taken as strided chunks of [B, 6, D] (as the block does), shared [1, 1, D] modulation,
    /// bf16 and f32 inputs and outputs, a strided slice of a fused QKV output.
    private static func fusedCases(dtype: DType, tolerance: Double) throws -> [Case] {
        let tag = dtype.rawValue
        var cases: [Case] = []
        let residual = try random([2, 37, 1531], seed: 40, scale: 5)  // the f32 residual stream
        let modulation = try random([2, 6, 1531], seed: 41, scale: 0.05)
        let shared = try random([1, 1, 1531], seed: 42, scale: 0.05)
        let weight = try random([1531], seed: 43, scale: 0.05)
        let bias = try random([1531], seed: 44)
        for input in dtype == .f32 ? [DType.f32] : [DType.f32, dtype] {
            let x = try CPUBackend.shared.cast(residual, to: input)
            cases.append(Case(name: "modulatedLayerNorm \(input.rawValue) → \(tag), chunked [2,1,D] modulation", tolerance: tolerance) { b in
                let parts = try b.upload(modulation).chunked(6, axis: 1)
                return try b.modulatedLayerNorm(
                    try b.upload(x), weight: nil, bias: nil, shift: parts[0], scale: parts[4], eps: 1e-6, outDType: dtype)
            })
        }
        cases.append(Case(name: "modulatedLayerNorm affine, shared [1,1,D] scale only, → \(tag)", tolerance: tolerance) { b in
            try b.modulatedLayerNorm(
                try b.upload(residual), weight: try b.upload(weight), bias: try b.upload(bias), shift: nil,
                scale: try b.upload(shared), eps: 1e-6, outDType: dtype)
        })
        cases.append(Case(name: "modulatedLayerNorm affine permuted input → \(tag)", tolerance: tolerance) { b in
            let x = try b.upload(try random([37, 2, 1531], seed: 45, scale: 5)).permuted([1, 0, 2])
            return try b.modulatedLayerNorm(
                x, weight: try b.upload(weight), bias: try b.upload(bias), shift: nil, scale: nil, eps: 1e-6, outDType: dtype)
        })
        let update = try random([2, 37, 1531], seed: 46, dtype: dtype)
        cases.append(Case(name: "gatedResidual f32 + \(tag)·chunked gate", tolerance: 1e-6) { b in
            let gate = try b.upload(modulation).chunked(6, axis: 1)[2]
            return try b.gatedResidual(try b.upload(residual), try b.upload(update), gate: gate)
        })
        cases.append(Case(name: "gatedResidual f32 + \(tag), no gate", tolerance: 1e-6) { b in
            try b.gatedResidual(try b.upload(residual), try b.upload(update), gate: nil)
        })
        cases.append(Case(name: "gatedResidual \(tag) + f32·shared gate", tolerance: tolerance) { b in
            try b.gatedResidual(try b.upload(update), try b.upload(residual), gate: try b.upload(shared))
        })
        // The VAE norm over channels: [B, C, T, H, W] with SiLU, a permuted input without it, and rank 3.
        let video = try random([2, 96, 3, 5, 7], seed: 51, scale: 3, dtype: dtype)
        let channelWeight = try random([96], seed: 52)
        cases.append(Case(name: "channelRMSNorm + SiLU [2,96,3,5,7] \(tag)", tolerance: tolerance) { b in
            try b.channelRMSNorm(try b.upload(video), weight: try b.upload(channelWeight), eps: 1e-24 / 96, silu: true)
        })
        cases.append(Case(name: "channelRMSNorm permuted [3,96,2,5,7] \(tag)", tolerance: tolerance) { b in
            let x = try b.upload(video).permuted([2, 1, 0, 3, 4])
            return try b.channelRMSNorm(x, weight: try b.upload(channelWeight), eps: 1e-6, silu: false)
        })
        cases.append(Case(name: "channelRMSNorm [4,7,11] no weight + SiLU \(tag)", tolerance: tolerance) { b in
            try b.channelRMSNorm(try b.upload(try random([4, 7, 11], seed: 53, dtype: dtype)), weight: nil, eps: 1e-6, silu: true)
        })
        // q of a fused [B, L, 3·H·d] projection: 3 heads of d = 128 (a strided slice), and 5 heads of d = 6.
        let fusedQKV = try random([2, 45, 3 * 384], seed: 47, dtype: dtype)
        let normWeight = try random([384], seed: 48)
        let cosTable = try random([45, 64], seed: 49, scale: 0.05)
        let sinTable = try random([45, 64], seed: 50, scale: 0.05)
        cases.append(Case(name: "rmsNormRope strided q slice [2,45,3·128] \(tag)", tolerance: tolerance) { b in
            let q = try b.upload(fusedQKV).narrowed(axis: 2, start: 384, length: 384)
            return try b.rmsNormRope(
                q, weight: try b.upload(normWeight), eps: 1e-6, cos: try b.upload(cosTable), sin: try b.upload(sinTable), heads: 3)
        })
        let small = try random([1, 7, 30], seed: 51, scale: 3, dtype: dtype)
        let smallCos = try random([7, 3], seed: 52, scale: 0.05)
        let smallSin = try random([7, 3], seed: 53, scale: 0.05)
        cases.append(Case(name: "rmsNormRope [1,7,5·6] no weight \(tag)", tolerance: tolerance) { b in
            try b.rmsNormRope(try b.upload(small), weight: nil, eps: 1e-6, cos: try b.upload(smallCos), sin: try b.upload(smallSin), heads: 5)
        })
        return cases
    }

    private static func b0abs(_ x: Tensor) throws -> Tensor { try CPUBackend.shared.affine(try CPUBackend.shared.unary(.abs, x), scale: 1, shift: 0.5) }

    /// Every case on `gpu`; with `onlyCUDNN`, just the attention/conv3d cases, named with `prefix`.
    static func run(gpu: any Backend, onlyCUDNN: Bool = false, prefix: String = "") -> [DoctorCheck] {
        var all: [Case]
        do { all = try cases() } catch {
            return [DoctorCheck(name: "op cases", passed: false, relativeError: nil, tolerance: nil, detail: "\(error)")]
        }
        if onlyCUDNN { all = all.filter(\.cudnn).map { Case(name: prefix + $0.name, tolerance: $0.tolerance, cudnn: true, run: $0.run) } }
        return check(all, gpu: gpu)
    }

    /// Each case on the CPU reference and on `gpu`, compared by relative L2 against the case's tolerance.
    static func check(_ all: [Case], gpu: any Backend) -> [DoctorCheck] {
        let cpu = CPUBackend.shared
        return all.map { item in
            DoctorTrace.begin(item.name)
            do {
                let expected = try item.run(cpu)
                let actual = try gpu.download(try item.run(gpu))
                guard actual.shape == expected.shape, actual.dtype == expected.dtype else {
                    return DoctorCheck(
                        name: item.name, passed: false, relativeError: nil, tolerance: item.tolerance,
                        detail: "GPU gave \(actual.shape) \(actual.dtype.rawValue), CPU \(expected.shape) \(expected.dtype.rawValue)")
                }
                let error = try relativeL2(actual, expected)
                return DoctorCheck(name: item.name, passed: error <= item.tolerance, relativeError: error, tolerance: item.tolerance, detail: "")
            } catch {
                return DoctorCheck(name: item.name, passed: false, relativeError: nil, tolerance: item.tolerance, detail: "\(error)")
            }
        }
    }
}
