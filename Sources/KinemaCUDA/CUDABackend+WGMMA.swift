import KinemaCore

// KINEMA_ATTENTION=wgmma: attention on Kinema's Hopper kernel (Kernels/WGMMAAttentionKernel.swift) where
// the problem fits it, else the mma.sync kernel (never cuDNN). The output is laid out [B, Lq, H, D] and
// returned as a [B, H, Lq, D] view, as the cuDNN path does, so merging heads afterwards is a view.

extension WGMMAAttentionKernel {
    /// Why the wgmma kernel cannot run this problem, or nil when it can. `addresses`: byte addresses of
    /// element 0 of q, k, v. Needs sm_90a, bf16, D = Dv = 128, rows 16-byte aligned (cp.async moves 16 bytes).
    static func unsupportedReason(query: Tensor, key: Tensor, value: Tensor, addresses: [UInt64], architecture: String) -> String? {
        guard architecture == "sm_90a" else { return "needs sm_90 (wgmma), this GPU is \(architecture)" }
        let operands = [query, key, value]
        guard operands.allSatisfy({ $0.dtype == .bf16 }) else { return "needs bf16 q/k/v" }
        guard operands.allSatisfy({ $0.rank == 4 && $0.shape[3] == headDim && $0.strides[3] == 1 }) else {
            return "needs head dim \(headDim) with unit last stride"
        }
        // A stride along a size-1 axis is never multiplied by a non-zero index (a B = 1 slice of a stacked
        // QKV projection can carry batch stride 1), so only the strides of real axes must be aligned.
        func alignedRows(_ t: Tensor) -> Bool {
            zip(t.shape, t.strides).dropLast().allSatisfy { size, stride in size == 1 || stride % 8 == 0 }
        }
        guard operands.allSatisfy(alignedRows), addresses.count == 3,
            addresses.allSatisfy({ $0 % 16 == 0 })
        else { return "needs 16-byte aligned rows (strides multiple of 8 elements)" }
        guard query.shape[0] * query.shape[1] <= 65535 else { return "needs B·H ≤ 65535" }
        return nil
    }
}

extension CUDABackend {
    /// Attention through the wgmma kernel when KINEMA_ATTENTION=wgmma and the problem fits, else nil.
    func attentionThroughWGMMA(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float) throws -> Tensor? {
        guard attentionChoice == .wgmma else { return nil }
        let addresses = [q, k, v].map { UInt64(address($0)) }
        if let reason = WGMMAAttentionKernel.unsupportedReason(
            query: q, key: k, value: v, addresses: addresses, architecture: context.architecture)
        {
            if q.dtype == .bf16 {  // other dtypes are not a wgmma problem: no warning
                context.warnOnce(
                    "wgmma \(q.shape) \(k.shape) \(q.strides)",
                    "KINEMA_ATTENTION=wgmma: \(reason) (q \(q.shape) strides \(q.strides), k \(k.shape)); using Kinema's mma.sync kernel")
            }
            return nil
        }
        let (batch, heads, lq) = (q.shape[0], q.shape[1], q.shape[2])
        let d = WGMMAAttentionKernel.headDim
        let storage = try context.allocator.allocate(batch * lq * heads * d * DType.bf16.byteSize)
        let out = try Tensor(storage: storage, shape: [batch, lq, heads, d], dtype: .bf16)
        try launchWGMMA("kinema_flash_attention_wgmma", query: q, key: k, value: v, out: address(out), scale: scale) { _ in }
        wgmmaAttentionLaunches += 1
        return try out.permuted([0, 2, 1, 3])
    }

    /// Diagnostics of the wgmma kernel for a first GPU run (sm_90 problems only): tile 0's raw scores Q·Kᵀ
    /// (keys 0…127, zero past Lk) and the unnormalized P·V of a one-hot P that sends query row r to key
    /// r mod 128 (zero where that key is ≥ Lk), each f32 [B·H, Lq, 128].
    public func wgmmaAttentionDiagnostics(query q: Tensor, key k: Tensor, value v: Tensor) throws -> (scores: Tensor, oneHotValues: Tensor) {
        let addresses = [q, k, v].map { UInt64(address($0)) }
        if let reason = WGMMAAttentionKernel.unsupportedReason(
            query: q, key: k, value: v, addresses: addresses, architecture: context.architecture)
        {
            throw KinemaError.unsupported("wgmma diagnostics: \(reason)")
        }
        guard k.shape[0...1] == q.shape[0...1], v.shape == k.shape else {
            throw KinemaError.shapeMismatch(context: "wgmma diagnostics", expected: "q [B,H,Lq,128], k and v [B,H,Lk,128]", found: "\(q.shape), \(k.shape), \(v.shape)")
        }
        let shape = [q.shape[0] * q.shape[1], q.shape[2], WGMMAAttentionKernel.headDim]
        var results: [Tensor] = []
        for mode in [1, 2] {
            let debug = try zeros(shape, dtype: .f32)
            try launchWGMMA("kinema_flash_attention_wgmma_debug", query: q, key: k, value: v, out: 0, scale: 1) { arguments in
                arguments.append(Int32(mode))
                arguments.append(address(debug))
            }
            results.append(debug)
        }
        return (results[0], results[1])
    }

    /// Launches `name` (the attention kernel or its diagnostics) over q [B,H,Lq,128], k/v [B,H,Lk,128];
    /// `extra` appends the arguments after the common ones.
    private func launchWGMMA(
        _ name: String, query q: Tensor, key k: Tensor, value v: Tensor, out: CUdeviceptr, scale: Float,
        extra: (inout KernelArguments) -> Void
    ) throws {
        let (batch, heads, lq, lk) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        let grid = ((lq + WGMMAAttentionKernel.queriesPerBlock - 1) / WGMMAAttentionKernel.queriesPerBlock, batch * heads, 1)
        try launch(
            name, WGMMAAttentionKernel.source, grid: grid, block: (WGMMAAttentionKernel.threadsPerBlock, 1, 1),
            sharedBytes: WGMMAAttentionKernel.sharedBytes
        ) { arguments in
            for t in [q, k, v] {
                arguments.append(address(t))
                arguments.append(Int64(t.strides[0]))
                arguments.append(Int64(t.strides[1]))
                arguments.append(Int64(t.strides[2]))
            }
            arguments.append(out)
            arguments.append(Int32(heads))
            arguments.append(Int32(lq))
            arguments.append(Int32(lk))
            arguments.append(scale * 1.4426950408889634)
            extra(&arguments)
        }
    }
}
