import KinemaCUDA
import KinemaCore

// Doctor rows for the Hopper wgmma attention kernel (KINEMA_ATTENTION=wgmma), bf16, D = 128, against the
// CPU reference: Lk below, at and past multiples of the 128-key tile, Lq smaller than one 128-row block
// and not a multiple of it, Lq ≠ Lk, and strided views ([B, L, H, D] memory seen as [B, H, L, D]; slices
// of a stacked QKV projection). A row fails when the wgmma kernel did not run (a silent fallback would
// otherwise pass with the mma.sync kernel's numbers).

extension OpConsistency {
    /// (name, B, H, Lq, Lk, q/k scale) of the [B, L, H, 128] cases.
    private static let wgmmaShapes: [(String, Int, Int, Int, Int, Float)] = [
        ("Lq 37 Lk 53 (one partial tile)", 2, 3, 37, 53, 0.1),
        ("Lq 5 Lk 300 (small Lq, Lk = 2 tiles + 44)", 1, 2, 5, 300, 0.2),
        ("Lq 300 Lk 256 (Lk = 2 whole tiles)", 1, 2, 300, 256, 0.2),
        ("Lq 129 Lk 512 (cross-attention keys)", 1, 2, 129, 512, 0.2),
        ("Lq 1000 Lk 1037", 1, 2, 1000, 1037, 0.2),
        ("Lq 256 Lk 384 sharp softmax", 1, 1, 256, 384, 0.6),
    ]

    static func wgmmaAttentionCases() throws -> [Case] {
        let tolerance = 1e-2  // the bf16 attention tolerance of the other backends' rows
        let scale = 1 / Float(128).squareRoot()
        var cases: [Case] = []
        for (index, (label, batch, heads, lq, lk, qkScale)) in wgmmaShapes.enumerated() {
            let seed = UInt64(100 + 3 * index)
            let q = try random([batch, lq, heads, 128], seed: seed, scale: qkScale, dtype: .bf16)
            let k = try random([batch, lk, heads, 128], seed: seed + 1, scale: qkScale, dtype: .bf16)
            let v = try random([batch, lk, heads, 128], seed: seed + 2, dtype: .bf16)
            cases.append(Case(name: "wgmma attention \(label) strided bf16", tolerance: tolerance) { b in
                try requireWGMMA(b) {
                    try b.attention(
                        query: try b.upload(q).permuted([0, 2, 1, 3]), key: try b.upload(k).permuted([0, 2, 1, 3]),
                        value: try b.upload(v).permuted([0, 2, 1, 3]), scale: scale)
                }
            })
        }
        // Contiguous [B, H, L, D] operands.
        let q = try random([1, 2, 150, 128], seed: 140, scale: 0.2, dtype: .bf16)
        let k = try random([1, 2, 170, 128], seed: 141, scale: 0.2, dtype: .bf16)
        let v = try random([1, 2, 170, 128], seed: 142, dtype: .bf16)
        cases.append(Case(name: "wgmma attention Lq 150 Lk 170 contiguous bf16", tolerance: tolerance) { b in
            try requireWGMMA(b) {
                try b.attention(query: try b.upload(q), key: try b.upload(k), value: try b.upload(v), scale: scale)
            }
        })
        // Slices of a stacked QKV projection [B, L, 3·H·D] (row stride 3·H·D), as the DiT's self-attention.
        let qkv = try random([1, 200, 3 * 2 * 128], seed: 143, scale: 0.2, dtype: .bf16)
        cases.append(Case(name: "wgmma attention stacked QKV slices L 200 H 2 bf16", tolerance: tolerance) { b in
            let stacked = try b.upload(qkv)
            func part(_ i: Int) throws -> Tensor {
                let slice = try stacked.narrowed(axis: 2, start: i * 256, length: 256)
                guard let heads = try slice.viewed(as: [1, 200, 2, 128]) else {
                    throw KinemaError.invalidArgument("QKV slice \(slice.shape) strides \(slice.strides) is not viewable as heads")
                }
                return try heads.permuted([0, 2, 1, 3])
            }
            return try requireWGMMA(b) { try b.attention(query: try part(0), key: try part(1), value: try part(2), scale: scale) }
        })
        return cases
    }

    /// Runs `body`; on a CUDA backend, throws unless it launched the wgmma kernel.
    private static func requireWGMMA(_ backend: any Backend, _ body: () throws -> Tensor) throws -> Tensor {
        guard let gpu = backend as? CUDABackend else { return try body() }
        let before = gpu.wgmmaAttentionLaunches
        let out = try body()
        guard gpu.wgmmaAttentionLaunches > before else {
            throw KinemaError.unsupported("the wgmma kernel did not run (fell back to another kernel; see the warning on stderr)")
        }
        return out
    }

    /// The wgmma rows on `gpu` (whose attention choice should be `.wgmma`).
    static func runWGMMA(gpu: CUDABackend) -> [DoctorCheck] {
        do { return check(try wgmmaAttentionCases(), gpu: gpu) } catch {
            return [DoctorCheck(name: "wgmma attention cases", passed: false, relativeError: nil, tolerance: nil, detail: "\(error)")]
        }
    }
}
