import Foundation
import KinemaCore

// conv3d through cuDNN's convolution API (cudnnConvolutionForward, still part of cuDNN 9): NCDHW tensors,
// f32 accumulation. bf16/f16 may use tensor cores; f32 is kept to FMA math (no TF32), so f32 results stay
// comparable with the CPU reference. The algorithm is chosen once per problem by timing every candidate
// (cudnnFindConvolutionForwardAlgorithmEx on the first call's buffers), falling back to the heuristic
// (…_v7) if that fails; the choice and descriptors are cached. Workspaces come from Kinema's allocator.

final class CUDNNConvolution: @unchecked Sendable {
    struct Key: Hashable {
        var input: [Int]  // [B, Ci, T, H, W]
        var filter: [Int]  // [Co, Ci, kT, kH, kW]
        var stride: [Int]
        var padding: [Int]
        var dtype: DType
    }

    /// Descriptors and the chosen algorithm of one problem.
    final class Plan {
        let legacy: CUDNN.LegacyConvolutionAPI
        var x: OpaquePointer?, w: OpaquePointer?, y: OpaquePointer?, conv: OpaquePointer?
        var algorithm: Int32 = 0
        var workspace = 0
        var chosenBy = ""
        var measuredMilliseconds: Float?

        init(legacy: CUDNN.LegacyConvolutionAPI) { self.legacy = legacy }

        deinit {
            if x != nil { _ = legacy.destroyTensor(x) }
            if y != nil { _ = legacy.destroyTensor(y) }
            if w != nil { _ = legacy.destroyFilter(w) }
            if conv != nil { _ = legacy.destroyConvolution(conv) }
        }
    }

    let api: CUDNN
    let legacy: CUDNN.LegacyConvolutionAPI
    private let lock = NSLock()
    private var plans: [Key: Result<Plan, any Error>] = [:]
    /// Upper bound on a convolution workspace: algorithms that need more are not considered.
    /// The fast implicit-precomputed-GEMM kernels need workspace in proportion to the output (hundreds of
    /// MiB for the VAE's full-resolution layers). Under a 256 MiB limit those layers got the no-workspace
    /// kernels, ≈ 20 TFLOP/s against 400+ for the precomputed ones on smaller outputs (H100, 2026-11-27),
    /// and the 480p decode took 14.5 s. The limit is also capped at a quarter of the free memory at planning.
    static let workspaceLimit = 2 << 30

    init(api: CUDNN) throws {
        guard let legacy = api.legacy else {
            throw KinemaError.unsupported("cuDNN \(api.versionText) at \(api.library.path) lacks the convolution API")
        }
        self.api = api
        self.legacy = legacy
    }

    /// y = conv3d(x, w) (+ bias per output channel, applied by the caller). x, w contiguous, same dtype.
    func forward(input x: Tensor, filter w: Tensor, output y: Tensor, stride: [Int], padding: [Int], context: CUDAContext) throws {
        guard let dtype = CUDNNCode.dataType(x.dtype), w.dtype == x.dtype, y.dtype == x.dtype else {
            throw KinemaError.unsupported("cuDNN conv3d: dtypes \(x.dtype.rawValue) · \(w.dtype.rawValue)")
        }
        guard x.isContiguous, w.isContiguous, y.isContiguous, x.count < Int(Int32.max), y.count < Int(Int32.max) else {
            throw KinemaError.unsupported("cuDNN conv3d: needs contiguous tensors with fewer than 2³¹ elements")
        }
        let key = Key(input: x.shape, filter: w.shape, stride: stride, padding: padding, dtype: x.dtype)
        try context.makeCurrent()
        let plan = try lock.withLock { () throws -> Plan in
            if let cached = plans[key] { return try cached.get() }
            let made = Result { try build(key, dtype: dtype, x: x, w: w, y: y, context: context) }
            plans[key] = made
            return try made.get()
        }
        let workspace = plan.workspace > 0 ? try context.allocator.allocate(plan.workspace) : nil
        var alpha: Float = 1
        var beta: Float = 0
        let status = try context.profiled("cudnn conv3d \(x.dtype.rawValue)") {
            legacy.forward(
                api.handle, &alpha, plan.x, devicePointer(CUDAContext.address(x)), plan.w, devicePointer(CUDAContext.address(w)),
                plan.conv, plan.algorithm, workspace.map { devicePointer(CUDAContext.address($0)) } ?? nil, plan.workspace,
                &beta, plan.y, devicePointer(CUDAContext.address(y)))
        }
        withExtendedLifetime(workspace) {}
        do {
            try api.check(status, "cudnnConvolutionForward(\(x.shape) * \(w.shape), algo \(plan.algorithm))")
        } catch {
            lock.withLock { plans[key] = .failure(error) }  // later calls of this problem go straight to the fallback
            throw error
        }
    }

    /// The cached problems and their algorithms, for diagnostics.
    func describePlans() -> [String] {
        lock.withLock {
            plans.map { key, result in
                let shape = "x \(key.input) w \(key.filter) \(key.dtype.rawValue)"
                switch result {
                case .success(let plan):
                    let time = plan.measuredMilliseconds.map { String(format: ", %.3f ms", $0) } ?? ""
                    return "\(shape): algo \(plan.algorithm) (\(plan.chosenBy)\(time)), workspace \(plan.workspace) B"
                case .failure(let error): return "\(shape): no plan (\(error))"
                }
            }
        }
    }

    /// Tensor, filter and convolution descriptors of a problem (no handle needed).
    func descriptors(_ key: Key, dtype: Int32, outputShape: [Int]) throws -> Plan {
        let plan = Plan(legacy: legacy)
        func contiguousStrides(_ shape: [Int]) -> [Int32] {
            var strides = [Int32](repeating: 1, count: shape.count)
            for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * Int32(shape[axis + 1]) }
            return strides
        }
        try api.check(legacy.createTensor(&plan.x), "cudnnCreateTensorDescriptor")
        try api.check(legacy.createTensor(&plan.y), "cudnnCreateTensorDescriptor")
        try api.check(legacy.createFilter(&plan.w), "cudnnCreateFilterDescriptor")
        try api.check(legacy.createConvolution(&plan.conv), "cudnnCreateConvolutionDescriptor")
        let (xDims, yDims) = (key.input.map(Int32.init), outputShape.map(Int32.init))
        try api.check(legacy.setTensorNd(plan.x, dtype, 5, xDims, contiguousStrides(key.input)), "cudnnSetTensorNdDescriptor(x \(key.input))")
        try api.check(legacy.setTensorNd(plan.y, dtype, 5, yDims, contiguousStrides(outputShape)), "cudnnSetTensorNdDescriptor(y \(outputShape))")
        try api.check(legacy.setFilterNd(plan.w, dtype, 0, 5, key.filter.map(Int32.init)), "cudnnSetFilterNdDescriptor(\(key.filter))")  // NCHW
        let pads = key.padding.map(Int32.init), strides = key.stride.map(Int32.init), dilations: [Int32] = [1, 1, 1]
        try api.check(
            legacy.setConvolutionNd(plan.conv, 3, pads, strides, dilations, 1, CUDNNCode.float),  // CROSS_CORRELATION, f32 compute
            "cudnnSetConvolutionNdDescriptor(pad \(key.padding), stride \(key.stride))")
        // bf16/f16: tensor cores; f32: FMA only (CUDNN_FMA_MATH), so no TF32 rounding.
        let mathType: Int32 = key.dtype == .f32 ? 3 : 1
        try api.check(legacy.setMathType(plan.conv, mathType), "cudnnSetConvolutionMathType")
        return plan
    }

    private func build(_ key: Key, dtype: Int32, x: Tensor, w: Tensor, y: Tensor, context: CUDAContext) throws -> Plan {
        let plan = try descriptors(key, dtype: dtype, outputShape: y.shape)

        // Results: cudnnConvolutionFwdAlgoPerf_t, 48 bytes: algo i32 @0, status i32 @4, time f32 @8, memory size_t @16,
        // determinism i32 @24, mathType i32 @28.
        let requested: Int32 = 8
        var results = [UInt8](repeating: 0, count: 48 * Int(requested))
        var returned: Int32 = 0
        func candidates() -> [(algo: Int32, time: Float, memory: Int, math: Int32)] {
            results.withUnsafeBytes { raw in
                (0..<Int(returned)).compactMap { i in
                    let base = i * 48
                    let status = raw.load(fromByteOffset: base + 4, as: Int32.self)
                    guard status == 0 else { return nil }
                    return (raw.load(fromByteOffset: base, as: Int32.self), raw.load(fromByteOffset: base + 8, as: Float.self),
                            raw.load(fromByteOffset: base + 16, as: Int.self), raw.load(fromByteOffset: base + 28, as: Int32.self))
                }
            }
        }
        // A result was measured with its own math type, which the descriptor must carry when the algorithm
        // runs (its kernels and workspace depend on it). f32 keeps FMA math whatever was measured (no TF32).
        // The workspace is asked again for the descriptor as it will run. False: the candidate cannot be used.
        func adopt(algo: Int32, math: Int32, limit: Int) -> Bool {
            if key.dtype != .f32, legacy.setMathType(plan.conv, math) != 0 { return false }
            var size = 0
            guard legacy.workspaceSize(api.handle, plan.x, plan.w, plan.conv, plan.y, algo, &size) == 0, size <= limit else {
                if key.dtype != .f32 { _ = legacy.setMathType(plan.conv, 1) }  // back to tensor-op math
                return false
            }
            plan.algorithm = algo
            plan.workspace = size
            return true
        }
        // f32 keeps to the GEMM-like algorithms (implicit / precomputed implicit / explicit GEMM, direct):
        // FFT and Winograd transforms add rounding error that f32 callers (reference checks) do not expect.
        func allowed(_ algorithm: Int32) -> Bool { key.dtype != .f32 || algorithm <= 3 }
        let free = (try? context.memoryInfo().free) ?? 0
        let limit = min(CUDNNConvolution.workspaceLimit, max(0, free / 4))
        // The timing run gets the largest workspace a forward algorithm of this problem asks for (within the
        // limit), not the limit itself: a 2 GiB scratch for a convolution that needs a few MiB was the
        // peak of the whole DiT forward (H100 run, 2026-11-27).
        let scratchBytes = (0..<Int32(8)).reduce(0) { largest, algo in
            var size = 0
            guard legacy.workspaceSize(api.handle, plan.x, plan.w, plan.conv, plan.y, algo, &size) == 0, size <= limit else { return largest }
            return max(largest, size)
        }
        var findError: (any Error)?
        do {
            let scratch = scratchBytes > 0 ? try context.allocator.allocate(scratchBytes) : nil
            try results.withUnsafeMutableBytes { raw in
                try api.check(
                    legacy.findForwardEx(
                        api.handle, plan.x, devicePointer(CUDAContext.address(x)), plan.w, devicePointer(CUDAContext.address(w)), plan.conv,
                        plan.y, devicePointer(CUDAContext.address(y)), requested, &returned, raw.baseAddress!,
                        scratch.map { devicePointer(CUDAContext.address($0)) } ?? nil, scratch == nil ? 0 : scratchBytes),
                    "cudnnFindConvolutionForwardAlgorithmEx")
            }
            withExtendedLifetime(scratch) {}
            if let best = candidates().first(where: { $0.memory <= scratchBytes && allowed($0.algo) && adopt(algo: $0.algo, math: $0.math, limit: limit) }) {
                plan.workspace = max(plan.workspace, best.memory)
                plan.measuredMilliseconds = best.time
                plan.chosenBy = "timed"
                return plan
            }
        } catch {
            findError = error
        }
        returned = 0
        try results.withUnsafeMutableBytes { raw in
            try api.check(
                legacy.getForwardV7(api.handle, plan.x, plan.w, plan.conv, plan.y, requested, &returned, raw.baseAddress!),
                "cudnnGetConvolutionForwardAlgorithm_v7")
        }
        for candidate in candidates() where allowed(candidate.algo) {
            guard adopt(algo: candidate.algo, math: candidate.math, limit: CUDNNConvolution.workspaceLimit) else { continue }
            plan.chosenBy = "heuristic" + (findError.map { " after find failed: \($0)" } ?? "")
            return plan
        }
        throw KinemaError.unsupported(
            "cuDNN has no forward algorithm for conv3d x \(key.input) w \(key.filter) \(key.dtype.rawValue)"
                + (findError.map { " (find: \($0))" } ?? ""))
    }
}
