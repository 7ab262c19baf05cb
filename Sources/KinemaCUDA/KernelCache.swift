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
    private var functions: [String: CUhandle?] = [:]
    private(set) lazy var nvrtc: Result<NVRTCAPI, any Error> = Result { try NVRTCAPI() }
    private(set) var compiled = 0
    private(set) var loadedFromDisk = 0

    init(context: CUDAContext) { self.context = context }

    var options: [String] { ["--gpu-architecture=\(context.architecture)", "--std=c++17", "-default-device"] }

    /// The function `name` from the module built from `source`.
    func function(_ name: String, in source: String) throws -> CUhandle? {
        let cacheKey = name + "\u{0}" + source
        if let cached = lock.withLock({ functions[cacheKey] }) { return cached }
        let module = try self.module(for: source)
        var function: CUhandle?
        try context.driver.check(context.driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
        lock.withLock { functions[cacheKey] = function }
        return function
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

    private func cachePath(key: String) -> String? {
        guard let folder = RuntimeOptions.current.kernelCacheDirectory else { return nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var second: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in key.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            second = (second &+ UInt64(byte)) &* 0x9E37_79B9_7F4A_7C15
        }
        return folder + "/" + String(hash, radix: 16) + String(second, radix: 16) + ".cubin"
    }

    private func readCache(key: String) -> [UInt8]? {
        guard let path = cachePath(key: key), let data = FileManager.default.contents(atPath: path) else { return nil }
        let keyBytes = Array(key.utf8)
        guard data.count > keyBytes.count + 8 else { return nil }
        let bytes = [UInt8](data)
        let stored = bytes[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard stored == keyBytes.count, Array(bytes[8..<(8 + stored)]) == keyBytes else { return nil }
        return Array(bytes[(8 + stored)...])
    }

    private func writeCache(key: String, cubin: [UInt8]) {
        guard let path = cachePath(key: key) else { return }
        let keyBytes = Array(key.utf8)
        var data = (0..<8).map { UInt8(truncatingIfNeeded: keyBytes.count >> (8 * $0)) }
        data += keyBytes
        data += cubin
        let folder = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let temporary = path + ".tmp\(getpid())"
        if FileManager.default.createFile(atPath: temporary, contents: Data(data)) {
            _ = rename(temporary, path)
        }
    }
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
