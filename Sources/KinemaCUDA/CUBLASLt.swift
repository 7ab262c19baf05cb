import Foundation
import KinemaCore

// cuBLASLt GEMMs, resolved from libcublasLt at run time. Kinema's tensors are row-major; cuBLAS is
// column-major, so D[M,N] = A[M,K]·op(B) is computed as Dᵀ[N,M] = op(B)ᵀ·Aᵀ: a row-major matrix with row
// stride ld is the column-major transpose with the same ld. Plans (descriptors and the heuristic's
// algorithm) are cached per shape.

final class CUBLASLt: @unchecked Sendable {
    typealias Handle = OpaquePointer
    private let library: LoadedLibrary
    private let create: @convention(c) (UnsafeMutablePointer<Handle?>) -> Int32
    private let descCreate: @convention(c) (UnsafeMutablePointer<Handle?>, Int32, Int32) -> Int32
    private let descSet: @convention(c) (Handle?, Int32, UnsafeRawPointer, Int) -> Int32
    private let layoutCreate: @convention(c) (UnsafeMutablePointer<Handle?>, Int32, UInt64, UInt64, Int64) -> Int32
    private let layoutSet: @convention(c) (Handle?, Int32, UnsafeRawPointer, Int) -> Int32
    private let preferenceCreate: @convention(c) (UnsafeMutablePointer<Handle?>) -> Int32
    private let preferenceSet: @convention(c) (Handle?, Int32, UnsafeRawPointer, Int) -> Int32
    private let heuristic: @convention(c) (
        Handle?, Handle?, Handle?, Handle?, Handle?, Handle?, Handle?, Int32, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>
    ) -> Int32
    private let matmulCall: @convention(c) (
        Handle?, Handle?, UnsafeRawPointer, UInt64, Handle?, UInt64, Handle?, UnsafeRawPointer, UInt64, Handle?, UInt64, Handle?,
        UnsafeRawPointer?, UInt64, Int, CUhandle?
    ) -> Int32
    let version: Int
    private var handle: Handle?
    private let workspace: Storage
    private let workspaceBytes = 32 << 20
    private let lock = NSLock()
    private var plans: [PlanKey: Plan] = [:]
    /// Shapes and epilogues the heuristic had no algorithm for, so a fallback does not ask again per call.
    private var unsupported: Set<PlanKey> = []

    /// cudaDataType codes.
    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .f32: return 0  // CUDA_R_32F
        case .f16: return 2  // CUDA_R_16F
        case .bf16: return 14  // CUDA_R_16BF
        default: return nil
        }
    }

    var path: String { library.path }

    init(context: CUDAContext) throws {
        let lib = try CUDALibraries.open(["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"])
        library = lib
        create = try lib.function("cublasLtCreate")
        descCreate = try lib.function("cublasLtMatmulDescCreate")
        descSet = try lib.function("cublasLtMatmulDescSetAttribute")
        layoutCreate = try lib.function("cublasLtMatrixLayoutCreate")
        layoutSet = try lib.function("cublasLtMatrixLayoutSetAttribute")
        preferenceCreate = try lib.function("cublasLtMatmulPreferenceCreate")
        preferenceSet = try lib.function("cublasLtMatmulPreferenceSetAttribute")
        heuristic = try lib.function("cublasLtMatmulAlgoGetHeuristic")
        matmulCall = try lib.function("cublasLtMatmul")
        let getVersion: (@convention(c) () -> Int)? = lib.optionalFunction("cublasLtGetVersion")
        version = getVersion?() ?? 0
        try context.makeCurrent()
        workspace = try context.allocator.allocate(workspaceBytes)
        try check(create(&handle), "cublasLtCreate")
    }

    private func check(_ status: Int32, _ call: String) throws {
        guard status == 0 else { throw KinemaError.unsupported("cuBLASLt \(call) failed with status \(status)") }
    }

    /// A row-major operand: element (r, c) of batch b at base + b·batchStride + r·rowStride + c.
    struct Operand {
        var address: CUdeviceptr
        var dtype: DType
        var rowStride: Int
        var batchStride: Int
    }

    struct PlanKey: Hashable {
        var m, n, k, batch: Int
        var a, b, d: DType
        var lda, ldb, ldd: Int
        var strideA, strideB, strideD: Int
        var transposedB: Bool
        var epilogue: Epilogue
        /// Byte alignment of our A, B and D pointers (see `alignment(of:)`).
        var alignA, alignB, alignD: Int
    }

    /// The largest power of two ≤ 256 dividing `address`. cuBLASLt's heuristic assumes 256-byte aligned
    /// operands unless told otherwise (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES), and an algorithm chosen
    /// under that assumption cannot run on a view that starts inside a row (a narrowed or sliced tensor).
    static func alignment(of address: CUdeviceptr) -> Int {
        var alignment = 256
        while alignment > 1 && address % CUdeviceptr(alignment) != 0 { alignment /= 2 }
        return alignment
    }

    /// What cuBLASLt applies to the f32 accumulator before the one rounding to D: nothing, + bias[column],
    /// or GELU-tanh(· + bias[column]). The bias vector is in D's dtype (cuBLASLt's rule for non-fp8 GEMMs).
    enum Epilogue: Int32, Hashable {
        case none = 1  // CUBLASLT_EPILOGUE_DEFAULT
        case bias = 4  // CUBLASLT_EPILOGUE_BIAS
        case gelu = 32  // CUBLASLT_EPILOGUE_GELU
        case geluBias = 36  // CUBLASLT_EPILOGUE_GELU_BIAS (GELU | BIAS); cuBLASLt's GELU is the tanh form

        var usesBias: Bool { self == .bias || self == .geluBias }
    }

    struct Plan {
        var operation: Handle?
        var layoutA: Handle?  // cuBLAS "A" = our B
        var layoutB: Handle?  // cuBLAS "B" = our A
        var layoutD: Handle?
        var algorithm: [UInt8]  // cublasLtMatmulHeuristicResult_t (96 bytes); the algo is its first 64
    }

    /// D[batch, M, N] = epilogue(alpha · A[batch, M, K] · B), where B is [K, N] (`transposedB` false) or the
    /// transpose of a [N, K] matrix (true, e.g. a Linear weight). Compute in f32. `bias` is the device
    /// address of N elements of D's dtype (for the bias epilogues). Throws if cuBLASLt has no algorithm
    /// (callers fall back to a plain GEMM and separate passes).
    func gemm(
        a: Operand, b: Operand, d: Operand, m: Int, n: Int, k: Int, batch: Int, transposedB: Bool,
        epilogue: Epilogue = .none, bias: CUdeviceptr = 0, alpha: Float = 1, stream: CUhandle?
    ) throws {
        let key = PlanKey(
            m: m, n: n, k: k, batch: batch, a: a.dtype, b: b.dtype, d: d.dtype, lda: a.rowStride, ldb: b.rowStride,
            ldd: d.rowStride, strideA: a.batchStride, strideB: b.batchStride, strideD: d.batchStride, transposedB: transposedB,
            epilogue: epilogue, alignA: CUBLASLt.alignment(of: a.address), alignB: CUBLASLt.alignment(of: b.address),
            alignD: CUBLASLt.alignment(of: d.address))
        // The bias pointer lives in the cached descriptor, so setting it and enqueueing the matmul happen
        // under one lock (cublasLtMatmul reads the descriptor when called).
        try lock.withLock { () throws in
            let plan: Plan
            if let cached = plans[key] {
                plan = cached
            } else {
                guard !unsupported.contains(key) else {
                    throw KinemaError.unsupported("cuBLASLt has no algorithm for M \(m) N \(n) K \(k) with epilogue \(epilogue)")
                }
                do {
                    plan = try makePlan(key)
                } catch {
                    unsupported.insert(key)
                    throw error
                }
                plans[key] = plan
            }
            if epilogue.usesBias {
                var pointer = UInt64(bias)
                try check(descSet(plan.operation, 8, &pointer, 8), "BIAS_POINTER")  // CUBLASLT_MATMUL_DESC_BIAS_POINTER
            }
            var alpha = alpha
            var beta: Float = 0
            let status = plan.algorithm.withUnsafeBytes { algo in
                matmulCall(
                    handle, plan.operation, &alpha, b.address, plan.layoutA, a.address, plan.layoutB, &beta, d.address, plan.layoutD,
                    d.address, plan.layoutD, algo.baseAddress, CUDAContext.address(workspace), workspaceBytes, stream)
            }
            if status != 0 && epilogue != .none {
                // The caller falls back to a plain GEMM and separate passes: do not try this epilogue again.
                plans[key] = nil
                unsupported.insert(key)
            }
            try check(status, "cublasLtMatmul (M \(m), N \(n), K \(k), batch \(batch), epilogue \(epilogue))")
        }
    }

    private func makePlan(_ key: PlanKey) throws -> Plan {
        guard let typeA = CUBLASLt.dataType(key.b), let typeB = CUBLASLt.dataType(key.a), let typeD = CUBLASLt.dataType(key.d) else {
            throw KinemaError.unsupported("cuBLASLt: unsupported dtypes \(key.a), \(key.b) → \(key.d)")
        }
        var plan = Plan(operation: nil, layoutA: nil, layoutB: nil, layoutD: nil, algorithm: [UInt8](repeating: 0, count: 96))
        try check(descCreate(&plan.operation, 68, 0), "cublasLtMatmulDescCreate")  // CUBLAS_COMPUTE_32F, f32 scale
        var transA: Int32 = key.transposedB ? 1 : 0
        var transB: Int32 = 0
        try check(descSet(plan.operation, 3, &transA, 4), "TRANSA")
        try check(descSet(plan.operation, 4, &transB, 4), "TRANSB")
        if key.epilogue != .none {
            // D is column-major [N, M] here, so a bias per row of cuBLAS's D is a bias per our column.
            var epilogue = UInt32(key.epilogue.rawValue)
            var biasType = typeD
            try check(descSet(plan.operation, 7, &epilogue, 4), "EPILOGUE")  // CUBLASLT_MATMUL_DESC_EPILOGUE
            if key.epilogue.usesBias {
                try check(descSet(plan.operation, 26, &biasType, 4), "BIAS_DATA_TYPE")  // CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE
                // The heuristic may look at the bias pointer's alignment: an aligned placeholder until the call.
                var placeholder = UInt64(CUDAContext.address(workspace))
                try check(descSet(plan.operation, 8, &placeholder, 8), "BIAS_POINTER")
            }
        }
        // cuBLAS A = op(our B)ᵀ: column-major [N, K] (ld = row stride of B [K, N]) or, transposed, [K, N].
        if key.transposedB {
            try check(layoutCreate(&plan.layoutA, typeA, UInt64(key.k), UInt64(key.n), Int64(key.ldb)), "layout A")
        } else {
            try check(layoutCreate(&plan.layoutA, typeA, UInt64(key.n), UInt64(key.k), Int64(key.ldb)), "layout A")
        }
        try check(layoutCreate(&plan.layoutB, typeB, UInt64(key.k), UInt64(key.m), Int64(key.lda)), "layout B")
        try check(layoutCreate(&plan.layoutD, typeD, UInt64(key.n), UInt64(key.m), Int64(key.ldd)), "layout D")
        if key.batch > 1 {
            var count = Int32(key.batch)
            for (layout, stride) in [(plan.layoutA, key.strideB), (plan.layoutB, key.strideA), (plan.layoutD, key.strideD)] {
                var batchStride = Int64(stride)
                try check(layoutSet(layout, 5, &count, 4), "BATCH_COUNT")
                try check(layoutSet(layout, 6, &batchStride, 8), "STRIDED_BATCH_OFFSET")
            }
        }
        var preference: Handle?
        try check(preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        var limit = UInt64(workspaceBytes)
        try check(preferenceSet(preference, 1, &limit, 8), "MAX_WORKSPACE_BYTES")
        // cuBLAS A is our B, cuBLAS B our A; C and D are both our D.
        for (attribute, alignment) in [(Int32(5), key.alignB), (6, key.alignA), (7, key.alignD), (8, key.alignD)] {
            var bytes = UInt32(alignment)
            try check(preferenceSet(preference, attribute, &bytes, 4), "MIN_ALIGNMENT (\(attribute))")  // PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES
        }
        var found: Int32 = 0
        let status = plan.algorithm.withUnsafeMutableBytes { result -> Int32 in
            guard let base = result.baseAddress else { return -1 }
            return heuristic(handle, plan.operation, plan.layoutA, plan.layoutB, plan.layoutD, plan.layoutD, preference, 1, base, &found)
        }
        guard status == 0, found > 0 else {
            throw KinemaError.unsupported("cuBLASLt has no algorithm for M \(key.m) N \(key.n) K \(key.k) \(key.a)·\(key.b) (status \(status))")
        }
        return plan
    }
}
