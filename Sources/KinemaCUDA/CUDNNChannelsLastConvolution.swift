import Foundation
import KinemaCore

// conv3dChannelsLast through cuDNN's graph (backend) API. x [B, T, H, W, Cin] and the weight as stored,
// [Cout, kT, kH, kW, Cin], are described to cuDNN with its dims order ([N, C, D, H, W] and [K, C, T, R, S])
// and channels-last strides, so no copy is made; the output y is NDHWC as well. The bias (f32, [1, K, 1, 1, 1])
// and the residual (y's dtype and layout) are pointwise ADD nodes after the convolution, whose output is then a
// virtual f32 tensor: one rounding to the output dtype. Where cuDNN offers no engine for that fused graph,
// the convolution alone runs in cuDNN and `CUDABackend.addBiasResidual` adds the rest in one pass.
//
// `kinema cudnn-probe` measured these convolutions at 1.3–1.9× the legacy NCDHW path with no workspace
// (H100, 2026-11-27: 96 → 96 ch 480×832 3×3×3 4.11 → 2.19 ms). The VAE runs ~25 distinct problems hundreds
// of times, so a plan is built once per problem (shapes, stride, padding, dtype, fused inputs, pointer
// alignment) and cached with its descriptors.
//
// Plan choice: heuristics mode A's first `candidates` plans that fit the workspace limit are each timed
// (one warm-up, median of three runs, CUDA events) on the first call's own buffers, and the fastest is kept,
// as the legacy path times its algorithms: heuristics' first plan need not be the fastest, and timing a few
// costs milliseconds once per problem. (Finalizing a runtime-fusion plan may compile kernels: the first
// call of a problem can take much longer than the rest; `kinema cudnn-probe` reports it.) The choice is
// remembered beside the kernel cache (CUDNNPlanMemory): a later process finalizes only the winner.
//
// On a machine whose driver has not compiled cuDNN's generated kernels yet, each finalize is a PTX → SASS
// compile of 0.2–0.7 s instead of ~30 ms (H100, 2026-11-27: the first 480p decode of a fresh machine spent
// 45 s finalizing 4 candidates × 30 problems; with the driver's JIT cache disabled, 58 s; once the cache held
// them, 4.6 s). So once a candidate that fits the workspace limit takes longer than `coldFinalizeSeconds` to
// finalize, no further candidate is finalized: heuristics' first plan alone is used untimed, or the fastest of
// those built so far, and the choice is remembered as untimed. The timing bought < 1% of decode time (0.803 against 0.810 s), not worth
// more compiles a problem (first 480p decode of a fresh H100: 49.5 s → 18.4 s when only the first candidate
// stopped the choice). KINEMA_CUDNN_CANDIDATES set explicitly times every candidate however long it takes to
// finalize, and makes untimed remembered choices again.

final class CUDNNChannelsLastConvolution: @unchecked Sendable {
    struct Key: Hashable {
        var input: [Int]  // [B, T, H, W, Cin]
        var filter: [Int]  // [Cout, kT, kH, kW, Cin]
        var stride: [Int]
        var padding: [Int]
        var dtype: DType
        var bias: Bool
        var residual: Bool
        /// Whether bias and residual may be ADD nodes of the graph (KINEMA_FUSED=off: never).
        var fusion: Bool
        /// cuDNN BYTE_ALIGNMENT of x, w, y, bias and residual (0 where absent): engines specialize on it.
        var alignment: [Int]

        /// The problem as text, for the plan memory's key (with the lowering's version: bump
        /// `loweringVersion` when `lower` builds a different graph, so remembered choices are made again).
        var text: String {
            "channels-last conv3d lowering \(CUDNNChannelsLastConvolution.loweringVersion) x \(input) w \(filter) stride \(stride) padding \(padding) \(dtype.rawValue) bias \(bias) "
                + "residual \(residual) fusion \(fusion) alignment \(alignment)"
        }

        /// [B, T', H', W', Cout].
        var output: [Int] {
            var out = [input[0], 0, 0, 0, filter[0]]
            for axis in 0..<3 { out[1 + axis] = (input[1 + axis] + 2 * padding[axis] - filter[1 + axis]) / stride[axis] + 1 }
            return out
        }
    }

    /// A finalized plan with the descriptors it refers to.
    final class Plan {
        let graph: CUDNNGraphBuilder  // owns the tensor, operation and graph descriptors the plan was built from
        let plan: BackendDescriptor
        let workspace: Int
        let engineIndex: Int
        /// Bias and residual are added inside the graph; false: the caller adds them after the convolution.
        let fused: Bool
        let chosenBy: String
        let milliseconds: Double?
        /// Chosen without timing every candidate because a finalize compiled kernels (remembered as untimed).
        var untimed = false
        /// Host seconds spent finalizing each returned candidate plan (runtime-fusion engines compile there).
        var finalizeSeconds: [Double] = []
        /// Host seconds of the whole plan choice for this problem (see `run`).
        var setupSeconds = 0.0

        init(graph: CUDNNGraphBuilder, plan: BackendDescriptor, workspace: Int, engineIndex: Int, fused: Bool, chosenBy: String, milliseconds: Double?) {
            self.graph = graph
            self.plan = plan
            self.workspace = workspace
            self.engineIndex = engineIndex
            self.fused = fused
            self.chosenBy = chosenBy
            self.milliseconds = milliseconds
        }
    }

    /// The device buffers of one call, as cuDNN tensor ids 1–5.
    struct Buffers {
        var x: Tensor, w: Tensor, y: Tensor, bias: Tensor?, residual: Tensor?

        func bindings(fused: Bool) -> [(Int64, UnsafeMutableRawPointer?)] {
            var all: [(Int64, UnsafeMutableRawPointer?)] = [(1, pointer(x)), (2, pointer(w)), (3, pointer(y))]
            if fused, let bias { all.append((4, pointer(bias))) }
            if fused, let residual { all.append((5, pointer(residual))) }
            return all
        }

        private func pointer(_ t: Tensor) -> UnsafeMutableRawPointer? { devicePointer(CUDAContext.address(t)) }
    }

    let api: CUDNN
    private let lock = NSLock()
    private var plans: [Key: Result<Plan, any Error>] = [:]
    /// While `recordingProblems` runs: the new problems `forward` was asked for on the recording thread (and did
    /// not compute). Other threads' convolutions run as usual meanwhile.
    private var recorded: [Key]?
    private var recordingThread: pthread_t?
    /// The tags `claimPlanning` has handed out.
    private var planningTags: Set<String> = []
    /// Problems whose first plan the planning pass compiled (its finalize was slow: the driver's cache was cold).
    /// Their choice takes that plan untimed: finalizing a second candidate would compile again, one at a time.
    private var compiledByPlanning: Set<Key> = []
    /// Guards `compiledByPlanning` alone: the plan choice reads it while holding `lock` (NSLock is not recursive).
    private let planningLock = NSLock()
    /// Workspace bound, as the legacy path (CUDNNConvolution.workspaceLimit), also capped at a quarter of the
    /// free memory when the plan is chosen. The probe's NDHWC plans needed none.
    static let workspaceLimit = 2 << 30
    /// At most this many plans timed per new problem (KINEMA_CUDNN_CANDIDATES overrides: 1 takes heuristics' first
    /// plan untimed, for measuring what the choice costs on a first call against what it gains per call).
    static let candidates = RuntimeOptions.current.cudnnPlanCandidates
    /// A finalize slower than this means the kernels are being compiled (see the header).
    static let coldFinalizeSeconds = 0.15
    /// Whether a slow finalize ends the choice (not when KINEMA_CUDNN_CANDIDATES asked for timing).
    static let stopsOnCompile = candidates > 1 && !RuntimeOptions.current.cudnnPlanCandidatesRequested
    /// Version of the graph `lower` builds, part of the plan memory's key.
    static let loweringVersion = 1
    /// Choices made by earlier processes (nil: none kept). Used only when plans are timed (candidates > 1), so
    /// KINEMA_CUDNN_CANDIDATES=1 still measures heuristics' first plan.
    let memory: CUDNNPlanMemory?

    init(api: CUDNN, memory: CUDNNPlanMemory? = nil) {
        self.api = api
        self.memory = Self.candidates > 1 ? memory : nil
    }

    /// The key of a call. x, w, y (and residual) contiguous channels-last in one float dtype, bias f32 [Cout].
    static func key(_ buffers: Buffers, stride: [Int], padding: [Int], fusion: Bool) -> Key {
        let alignment = [buffers.x, buffers.w, buffers.y].map { cudnnAlignment(CUDAContext.address($0)) }
            + [buffers.bias, buffers.residual].map { $0.map { cudnnAlignment(CUDAContext.address($0)) } ?? 0 }
        return Key(
            input: buffers.x.shape, filter: buffers.w.shape, stride: stride, padding: padding, dtype: buffers.x.dtype,
            bias: buffers.bias != nil, residual: buffers.residual != nil, fusion: fusion, alignment: alignment)
    }

    /// y = conv(x, w) (+ bias + residual when the plan fused them). Returns whether it did: when false, the
    /// caller adds bias and residual to y. `fusion` false: the convolution-only graph whatever cuDNN offers.
    func forward(_ buffers: Buffers, stride: [Int], padding: [Int], fusion: Bool = true, context: CUDAContext) throws -> Bool {
        guard CUDNNCode.dataType(buffers.x.dtype) != nil, buffers.w.dtype == buffers.x.dtype, buffers.y.dtype == buffers.x.dtype,
            buffers.residual.map({ $0.dtype == buffers.x.dtype }) ?? true, buffers.bias.map({ $0.dtype == .f32 }) ?? true
        else {
            throw KinemaError.unsupported("cuDNN channels-last conv3d: x, w, y and residual need one float dtype and an f32 bias")
        }
        guard [buffers.x, buffers.w, buffers.y].allSatisfy(\.isContiguous), buffers.residual.map(\.isContiguous) ?? true else {
            throw KinemaError.unsupported("cuDNN channels-last conv3d: needs contiguous tensors")
        }
        let key = Self.key(buffers, stride: stride, padding: padding, fusion: fusion)
        let onlyRecorded = lock.withLock { () -> Bool in
            guard recorded != nil, let thread = recordingThread, pthread_equal(thread, pthread_self()) != 0 else { return false }
            if plans[key] == nil, recorded?.contains(key) == false { recorded?.append(key) }
            return true
        }
        if onlyRecorded { return true }  // y left as it is: the planning pass discards what it computes
        try context.makeCurrent()
        let plan = try lock.withLock { () throws -> Plan in
            if let cached = plans[key] { return try cached.get() }
            let started = DispatchTime.now().uptimeNanoseconds
            let made = Result { try build(key, buffers: buffers, context: context) }
            // The whole first-call cost of the problem: graphs, heuristics, every finalize (a fused attempt that
            // fell back included) and the timing runs.
            if case .success(let plan) = made { plan.setupSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9 }
            plans[key] = made
            return try made.get()
        }
        let workspace = plan.workspace > 0 ? try context.allocator.allocate(plan.workspace) : nil
        do {
            try context.profiled("cudnn conv3d channels-last \(key.dtype.rawValue)") {
                try api.execute(
                    plan: plan.plan, bindings: buffers.bindings(fused: plan.fused),
                    workspace: workspace.map { devicePointer(CUDAContext.address($0)) } ?? nil)
            }
        } catch {
            lock.withLock { plans[key] = .failure(error) }  // later calls of this problem go straight to the fallback
            throw error
        }
        withExtendedLifetime(workspace) {}
        return plan.fused
    }

    /// The cached problems and their plans, for diagnostics.
    func describePlans() -> [String] {
        lock.withLock {
            plans.map { key, result in
                let extras = (key.bias ? " +bias" : "") + (key.residual ? " +residual" : "") + (key.fusion ? "" : " (unfused)")
                let shape = "x \(key.input) w \(key.filter) stride \(key.stride) \(key.dtype.rawValue)\(extras)"
                switch result {
                case .success(let plan):
                    let time = (plan.milliseconds.map { String(format: ", %.3f ms", $0) } ?? "")
                        + String(format: ", setup %.0f ms", plan.setupSeconds * 1e3)
                        + " (finalize " + plan.finalizeSeconds.map { String(format: "%.0f", $0 * 1e3) }.joined(separator: "/") + " ms)"
                    let epilogue = plan.fused || !(key.bias || key.residual) ? "" : ", bias/residual by Kinema's kernel"
                    return "\(shape): engine \(plan.engineIndex) (\(plan.chosenBy)\(time)), workspace \(plan.workspace) B\(epilogue)"
                case .failure(let error): return "\(shape): no plan (\(error))"
                }
            }
        }
    }

    /// The operation graph of `key` into `builder` (no handle needed: descriptors finalize without a GPU).
    /// `fused`: bias and residual as ADD nodes after the convolution; otherwise the convolution alone.
    func lower(_ key: Key, fused: Bool, into builder: CUDNNGraphBuilder) throws {
        guard let dtype = CUDNNCode.dataType(key.dtype), key.input.count == 5, key.filter.count == 5,
            key.stride.count == 3, key.padding.count == 3, key.alignment.count == 5
        else {
            throw KinemaError.unsupported("cuDNN channels-last conv3d: malformed problem \(key)")
        }
        /// Dims [N, C, D, H, W] and their strides for a contiguous [N, D, H, W, C] tensor.
        func channelsLast(_ shape: [Int]) -> (dims: [Int], strides: [Int]) {
            let (n, d, h, w, c) = (shape[0], shape[1], shape[2], shape[3], shape[4])
            return ([n, c, d, h, w], [d * h * w * c, 1, h * w * c, w * c, c])
        }
        let out = key.output
        let (x, w, y) = (channelsLast(key.input), channelsLast(key.filter), channelsLast(out))
        let tx = try builder.tensor("x", dims: x.dims, strides: x.strides, dtype: dtype, id: 1, alignment: key.alignment[0])
        let tw = try builder.tensor("w", dims: w.dims, strides: w.strides, dtype: dtype, id: 2, alignment: key.alignment[1])
        let ty = try builder.tensor("y", dims: y.dims, strides: y.strides, dtype: dtype, id: 3, alignment: key.alignment[2])
        let epilogue = fused && (key.bias || key.residual)
        let convOut = epilogue
            ? try builder.tensor("conv", dims: y.dims, strides: y.strides, dtype: CUDNNCode.float, virtual: true).descriptor : ty.descriptor
        try builder.convolutionForward(
            "channels-last", x: tx.descriptor, w: tw.descriptor, y: convOut, pre: key.padding, post: key.padding, stride: key.stride)
        guard epilogue else { return }
        var current = convOut
        if key.bias {
            let k = key.filter[0]
            let tb = try builder.tensor("bias", dims: [1, k, 1, 1, 1], strides: [k, 1, k, k, k], dtype: CUDNNCode.float, id: 4, alignment: key.alignment[3])
            let sum = key.residual
                ? try builder.tensor("conv+bias", dims: y.dims, strides: y.strides, dtype: CUDNNCode.float, virtual: true).descriptor : ty.descriptor
            try builder.pointwise("bias", mode: CUDNNCode.add, x: current, b: tb.descriptor, y: sum)
            current = sum
        }
        if key.residual {
            let tr = try builder.tensor("residual", dims: y.dims, strides: y.strides, dtype: dtype, id: 5, alignment: key.alignment[4])
            try builder.pointwise("residual", mode: CUDNNCode.add, x: current, b: tr.descriptor, y: ty.descriptor)
        }
    }

    /// The remembered plan where an earlier process chose one (and it still finalizes within the workspace
    /// limit), else a new choice, which is then remembered.
    private func build(_ key: Key, buffers: Buffers, context: CUDAContext) throws -> Plan {
        let limit = workspaceLimit(context)
        if let memory, let choice = memory.recall(key.text), choice.fused == false || key.fusion, choice.workspaceLimit >= limit,
            choice.timed || Self.stopsOnCompile, let plan = try? recalled(key, choice, limit: limit)
        {
            return plan
        }
        let plan = try choose(key, buffers: buffers, limit: limit, context: context)
        memory?.remember(key.text, .init(fused: plan.fused, config: plan.engineIndex, workspaceLimit: limit, timed: !plan.untimed))
        return plan
    }

    private func recalled(_ key: Key, _ choice: CUDNNPlanMemory.Choice, limit: Int) throws -> Plan {
        let builder = CUDNNGraphBuilder(api)
        try lower(key, fused: choice.fused, into: builder)
        let only = try builder.plans(limit: 1, maxWorkspace: limit, onlyConfig: choice.config)[0]
        let plan = Plan(graph: builder, plan: only.plan, workspace: only.workspace, engineIndex: only.engineIndex, fused: choice.fused,
            chosenBy: choice.timed ? "remembered from an earlier process" : "remembered from an earlier process, untimed", milliseconds: nil)
        plan.finalizeSeconds = [only.finalizeSeconds]
        return plan
    }

    /// Workspace bytes a plan may use: a quarter of the free memory, at most `workspaceLimit`, rounded down to a
    /// power of two so that the remembered choices' limit does not move with every MB the allocator caches.
    func workspaceLimit(_ context: CUDAContext) -> Int {
        let free = (try? context.memoryInfo().free) ?? 0
        let limit = min(Self.workspaceLimit, max(0, free / 4))
        return limit == 0 ? 0 : 1 << (Int.bitWidth - 1 - limit.leadingZeroBitCount)
    }

    /// The fused graph's plan, or the convolution-only graph's when cuDNN has none for the fused one.
    private func choose(_ key: Key, buffers: Buffers, limit: Int, context: CUDAContext) throws -> Plan {
        guard key.fusion, key.bias || key.residual else { return try choose(key, fused: false, buffers: buffers, limit: limit, context: context) }
        do {
            return try choose(key, fused: true, buffers: buffers, limit: limit, context: context)
        } catch let fusedError {
            do {
                return try choose(key, fused: false, buffers: buffers, limit: limit, context: context)
            } catch {
                throw KinemaError.unsupported("cuDNN channels-last conv3d: fused graph: \(fusedError); convolution alone: \(error)")
            }
        }
    }

    /// Builds the graph, takes heuristics' first plans within the workspace limit, and keeps the fastest.
    private func choose(_ key: Key, fused: Bool, buffers: Buffers, limit: Int, context: CUDAContext) throws -> Plan {
        let builder = CUDNNGraphBuilder(api)
        try lower(key, fused: fused, into: builder)
        // Plans over the workspace limit are skipped without counting, so KINEMA_CUDNN_CANDIDATES=1 still gets a plan
        // that fits where one exists (the error lists each config's reason otherwise).
        let planned = Self.stopsOnCompile && planningLock.withLock { compiledByPlanning.contains(key) }
        let fitting = try builder.plans(
            limit: planned ? 1 : Self.candidates, maxWorkspace: limit,
            stopAfterSlowFinalize: Self.stopsOnCompile ? Self.coldFinalizeSeconds : nil)
        // Fewer than asked because a finalize compiled kernels while configs were left untried (see the header), or
        // because the planning pass compiled the first plan on a cold driver cache.
        let cutShort = builder.plansStoppedEarly || (planned && Self.candidates > 1)
        if fitting.count == 1 {
            let only = fitting[0]
            let plan = Plan(graph: builder, plan: only.plan, workspace: only.workspace, engineIndex: only.engineIndex, fused: fused,
                chosenBy: Self.candidates == 1 ? "heuristics' first, untimed"
                    : planned ? "heuristics' first, untimed: compiled by the planning pass"
                    : cutShort ? "heuristics' first, untimed: its finalize compiled kernels" : "only plan",
                milliseconds: nil)
            plan.finalizeSeconds = fitting.map(\.finalizeSeconds)
            plan.untimed = cutShort
            return plan
        }
        let bindings = buffers.bindings(fused: fused)
        var best: (index: Int, milliseconds: Double)?
        var failures: [String] = []
        for (index, candidate) in fitting.enumerated() {
            do {
                let workspace = candidate.workspace > 0 ? try context.allocator.allocate(candidate.workspace) : nil
                let pointer = workspace.map { devicePointer(CUDAContext.address($0)) } ?? nil
                try api.execute(plan: candidate.plan, bindings: bindings, workspace: pointer)  // warm-up
                var times: [Double] = []
                for _ in 0..<3 {
                    times.append(try context.timedOnGPU { try api.execute(plan: candidate.plan, bindings: bindings, workspace: pointer) }.seconds)
                }
                withExtendedLifetime(workspace) {}
                let median = times.sorted()[1] * 1e3
                if median < best?.milliseconds ?? .infinity { best = (index, median) }
            } catch {
                failures.append("engine \(candidate.engineIndex): \(error)")
            }
        }
        guard let best else {
            throw KinemaError.unsupported("no cuDNN plan ran: " + failures.joined(separator: "; "))
        }
        let chosen = fitting[best.index]
        let plan = Plan(
            graph: builder, plan: chosen.plan, workspace: chosen.workspace, engineIndex: chosen.engineIndex, fused: fused,
            chosenBy: "fastest of \(fitting.count) timed" + (cutShort ? ", the last one's finalize compiled kernels" : ""),
            milliseconds: best.milliseconds)
        plan.finalizeSeconds = fitting.map(\.finalizeSeconds)
        plan.untimed = cutShort
        return plan
    }
}

// Planning pass (`CUDABackend.planningConvolutions`): on a machine whose driver has not compiled cuDNN's kernels,
// each problem's first finalize compiles for 0.2–0.9 s, and a 480p decode meets its 30 problems one after another
// (≈ 15–27 s, docs/PERF.md, seventh session). A model that knows its problems in advance (the VAE: its first two
// latent frames hold them all) runs a pass that only records them, and `prepare` finalizes heuristics' first plan
// of each on every core, each worker with a cuDNN handle of its own. The plans are dropped: what stays is the
// compiled kernels, so the plan choice that follows finalizes at the cached speed; a problem whose plan the pass
// had to compile takes that plan untimed (timing a second candidate would compile again, one at a time).
// Off by default (KINEMA_CONV_PLANNING): measured on an H100 with a cold driver cache, the pass compiled the 30
// first plans in ≈ 3–4 s, but without the untimed rule each choice then compiled its second candidate (first
// decode 21.2 s against 15.2 s without the pass); the rule is not measured yet. Known weakness: the pass times its
// finalizes while 16 run at once, so a plan found in the driver's cache could still read as compiled under that
// contention and be taken untimed.
extension CUDNNChannelsLastConvolution {
    /// True the first time `tag` is asked for (a model's pass of one shape is planned once a process).
    func claimPlanning(_ tag: String) -> Bool { lock.withLock { planningTags.insert(tag).inserted } }

    /// Runs `body` with `forward` recording this thread's new problems instead of computing them, then prepares
    /// them. While another thread records, it does nothing (that pass plans for both).
    func recordingProblems(_ body: () throws -> Void, context: CUDAContext) throws {
        let began = lock.withLock { () -> Bool in
            guard recorded == nil else { return false }
            recorded = []
            recordingThread = pthread_self()
            return true
        }
        guard began else { return }
        func stop() -> [Key] {
            lock.withLock {
                defer { (recorded, recordingThread) = (nil, nil) }
                return recorded ?? []
            }
        }
        let keys: [Key]
        do {
            try body()
            keys = stop()
        } catch {
            _ = stop()
            throw error
        }
        prepare(keys, context: context)
    }

    /// Finalizes heuristics' first plan of each problem not chosen before (here or in an earlier process), in
    /// parallel; failures are left for the plan choice to meet and report. Problems whose finalize compiled
    /// (slower than `coldFinalizeSeconds`) go into `compiledByPlanning`.
    private func prepare(_ keys: [Key], context: CUDAContext) {
        let fresh = keys.filter { memory?.recall($0.text) == nil }
        guard !fresh.isEmpty else { return }
        let limit = workspaceLimit(context)
        let queue = WorkIndex(count: fresh.count)
        let workers = min(fresh.count, max(1, ProcessInfo.processInfo.activeProcessorCount))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            guard (try? context.makeCurrent()) != nil, let worker = try? CUDNN(context: context) else { return }
            while let index = queue.next() {
                let key = fresh[index]
                for fused in key.fusion && (key.bias || key.residual) ? [true, false] : [false] {
                    let builder = CUDNNGraphBuilder(worker)
                    guard (try? lower(key, fused: fused, into: builder)) != nil,
                        let first = (try? builder.plans(limit: 1, maxWorkspace: limit))?.first
                    else { continue }
                    if first.finalizeSeconds > Self.coldFinalizeSeconds { planningLock.withLock { _ = compiledByPlanning.insert(key) } }
                    break
                }
            }
        }
    }
}

/// Hands out 0..<count once each across threads.
private final class WorkIndex: @unchecked Sendable {
    private let lock = NSLock()
    private var cursor = 0
    private let count: Int

    init(count: Int) { self.count = count }

    func next() -> Int? {
        lock.withLock {
            guard cursor < count else { return nil }
            cursor += 1
            return cursor - 1
        }
    }
}
