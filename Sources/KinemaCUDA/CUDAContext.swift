import Foundation
import KinemaCore

// One GPU: its primary context, the stream all Kinema work is ordered on, the caching allocator and the
// kernel cache. Everything runs on a single stream, so a freed block can be reused by later work
// without synchronizing (stream order guarantees the earlier kernels are done with it).

public final class CUDAContext: @unchecked Sendable {
    let driver: CUDADriverAPI
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessors: Int
    public let totalMemory: Int
    public let driverVersion: Int
    let context: CUhandle?
    let stream: CUhandle?
    let allocator: CUDAAllocator
    private(set) lazy var kernels = KernelCache(context: self)
    /// cuBLASLt, or why it is unavailable (then GEMMs use Kinema's own kernel).
    private(set) lazy var blasLt: Result<CUBLASLt, any Error> = Result { try CUBLASLt(context: self) }
    /// cuDNN with a handle on this context's stream, or why it is unavailable (Kinema's kernels are used).
    private(set) lazy var cudnn: Result<CUDNN, any Error> = Result { try CUDNN(context: self) }
    /// cuDNN fused attention (plan cache), when cuDNN loaded.
    private(set) lazy var cudnnAttention: Result<CUDNNAttention, any Error> = cudnn.map { CUDNNAttention(api: $0) }
    /// cuDNN convolutions (algorithm cache), when cuDNN loaded with its convolution API.
    private(set) lazy var cudnnConvolution: Result<CUDNNConvolution, any Error> = cudnn.flatMap { api in
        Result { try CUDNNConvolution(api: api) }
    }
    /// cuDNN graph-API convolutions on channels-last tensors (plan cache), when cuDNN loaded.
    private(set) lazy var cudnnChannelsLast: Result<CUDNNChannelsLastConvolution, any Error> = cudnn.map { api in
        let environment = "kinema \(KinemaEngine.version), cuDNN \(api.version), driver \(driverVersion), \(name) sm_\(computeCapability.0)"
            + "\(computeCapability.1) \(multiprocessors) SMs, \(CUDNNChannelsLastConvolution.candidates) candidates timed"
        return CUDNNChannelsLastConvolution(
            api: api, memory: CUDNNPlanMemory(folder: RuntimeOptions.current.kernelCacheDirectory, environment: environment))
    }
    let warningLock = NSLock()
    var warnedKeys: Set<String> = []
    /// Pinned double buffer for large host↔device copies (allocated on first use).
    private lazy var staging = PinnedStaging(driver: driver, stream: stream)
    /// Pinned buffers of the overlapped downloads (CUDAHostDownloads), allocated on first use; nil where
    /// pinned memory is not available.
    var downloadRing: PinnedRing? {
        ringLock.withLock {
            if let made = ringStorage { return made }
            let made = PinnedRing(driver: driver)
            ringStorage = .some(made)
            return made
        }
    }
    private let ringLock = NSLock()
    private var ringStorage: PinnedRing??

    var profiler: KernelProfiler?
    let profilerLock = NSLock()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var contexts: [Int: CUDAContext] = [:]

    /// The context for device `ordinal`, created once per process.
    public static func shared(ordinal: Int = 0) throws -> CUDAContext {
        lock.lock()
        defer { lock.unlock() }
        if let existing = contexts[ordinal] { return existing }
        let created = try CUDAContext(ordinal: ordinal)
        _ = created.kernels  // made here, under the lock: backends created on several threads share one kernel cache
        contexts[ordinal] = created
        return created
    }

    private init(ordinal: Int) throws {
        let driver = try CUDADriverAPI()
        self.driver = driver
        self.ordinal = ordinal
        try driver.check(driver.cuInit(0), "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0, ordinal < Int(count) else {
            throw KinemaError.invalidArgument("cuda:\(ordinal) requested but \(count) CUDA device(s) are present")
        }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, device), "cuDeviceGetName")
        name = String(decoding: nameBuffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        func attribute(_ code: Int32) throws -> Int {
            var value: Int32 = 0
            try driver.check(driver.cuDeviceGetAttribute(&value, code, device), "cuDeviceGetAttribute(\(code))")
            return Int(value)
        }
        computeCapability = (try attribute(75), try attribute(76))  // COMPUTE_CAPABILITY_MAJOR / MINOR
        multiprocessors = try attribute(16)  // MULTIPROCESSOR_COUNT
        var total = 0
        try driver.check(driver.cuDeviceTotalMem(&total, device), "cuDeviceTotalMem")
        totalMemory = total
        var version: Int32 = 0
        try driver.check(driver.cuDriverGetVersion(&version), "cuDriverGetVersion")
        driverVersion = Int(version)
        var context: CUhandle?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        self.context = context
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        var stream: CUhandle?
        try driver.check(driver.cuStreamCreate(&stream, 1), "cuStreamCreate")  // non-blocking
        self.stream = stream
        allocator = CUDAAllocator(driver: driver, device: .cuda(ordinal), budget: RuntimeOptions.current.maxDeviceMemory)
    }

    /// Makes this context current on the calling thread (the driver keeps one current context per thread).
    func makeCurrent() throws { try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent") }

    /// Caps the bytes Kinema's allocator may hold on this device (`--max-vram`); nil removes the cap.
    public func setMemoryBudget(_ bytes: Int?) { allocator.setBudget(bytes) }

    public func synchronize() throws {
        try makeCurrent()
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// Free and total device memory as the driver reports them.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        try makeCurrent()
        var free = 0
        var total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return (free, total)
    }

    public var driverLibraryPath: String { driver.library.path }

    /// NVRTC's version and library path, or why it could not be loaded.
    public var nvrtcDescription: String {
        switch kernels.nvrtc {
        case .success(let api): return "\(api.version) (\(api.library.path))"
        case .failure(let error): return "not available: \(error)"
        }
    }

    /// cuBLASLt's version and library path, or why it could not be loaded.
    public var cublasLtDescription: String {
        switch blasLt {
        case .success(let api): return "\(api.version) (\(api.path))"
        case .failure(let error): return "not available (GEMMs use the built-in kernel): \(error)"
        }
    }

    /// Kernels compiled by NVRTC and kernels read from the disk cache in this process.
    public var kernelCompileCounts: (compiled: Int, fromDisk: Int) { (kernels.compiled, kernels.loadedFromDisk) }

    /// Bytes held by Kinema's allocator: in use now, at the peak, and cached for reuse.
    public var memoryUse: (inUse: Int, peak: Int, cached: Int) {
        (allocator.bytesInUse, allocator.peakBytesInUse, allocator.bytesCached)
    }

    /// The blocks in use at the last peak, largest share first: (rounded block bytes, how many).
    public var blocksAtPeak: [(bytes: Int, count: Int)] {
        allocator.blocksAtPeak.filter { $0.value > 0 }.map { (bytes: $0.key, count: $0.value) }
            .sorted { $0.bytes * $0.count > $1.bytes * $1.count }
    }

    /// Architecture string for NVRTC: sm_90a on Hopper (wgmma), sm_XY elsewhere.
    public var architecture: String {
        let (major, minor) = computeCapability
        return major == 9 && minor == 0 ? "sm_90a" : "sm_\(major)\(minor)"
    }

    static func address(_ storage: Storage) -> CUdeviceptr { CUdeviceptr(UInt(bitPattern: storage.base)) }

    /// Device address of element 0 of a CUDA tensor view.
    static func address(_ tensor: Tensor) -> CUdeviceptr {
        address(tensor.storage) + CUdeviceptr(tensor.offset * tensor.dtype.byteSize)
    }

    func copyToDevice(_ source: UnsafeRawPointer, _ destination: CUdeviceptr, bytes: Int) throws {
        guard bytes > 0 else { return }
        try makeCurrent()
        if bytes >= PinnedStaging.minimumBytes, try staging.upload(source, to: destination, bytes: bytes) { return }
        try driver.check(driver.cuMemcpyHtoDAsync(destination, source, bytes, stream), "cuMemcpyHtoDAsync")
        // The host buffer may be freed by the caller right after: wait for the (staged) copy.
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    func copyToHost(_ source: CUdeviceptr, _ destination: UnsafeMutableRawPointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        try makeCurrent()
        if bytes >= PinnedStaging.minimumBytes, try staging.download(source, to: destination, bytes: bytes) { return }
        try driver.check(driver.cuMemcpyDtoHAsync(destination, source, bytes, stream), "cuMemcpyDtoHAsync")
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    func memset(_ destination: CUdeviceptr, bytes: Int) throws {
        guard bytes > 0 else { return }
        try driver.check(driver.cuMemsetD8Async(destination, 0, bytes, stream), "cuMemsetD8Async")
    }
}

/// A stream-ordered caching allocator: freed blocks go to per-size free lists and are reused; a failed
/// allocation first returns the cache to the driver and retries; an optional budget caps the total.
final class CUDAAllocator: @unchecked Sendable {
    private let driver: CUDADriverAPI
    private let device: Device
    private var budget: Int?
    private let lock = NSLock()
    private var free: [Int: [CUdeviceptr]] = [:]
    private(set) var bytesInUse = 0
    private(set) var bytesCached = 0
    private(set) var peakBytesInUse = 0
    /// Blocks in use by rounded size (size → count), and that census when the peak was last raised: what
    /// the peak is made of (the bench prints it).
    private var liveBlocks: [Int: Int] = [:]
    private(set) var blocksAtPeak: [Int: Int] = [:]

    init(driver: CUDADriverAPI, device: Device, budget: Int?) {
        self.driver = driver
        self.device = device
        self.budget = budget
    }

    /// Sizes are rounded so blocks can be reused: 512 B granules below 1 MiB, 2 MiB above.
    static func rounded(_ bytes: Int) -> Int {
        let size = max(bytes, 1)
        let granule = size < (1 << 20) ? 512 : (2 << 20)
        return (size + granule - 1) / granule * granule
    }

    func resetPeak() { lock.withLock { peakBytesInUse = bytesInUse; blocksAtPeak = liveBlocks } }

    /// Counts a block of `size` as in use and raises the peak if needed (lock held).
    private func takeLocked(_ size: Int) {
        bytesInUse += size
        liveBlocks[size, default: 0] += 1
        if bytesInUse > peakBytesInUse {
            peakBytesInUse = bytesInUse
            blocksAtPeak = liveBlocks
        }
    }

    /// Changes the budget (nil: none); blocks already allocated stay.
    func setBudget(_ bytes: Int?) { lock.withLock { budget = bytes } }

    func allocate(_ bytes: Int) throws -> Storage {
        let size = CUDAAllocator.rounded(bytes)
        let address: CUdeviceptr = try lock.withLock {
            if var list = free[size], let reused = list.popLast() {
                free[size] = list
                bytesCached -= size
                takeLocked(size)
                return reused
            }
            if let budget, bytesInUse + size > budget {
                releaseCacheLocked()
                if bytesInUse + size > budget {
                    throw KinemaError.outOfMemory(
                        requestedBytes: bytes, detail: "over the --max-vram budget of \(budget) bytes: \(bytesInUse) in use on \(device)")
                }
            }
            var pointer: CUdeviceptr = 0
            var result = driver.cuMemAlloc(&pointer, size)
            if result == 2 {  // out of memory: give the cache back and try once more
                releaseCacheLocked()
                result = driver.cuMemAlloc(&pointer, size)
            }
            if result != 0 {
                var freeBytes = 0
                var total = 0
                _ = driver.cuMemGetInfo(&freeBytes, &total)
                throw KinemaError.outOfMemory(
                    requestedBytes: bytes,
                    detail: "\(device): \(bytesInUse) bytes in use by Kinema, \(freeBytes) of \(total) free on the device (CUDA error \(result))")
            }
            takeLocked(size)
            return pointer
        }
        guard let base = UnsafeMutableRawPointer(bitPattern: UInt(address)) else {
            throw KinemaError.outOfMemory(requestedBytes: bytes, detail: "the driver returned a null device pointer")
        }
        return Storage(adopting: base, byteCount: bytes, device: device) { [self] pointer in
            recycle(CUdeviceptr(UInt(bitPattern: pointer)), size: size)
        }
    }

    private func recycle(_ address: CUdeviceptr, size: Int) {
        lock.withLock {
            free[size, default: []].append(address)
            bytesInUse -= size
            liveBlocks[size, default: 1] -= 1
            bytesCached += size
        }
    }

    private func releaseCacheLocked() {
        for (_, list) in free { for address in list { _ = driver.cuMemFree(address) } }
        free.removeAll()
        bytesCached = 0
    }
}
