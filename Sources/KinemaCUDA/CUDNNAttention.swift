import Foundation
import KinemaCore

// Fused scaled-dot-product attention (forward, no mask) through cuDNN's backend graph API. The graph is the
// pattern cuDNN's fused flash-attention engines match (as cudnn-frontend lowers its SDPA node):
//
//   S  = Q · Kᵀ                       Q [B,H,Lq,D], Kᵀ [B,H,D,Lk] (K's strides with the last two swapped)
//   S' = S · scale                    scale: a by-value f32 scalar
//   M  = rowmax(S')                   [B,H,Lq,1]
//   E  = exp(S' − M)
//   Z  = rowsum(E)                    [B,H,Lq,1]
//   (stats = M + log Z)               virtual; only in the first variant, as the frontend emits it
//   P  = E / Z                        bf16 / f16 (the second matmul's A type must be the I/O type)
//   O  = P · V                        V [B,H,Lk,Dv] → O [B,H,Lq,Dv], written in [B,Lq,H,Dv] memory order
//
// S … P are virtual f32 tensors (never in memory). Q, K, V keep their strides (views of the projection
// outputs are passed as they are). O is laid out [B, Lq, H, Dv] so that merging heads afterwards is a view.
// Plans are cached per (shape, strides, dtype, alignment); a problem cuDNN rejects is remembered too.

final class CUDNNAttention: @unchecked Sendable {
    struct Key: Hashable {
        var batch, heads, lq, lk, d, dv: Int
        var q, k, v: [Int]  // strides of the [B, H, L, D] views
        var dtype: DType
        var alignment: [Int]
    }

    final class Plan {
        let builder: CUDNNGraphBuilder  // keeps every descriptor of the graph alive
        let plan: BackendDescriptor
        let workspace: Int
        let variant: String
        init(builder: CUDNNGraphBuilder, plan: BackendDescriptor, workspace: Int, variant: String) {
            self.builder = builder
            self.plan = plan
            self.workspace = workspace
            self.variant = variant
        }
    }

    enum ID {
        static let q: Int64 = 1, kT: Int64 = 2, v: Int64 = 3, o: Int64 = 4, scale: Int64 = 5
    }

    /// The graph variants tried in order until one yields an execution plan.
    enum Variant: String, CaseIterable {
        /// The frontend's composite lowering, which also emits the (virtual) softmax statistics.
        case compositeWithStats = "composite softmax + stats"
        /// The same without the statistics branch.
        case composite = "composite softmax"
        /// cuDNN ≥ 9.21's single softmax operation.
        case unifiedSoftmax = "softmax operation"
    }

    let api: CUDNN
    private let lock = NSLock()
    private var plans: [Key: Result<Plan, any Error>] = [:]

    init(api: CUDNN) { self.api = api }

    /// Whether cuDNN's fused attention can take these operands at all (before asking cuDNN).
    static func supports(query: Tensor, key: Tensor, value: Tensor) -> String? {
        guard query.dtype == .bf16 || query.dtype == .f16 else { return "dtype \(query.dtype.rawValue) (cuDNN SDPA takes bf16/f16)" }
        guard key.dtype == query.dtype, value.dtype == query.dtype else { return "mixed dtypes" }
        let (d, dv) = (query.shape[3], value.shape[3])
        guard d % 8 == 0, dv % 8 == 0, d <= 256, dv <= 256 else { return "head dim \(d)/\(dv) (needs a multiple of 8, ≤ 256)" }
        for t in [query, key, value] where t.strides[3] != 1 { return "non-unit last stride" }
        return nil
    }

    /// O = softmax(Q·Kᵀ·scale)·V. Throws when cuDNN cannot build a plan (the caller then uses Kinema's
    /// kernel) or execution fails.
    func forward(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float, context: CUDAContext) throws -> Tensor {
        if let reason = CUDNNAttention.supports(query: q, key: k, value: v) {
            throw KinemaError.unsupported("cuDNN attention: \(reason)")
        }
        let (batch, heads, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (lk, dv) = (k.shape[2], v.shape[3])
        let addresses = [q, k, v].map(CUDAContext.address)
        let storage = try context.allocator.allocate(batch * lq * heads * dv * q.dtype.byteSize)
        // [B, Lq, H, Dv] in memory, seen as [B, H, Lq, Dv].
        let out = try Tensor(storage: storage, shape: [batch, lq, heads, dv], dtype: q.dtype).permuted([0, 2, 1, 3])
        let key = Key(
            batch: batch, heads: heads, lq: lq, lk: lk, d: d, dv: dv, q: q.strides, k: k.strides, v: v.strides, dtype: q.dtype,
            alignment: (addresses + [CUDAContext.address(out)]).map(cudnnAlignment))
        let plan = try lock.withLock { () throws -> Plan in
            if let cached = plans[key] { return try cached.get() }
            let made = Result { try build(key) }
            plans[key] = made
            return try made.get()
        }
        let workspace = plan.workspace > 0 ? try context.allocator.allocate(plan.workspace) : nil
        var scaleValue = scale
        try context.makeCurrent()
        do {
            try withUnsafeMutablePointer(to: &scaleValue) { scalePointer in
                try context.profiled("cudnn_sdpa") {
                    try api.execute(
                        plan: plan.plan,
                        bindings: [
                            (ID.q, devicePointer(addresses[0])), (ID.kT, devicePointer(addresses[1])), (ID.v, devicePointer(addresses[2])),
                            (ID.o, devicePointer(CUDAContext.address(out))), (ID.scale, UnsafeMutableRawPointer(scalePointer)),
                        ],
                        workspace: workspace.map { devicePointer(CUDAContext.address($0)) } ?? nil)
                }
            }
        } catch {
            // A plan that finalized but cannot execute is remembered as a failure, so later calls of this
            // shape go straight to the fallback instead of failing (and being retried) every time.
            lock.withLock { plans[key] = .failure(error) }
            throw error
        }
        withExtendedLifetime(workspace) {}
        return out
    }

    /// The plan's variant and workspace for a cached key, for diagnostics.
    func describePlans() -> [String] {
        lock.withLock {
            plans.map { key, result in
                let shape = "B\(key.batch) H\(key.heads) Lq\(key.lq) Lk\(key.lk) D\(key.d)"
                switch result {
                case .success(let plan): return "\(shape): \(plan.variant), workspace \(plan.workspace) B"
                case .failure(let error): return "\(shape): no plan (\(error))"
                }
            }
        }
    }

    private func build(_ key: Key) throws -> Plan {
        var failures: [String] = []
        for variant in Variant.allCases {
            if variant == .unifiedSoftmax && api.version < 92100 { continue }
            do {
                let builder = CUDNNGraphBuilder(api)
                try lower(key, variant: variant, into: builder)
                let (plan, workspace, _) = try builder.plan()
                return Plan(builder: builder, plan: plan, workspace: workspace, variant: variant.rawValue)
            } catch {
                failures.append("[\(variant.rawValue)] \(error)")
            }
        }
        throw KinemaError.unsupported(
            "cuDNN \(api.versionText) has no fused attention plan for B \(key.batch) H \(key.heads) Lq \(key.lq) Lk \(key.lk) D \(key.d) "
                + "\(key.dtype.rawValue): " + failures.joined(separator: " | "))
    }

    func lower(_ key: Key, variant: Variant, scalarRank: Int = 4, into g: CUDNNGraphBuilder) throws {
        // `scalarRank`: the scale's rank; pointwise operands must match the score tensor's rank 4 (cuDNN
        // rejects a rank-1 scalar at finalize: "xPort.tensor.getNbDims() != bPort.tensor.getNbDims()").
        guard let io = CUDNNCode.dataType(key.dtype) else { throw KinemaError.unsupported("cuDNN attention dtype \(key.dtype)") }
        let f32 = CUDNNCode.float
        let (b, h, lq, lk, d, dv) = (key.batch, key.heads, key.lq, key.lk, key.d, key.dv)
        let q = try g.tensor("Q", dims: [b, h, lq, d], strides: key.q, dtype: io, id: ID.q, alignment: key.alignment[0])
        let kT = try g.tensor(
            "K^T", dims: [b, h, d, lk], strides: [key.k[0], key.k[1], key.k[3], key.k[2]], dtype: io, id: ID.kT, alignment: key.alignment[1])
        let v = try g.tensor("V", dims: [b, h, lk, dv], strides: key.v, dtype: io, id: ID.v, alignment: key.alignment[2])
        let o = try g.tensor("O", dims: [b, h, lq, dv], strides: [lq * h * dv, dv, h * dv, 1], dtype: io, id: ID.o, alignment: key.alignment[3])
        let ones = [Int](repeating: 1, count: scalarRank)
        let scale = try g.tensor("scale", dims: ones, strides: ones, dtype: f32, id: ID.scale, byValue: true)
        let full = ([b, h, lq, lk], [h * lq * lk, lq * lk, lk, 1])
        let row = ([b, h, lq, 1], [h * lq, lq, 1, 1])
        func virtual(_ name: String, _ layout: ([Int], [Int]), dtype: Int32 = f32) throws -> BackendDescriptor {
            try g.tensor(name, dims: layout.0, strides: layout.1, dtype: dtype, virtual: true).descriptor
        }
        let s = try virtual("S", full)
        try g.matmul("bmm1", a: q.descriptor, b: kT.descriptor, c: s)
        let scaled = try virtual("S*scale", full)
        try g.pointwise("attn_scale", mode: CUDNNCode.mul, x: s, b: scale.descriptor, y: scaled)
        let p = try virtual("P", full, dtype: io)
        if variant == .unifiedSoftmax {
            try g.softmax("softmax", x: scaled, y: p)
        } else {
            let m = try virtual("M", row)
            try g.reduction("max", op: CUDNNCode.reduceMax, x: scaled, y: m)
            let shifted = try virtual("S-M", full)
            try g.pointwise("sub", mode: CUDNNCode.sub, x: scaled, b: m, y: shifted)
            let e = try virtual("exp", full)
            try g.pointwise("exp", mode: CUDNNCode.exp, x: shifted, y: e)
            let z = try virtual("Z", row)
            try g.reduction("sum", op: CUDNNCode.reduceAdd, x: e, y: z)
            if variant == .compositeWithStats {
                let logZ = try virtual("logZ", row)
                try g.pointwise("log", mode: CUDNNCode.log, x: z, y: logZ)
                let stats = try virtual("stats", row)
                try g.pointwise("add", mode: CUDNNCode.add, x: m, b: logZ, y: stats)
            }
            try g.pointwise("div", mode: CUDNNCode.div, x: e, b: z, y: p)
        }
        try g.matmul("bmm2", a: p, b: v.descriptor, c: o.descriptor)
    }
}
