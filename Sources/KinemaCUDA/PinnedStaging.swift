import Foundation
import KinemaCore

// Host↔device copies of large tensors through page-locked (pinned) staging buffers.
//
// A copy from pageable memory makes the driver stage it through its own small pinned buffer, one piece at
// a time, and the call returns only when the whole copy is done. With two pinned buffers of our own the
// CPU fills one while the DMA engine drains the other, and an upload returns as soon as the last piece is
// in pinned memory: the GPU finishes it in stream order, so loading weights overlaps with compute that is
// already queued. Downloads run the same pipeline in reverse (DMA into one buffer while the CPU copies
// the other out).

final class PinnedStaging: @unchecked Sendable {
    /// Bytes per staging buffer; copies at least this large go through the pipeline.
    static let chunkBytes = 32 << 20
    static let minimumBytes = 1 << 20

    private let driver: CUDADriverAPI
    private let stream: CUhandle?
    private var buffers: [UnsafeMutableRawPointer] = []
    private var events: [CUhandle?] = []
    /// Whether `events[i]` has been recorded since buffer `i` was last handed to the DMA engine.
    private var pending: [Bool] = []
    private let lock = NSLock()

    init(driver: CUDADriverAPI, stream: CUhandle?) {
        self.driver = driver
        self.stream = stream
    }

    deinit {
        for event in events { _ = driver.cuEventDestroy(event) }
        for buffer in buffers { _ = driver.cuMemFreeHost(buffer) }
    }

    /// Allocates the two buffers on first use; nil when pinned memory is not available (the caller then
    /// copies directly from pageable memory).
    private func prepare() -> Bool {
        if buffers.count == 2 { return true }
        while buffers.count < 2 {
            var pointer: UnsafeMutableRawPointer?
            var event: CUhandle?
            guard driver.cuMemAllocHost(&pointer, PinnedStaging.chunkBytes) == 0, let pointer else { return false }
            guard driver.cuEventCreate(&event, 2) == 0 else {  // CU_EVENT_DISABLE_TIMING
                _ = driver.cuMemFreeHost(pointer)
                return false
            }
            // A buffer made before a failed second allocation is kept: the next call completes the pair
            // instead of allocating two more.
            buffers.append(pointer)
            events.append(event)
            pending.append(false)
        }
        return true
    }

    private func waitForSlot(_ slot: Int) throws {
        if pending[slot] {
            try driver.check(driver.cuEventSynchronize(events[slot]), "cuEventSynchronize")
            pending[slot] = false
        }
    }

    /// Host → device. Returns once `source` may be reused; the device side completes in stream order.
    /// Returns false (nothing copied) when pinned buffers cannot be allocated.
    func upload(_ source: UnsafeRawPointer, to destination: CUdeviceptr, bytes: Int) throws -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard prepare() else { return false }
        var offset = 0
        var slot = 0
        while offset < bytes {
            let count = min(PinnedStaging.chunkBytes, bytes - offset)
            try waitForSlot(slot)
            buffers[slot].copyMemory(from: source + offset, byteCount: count)
            try driver.check(
                driver.cuMemcpyHtoDAsync(destination + CUdeviceptr(offset), buffers[slot], count, stream), "cuMemcpyHtoDAsync")
            try driver.check(driver.cuEventRecord(events[slot], stream), "cuEventRecord")
            pending[slot] = true
            offset += count
            slot ^= 1
        }
        return true
    }

    /// Device → host, waiting for the work queued before it. Returns false when pinned buffers cannot be
    /// allocated.
    func download(_ source: CUdeviceptr, to destination: UnsafeMutableRawPointer, bytes: Int) throws -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard prepare() else { return false }
        let chunks = (bytes + PinnedStaging.chunkBytes - 1) / PinnedStaging.chunkBytes
        func range(_ chunk: Int) -> (offset: Int, count: Int) {
            let offset = chunk * PinnedStaging.chunkBytes
            return (offset, min(PinnedStaging.chunkBytes, bytes - offset))
        }
        func issue(_ chunk: Int) throws {
            let slot = chunk % 2
            try waitForSlot(slot)
            let (offset, count) = range(chunk)
            try driver.check(
                driver.cuMemcpyDtoHAsync(buffers[slot], source + CUdeviceptr(offset), count, stream), "cuMemcpyDtoHAsync")
            try driver.check(driver.cuEventRecord(events[slot], stream), "cuEventRecord")
            pending[slot] = true
        }
        try issue(0)
        for chunk in 0..<chunks {
            if chunk + 1 < chunks { try issue(chunk + 1) }
            let slot = chunk % 2
            try waitForSlot(slot)
            let (offset, count) = range(chunk)
            (destination + offset).copyMemory(from: buffers[slot], byteCount: count)
        }
        return true
    }
}
