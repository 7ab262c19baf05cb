import Foundation
import KinemaCore

// Compiles kernel sources with NVRTC once per process and caches the cubins on disk, keyed by
// (engine version, NVRTC version, architecture, options, full source). A cache file holds the key text
// followed by the cubin, and is used only when the stored key matches exactly. The CUDA backend starts
// compiling the catalogue's sources on every core when it is created (KINEMA_KERNEL_PREWARM).

public enum KinemaEngine {
    public static let version = "0.1.0-dev"
}

final class KernelCache: @unchecked Sendable {
    private unowned let context: CUDAContext
    private let lock = NSLock()
    private var modules: [String: CUhandle?] = [:]
    /// Loaded functions by kernel name, each with the source it came from (a name can be built from several
    /// sources: one per dtype). Looked up by the short name, then the source's bytes compared: every launch passes
    /// its source, and hashing it (10 KB for the row kernels) cost 60–80 µs a launch on the 2-core dev VM against
    /// ≈ 1 µs for the comparison (debug build, 2,000 lookups).
    private var functions: [String: [(source: String, function: CUhandle?)]] = [:]
    /// The cubins: NVRTC, the disk cache, and the compiles started ahead of their first launch.
    let binaries: KernelBinaries

    init(context: CUDAContext) {
        self.context = context
        binaries = KernelBinaries(architecture: context.architecture, folder: RuntimeOptions.current.kernelCacheDirectory)
    }

    var nvrtc: Result<NVRTCAPI, any Error> { binaries.nvrtc }

    /// Starts compiling the catalogue's f32 and bf16 sources in the background (once a process; see
    /// `KernelBinaries.prewarm`). The fallback kernels (tiled GEMM, direct conv3d, plain attention), which the
    /// cuBLASLt / cuDNN paths rarely leave to run, come last.
    func prewarmCatalog() {
        let catalog = KernelCatalog.sources(floats: [.bf16, .f32], hopper: binaries.architecture == "sm_90a")
        let fallback = ["gemm ", "conv3d ", "attention "]
        let ordered = catalog.filter { item in !fallback.contains { item.label.hasPrefix($0) } }
            + catalog.filter { item in fallback.contains { item.label.hasPrefix($0) } }
        binaries.prewarm(ordered.map(\.source))
    }
    var compiled: Int { binaries.counts.compiled }
    var loadedFromDisk: Int { binaries.counts.fromDisk }

    /// The function `name` from the module built from `source`.
    func function(_ name: String, in source: String) throws -> CUhandle? {
        if let cached = lock.withLock({ functions[name]?.first(where: { Self.sameBytes($0.source, source) }) }) { return cached.function }
        let module = try self.module(for: source)
        var function: CUhandle?
        try context.driver.check(context.driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
        lock.withLock { functions[name, default: []].append((source, function)) }
        return function
    }

    /// Byte equality of two texts (memcmp; String's == compares by Unicode canonical equivalence, ≈ 10× slower).
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        guard a.utf8.count == b.utf8.count else { return false }
        return a.withUTF8 { left in b.withUTF8 { right in left.count == 0 || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0 } }
    }

    private func module(for source: String) throws -> CUhandle? {
        if let existing = lock.withLock({ modules[source] }) { return existing }
        let cubin = try binaries.cubin(for: source)
        try context.makeCurrent()
        var module: CUhandle?
        try cubin.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { throw KinemaError.unsupported("empty cubin") }
            try context.driver.check(context.driver.cuModuleLoadData(&module, base), "cuModuleLoadData")
        }
        lock.withLock { modules[source] = module }
        return module
    }
}

/// Kernel sources → cubins for one architecture: NVRTC once per process, the disk cache keyed by (engine
/// version, NVRTC version, architecture, options, full source). Thread-safe: a source asked for while another
/// thread compiles it waits for that compile instead of starting its own, so `prewarm` can compile a list of
/// sources on every core ahead of their first launch — on a machine with an empty cache, compiling one at a time,
/// the first umT5 encode took 3.7 s and the DiT's first step 4.2 s (0.67 s and 2.75 s with the prewarm; docs/PERF.md,
/// seventh session).
final class KernelBinaries: @unchecked Sendable {
    let architecture: String
    let options: [String]
    private let folder: String?
    private let state = NSCondition()
    private var compilerResult: Result<NVRTCAPI, any Error>?
    private var ready: [String: [UInt8]] = [:]
    private var inFlight: Set<String> = []
    private var compiledCount = 0
    private var fromDiskCount = 0
    private var prewarmStarted = false
    private var prewarmCancelled = false
    private let prewarming = DispatchGroup()

    init(architecture: String, folder: String?, compiler: Result<NVRTCAPI, any Error>? = nil) {
        self.architecture = architecture
        self.folder = folder
        options = ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"]
        compilerResult = compiler
    }

    /// NVRTC, loaded on first use (once, whichever thread asks first).
    var nvrtc: Result<NVRTCAPI, any Error> {
        state.lock()
        defer { state.unlock() }
        if let compilerResult { return compilerResult }
        let loaded = Result { try NVRTCAPI() }
        compilerResult = loaded
        return loaded
    }

    /// Sources compiled by NVRTC and read from the disk cache, so far.
    var counts: (compiled: Int, fromDisk: Int) {
        state.lock()
        defer { state.unlock() }
        return (compiledCount, fromDiskCount)
    }

    /// The cubin of `source`: compiled earlier in this process, on disk, being compiled by another thread
    /// (waited for), or compiled now.
    func cubin(for source: String) throws -> [UInt8] {
        let compiler = try nvrtc.get()
        let key = ["kinema \(KinemaEngine.version)", "nvrtc \(compiler.version)", architecture, options.joined(separator: " "), source]
            .joined(separator: "\n")
        state.lock()
        while true {
            if let done = ready[key] {
                state.unlock()
                return done
            }
            if !inFlight.contains(key) { break }
            state.wait()
        }
        inFlight.insert(key)
        state.unlock()
        var result: [UInt8]?
        var fromDisk = false
        defer {
            state.lock()
            inFlight.remove(key)
            if let result {
                ready[key] = result
                if fromDisk { fromDiskCount += 1 } else { compiledCount += 1 }
            }
            state.broadcast()
            state.unlock()
        }
        if let cached = disk.read(key: key), !cached.isEmpty {
            fromDisk = true
            result = cached
        } else {
            let built = try compiler.compile(source: source, name: "kinema_kernels.cu", options: options)
            disk.write(key: key, payload: built)
            result = built
        }
        return result!
    }

    /// Compiles (or reads from disk) every source not ready yet, on all cores, on a background queue; returns at
    /// once. Only the first call of a process starts anything. Failures are left for the launch to report.
    func prewarm(_ sources: [String], completion: (@Sendable () -> Void)? = nil) {
        let start = state.withLock { () -> Bool in
            defer { prewarmStarted = true }
            return !prewarmStarted
        }
        guard start, case .success = nvrtc else {
            completion?()
            return
        }
        Self.stopAtExit(self)
        prewarming.enter()
        DispatchQueue.global(qos: .userInitiated).async {
            DispatchQueue.concurrentPerform(iterations: sources.count) { index in
                if self.state.withLock({ self.prewarmCancelled }) { return }
                _ = try? self.cubin(for: sources[index])
            }
            completion?()
            self.prewarming.leave()
        }
    }

    /// No further prewarm compiles start; waits (up to 10 s) for those running. At process exit (a short command
    /// must not leave threads inside NVRTC while the process tears down).
    func stopPrewarm() {
        state.withLock { prewarmCancelled = true }
        _ = prewarming.wait(timeout: .now() + 10)
    }

    private static let exitLock = NSLock()
    nonisolated(unsafe) private static var prewarmed: [KernelBinaries] = []

    private static func stopAtExit(_ binaries: KernelBinaries) {
        let first = exitLock.withLock { () -> Bool in
            prewarmed.append(binaries)
            return prewarmed.count == 1
        }
        if first { atexit { KernelBinaries.exitLock.withLock { KernelBinaries.prewarmed }.forEach { $0.stopPrewarm() } } }
    }

    private var disk: KeyedFileCache { KeyedFileCache(folder: folder, suffix: ".cubin") }
}

/// Kernel launch arguments: each value is copied into its own buffer; cuLaunchKernel gets their addresses.
struct KernelArguments {
    private var buffers: [UnsafeMutableRawPointer] = []

    mutating func append<T>(_ value: T) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(MemoryLayout<T>.size, 1), alignment: max(MemoryLayout<T>.alignment, 8))
        buffer.storeBytes(of: value, as: T.self)
        buffers.append(buffer)
    }

    func withPointers<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws -> R) rethrows -> R {
        var pointers: [UnsafeMutableRawPointer?] = buffers
        return try pointers.withUnsafeMutableBufferPointer { try body($0.baseAddress) }
    }

    func release() { buffers.forEach { $0.deallocate() } }
}
