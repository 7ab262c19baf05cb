import Foundation
import KinemaCore

// Compiles kernel sources with NVRTC once per process and caches the cubins on disk, keyed by
// (engine version, NVRTC version, architecture, options, full source). A cache file holds the key text
// followed by the cubin, and is used only when the stored key matches exactly.

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
    private(set) lazy var nvrtc: Result<NVRTCAPI, any Error> = Result { try NVRTCAPI() }
    private(set) var compiled = 0
    private(set) var loadedFromDisk = 0

    init(context: CUDAContext) { self.context = context }

    var options: [String] { ["--gpu-architecture=\(context.architecture)", "--std=c++17", "-default-device"] }

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
        let compiler = try nvrtc.get()
        let key = ["kinema \(KinemaEngine.version)", "nvrtc \(compiler.version)", context.architecture, options.joined(separator: " "), source]
            .joined(separator: "\n")
        let cubin: [UInt8]
        if let cached = readCache(key: key) {
            cubin = cached
            loadedFromDisk += 1
        } else {
            cubin = try compiler.compile(source: source, name: "kinema_kernels.cu", options: options)
            compiled += 1
            writeCache(key: key, cubin: cubin)
        }
        try context.makeCurrent()
        var module: CUhandle?
        try cubin.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { throw KinemaError.unsupported("empty cubin") }
            try context.driver.check(context.driver.cuModuleLoadData(&module, base), "cuModuleLoadData")
        }
        lock.withLock { modules[source] = module }
        return module
    }

    private var disk: KeyedFileCache { KeyedFileCache(folder: RuntimeOptions.current.kernelCacheDirectory, suffix: ".cubin") }

    private func readCache(key: String) -> [UInt8]? {
        guard let cubin = disk.read(key: key), !cubin.isEmpty else { return nil }
        return cubin
    }

    private func writeCache(key: String, cubin: [UInt8]) { disk.write(key: key, payload: cubin) }
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
