import Foundation
import KinemaCore

// Per-kernel GPU time, for `kinema bench --profile`: a pair of CUDA events around every launch (kernels and
// cuBLASLt calls), read back after the measured region. Events add a little overhead per launch, so a
// profiled run is for the breakdown, not for the headline time.

public struct KernelTime: Sendable, Codable {
    public var name: String
    public var calls: Int
    public var milliseconds: Double
}

final class KernelProfiler: @unchecked Sendable {
    private let driver: CUDADriverAPI
    private var pending: [(name: String, start: CUhandle?, end: CUhandle?)] = []
    private var totals: [String: (calls: Int, milliseconds: Double)] = [:]
    private let lock = NSLock()

    init(driver: CUDADriverAPI) { self.driver = driver }

    /// Records `body` (which enqueues work on `stream`) under `name`.
    func measure<R>(_ name: String, stream: CUhandle?, _ body: () throws -> R) throws -> R {
        var start: CUhandle?
        var end: CUhandle?
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&end, 0), "cuEventCreate")
        try driver.check(driver.cuEventRecord(start, stream), "cuEventRecord")
        let result = try body()
        try driver.check(driver.cuEventRecord(end, stream), "cuEventRecord")
        lock.withLock { pending.append((name, start, end)) }
        return result
    }

    /// Waits for the recorded events and folds them into the totals.
    func collect() throws {
        let events = lock.withLock { () -> [(name: String, start: CUhandle?, end: CUhandle?)] in
            defer { pending.removeAll() }
            return pending
        }
        for event in events {
            try driver.check(driver.cuEventSynchronize(event.end), "cuEventSynchronize")
            var elapsed: Float = 0
            try driver.check(driver.cuEventElapsedTime(&elapsed, event.start, event.end), "cuEventElapsedTime")
            _ = driver.cuEventDestroy(event.start)
            _ = driver.cuEventDestroy(event.end)
            lock.withLock {
                let previous = totals[event.name] ?? (0, 0)
                totals[event.name] = (previous.calls + 1, previous.milliseconds + Double(elapsed))
            }
        }
    }

    func report() -> [KernelTime] {
        lock.withLock {
            totals.map { KernelTime(name: $0.key, calls: $0.value.calls, milliseconds: $0.value.milliseconds) }
                .sorted { $0.milliseconds > $1.milliseconds }
        }
    }

    func reset() { lock.withLock { totals.removeAll() } }
}

extension CUDAContext {
    /// Starts recording per-kernel times (nil-op if already on); `kernelProfile()` reads them.
    public func startProfiling() { profilerLock.withLock { if profiler == nil { profiler = KernelProfiler(driver: driver) } } }

    /// The per-kernel totals since profiling started, longest first.
    public func kernelProfile() throws -> [KernelTime] {
        guard let profiler = profilerLock.withLock({ profiler }) else { return [] }
        try profiler.collect()
        return profiler.report()
    }

    public func resetProfile() { profilerLock.withLock { profiler?.reset() } }

    /// Runs `body` under the profiler when one is active.
    func profiled<R>(_ name: String, _ body: () throws -> R) throws -> R {
        guard let profiler = profilerLock.withLock({ profiler }) else { return try body() }
        return try profiler.measure(name, stream: stream, body)
    }
}

extension CUDAContext {
    /// Runs `body` (which enqueues work on this context's stream) between two CUDA events and returns its
    /// result with the GPU time between them in seconds (waits for the end event).
    public func timedOnGPU<R>(_ body: () throws -> R) throws -> (result: R, seconds: Double) {
        try makeCurrent()
        var start: CUhandle?
        var end: CUhandle?
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        defer { _ = driver.cuEventDestroy(start) }
        try driver.check(driver.cuEventCreate(&end, 0), "cuEventCreate")
        defer { _ = driver.cuEventDestroy(end) }
        try driver.check(driver.cuEventRecord(start, stream), "cuEventRecord")
        let result = try body()
        try driver.check(driver.cuEventRecord(end, stream), "cuEventRecord")
        try driver.check(driver.cuEventSynchronize(end), "cuEventSynchronize")
        var elapsed: Float = 0
        try driver.check(driver.cuEventElapsedTime(&elapsed, start, end), "cuEventElapsedTime")
        return (result, Double(elapsed) / 1000)
    }

    /// Starts a new peak for `memoryUse.peak` at the bytes in use now.
    public func resetPeakMemory() { allocator.resetPeak() }
}
