import Foundation
import KinemaCore

// Device → host copies that overlap with the work queued after them (HostDownloadQueue on CUDA).
//
// For each piece the caller's thread records a "ready" event on the compute stream (after the kernels that
// produced the data), makes the ring's own copy stream wait for it, queues the DMA into a free pinned buffer
// on the copy stream and records a "done" event there. A worker thread waits for "done", copies the buffer to
// the piece's pageable destination and returns the buffer to the ring. So the DMA engine runs beside the
// compute kernels, the host copy beside the caller, and the caller goes on queueing kernels.
//
// Why: the 480p pipeline's decode was 0.870 s against the VAE bench's 0.803 s (H100, sixth session): the
// 388 MB f32 video was concatenated on the device and downloaded after the last frame. The VAE decodes it
// in 21 chunks of ≈ 40 ms; with each chunk's 19 MB copied out during the next chunk, only the last one's copy
// is left at the end.
//
// The source tensor is held until its DMA is done: on the copy stream its memory is not protected by the
// compute stream's ordering, so it must not go back to the allocator earlier.

/// Pinned host buffers with their events, and the copy stream. One queue uses the ring at a time.
final class PinnedRing: @unchecked Sendable {
    static let slotBytes = 16 << 20
    static let slotCount = 4
    let driver: CUDADriverAPI
    private(set) var buffers: [UnsafeMutableRawPointer] = []
    /// Recorded on the compute stream when a slot's source is ready; the copy stream waits for it.
    private(set) var ready: [CUhandle?] = []
    /// Recorded on the copy stream after a slot's DMA; the worker waits for it (blocking sync: it sleeps).
    private(set) var done: [CUhandle?] = []
    private(set) var copyStream: CUhandle?
    private let lock = NSLock()
    private var inUse = false

    /// nil when pinned memory, events or a stream cannot be had (callers then copy synchronously).
    init?(driver: CUDADriverAPI) {
        self.driver = driver
        guard driver.cuStreamCreate(&copyStream, 1) == 0 else { return nil }  // non-blocking
        for _ in 0..<Self.slotCount {
            var pointer: UnsafeMutableRawPointer?
            guard driver.cuMemAllocHost(&pointer, Self.slotBytes) == 0, let pointer else { return nil }
            buffers.append(pointer)
            var readyEvent: CUhandle?, doneEvent: CUhandle?
            guard driver.cuEventCreate(&readyEvent, 2) == 0 else { return nil }  // CU_EVENT_DISABLE_TIMING
            ready.append(readyEvent)
            guard driver.cuEventCreate(&doneEvent, 3) == 0 else { return nil }  // | CU_EVENT_BLOCKING_SYNC
            done.append(doneEvent)
        }
    }

    deinit {
        for event in ready + done { _ = driver.cuEventDestroy(event) }
        for buffer in buffers { _ = driver.cuMemFreeHost(buffer) }
        if let copyStream { _ = driver.cuStreamDestroy(copyStream) }
    }

    /// Takes the ring for one queue; false while another queue holds it.
    func acquire() -> Bool {
        lock.withLock {
            if inUse { return false }
            inUse = true
            return true
        }
    }

    func release() { lock.withLock { inUse = false } }
}

final class CUDAHostDownloads: HostDownloadQueue, @unchecked Sendable {
    /// What the worker's blocks touch (they hold this, never the queue, so the queue's deinit never runs on
    /// the worker while it waits for that worker).
    private final class State: @unchecked Sendable {
        let lock = NSLock()
        let freeSlots: DispatchSemaphore
        var available: [Int]
        var failure: (any Error)?

        init(slots: Int) {
            freeSlots = DispatchSemaphore(value: slots)
            available = Array(0..<slots)
        }

        func release(_ slot: Int) {
            lock.withLock { available.append(slot) }
            freeSlots.signal()
        }

        func fail(_ error: any Error) { lock.withLock { if failure == nil { failure = error } } }
    }

    private let context: CUDAContext
    private let ring: PinnedRing
    private let state: State
    private let worker = DispatchQueue(label: "kinema.host-downloads")
    private let group = DispatchGroup()
    private var finished = false

    /// The ring must already be acquired for this queue; `finish()` (or deinit) releases it.
    init(context: CUDAContext, ring: PinnedRing) {
        self.context = context
        self.ring = ring
        state = State(slots: ring.buffers.count)
    }

    deinit {
        if !finished {
            group.wait()
            releaseRing()
        }
    }

    /// Hands the ring on, unless a failure left a DMA into it possibly in flight (then it stays taken and later
    /// queues copy at once).
    private func releaseRing() {
        let failed = state.lock.withLock { state.failure != nil }
        if !failed || context.driver.cuStreamSynchronize(ring.copyStream) == 0 { ring.release() }
    }

    func enqueue(_ x: Tensor, pieces: [HostCopyPiece]) throws {
        guard !finished else { throw KinemaError.unsupported("CUDA host download queue: enqueue after finish()") }
        try validate(x, pieces: pieces)
        guard x.device == .cuda(context.ordinal) else {
            throw KinemaError.unsupported("CUDA host download queue of cuda:\(context.ordinal): a \(x.device) tensor")
        }
        let (driver, ring, state, context) = (context.driver, ring, state, context)
        if let failure = state.lock.withLock({ state.failure }) { throw failure }
        try context.makeCurrent()
        let base = CUDAContext.address(x)
        for piece in pieces {
            var done = 0
            while done < piece.bytes {
                let count = min(PinnedRing.slotBytes, piece.bytes - done)
                state.freeSlots.wait()
                let slot = state.lock.withLock { state.available.removeLast() }
                do {
                    try driver.check(driver.cuEventRecord(ring.ready[slot], context.stream), "cuEventRecord(ready)")
                    try driver.check(driver.cuStreamWaitEvent(ring.copyStream, ring.ready[slot], 0), "cuStreamWaitEvent")
                    try driver.check(
                        driver.cuMemcpyDtoHAsync(ring.buffers[slot], base + CUdeviceptr(piece.sourceOffset + done), count, ring.copyStream),
                        "cuMemcpyDtoHAsync")
                    try driver.check(driver.cuEventRecord(ring.done[slot], ring.copyStream), "cuEventRecord(done)")
                } catch {
                    state.fail(error)
                    // Whatever was queued into this slot is waited for before the slot is reused; if even that
                    // fails the slot stays out (the ring is then not handed on, see `finish`).
                    if driver.cuStreamSynchronize(ring.copyStream) == 0 { state.release(slot) }
                    throw error
                }
                let destination = SendablePointer((piece.destination + done).assumingMemoryBound(to: UInt8.self))
                worker.async(group: group) {
                    // x is held until its bytes are out (its device memory must not go back to the allocator first).
                    let copied: Bool = withExtendedLifetime(x) {
                        do {
                            try context.makeCurrent()
                            try driver.check(driver.cuEventSynchronize(ring.done[slot]), "cuEventSynchronize")
                            UnsafeMutableRawPointer(destination.pointer).copyMemory(from: ring.buffers[slot], byteCount: count)
                            return true
                        } catch {
                            state.fail(error)
                            // x and the slot are let go only once the copy stream is known to be past this DMA.
                            return driver.cuStreamSynchronize(ring.copyStream) == 0
                        }
                    }
                    if copied { state.release(slot) }
                }
                done += count
            }
        }
    }

    func finish() throws {
        group.wait()
        if !finished {
            finished = true
            releaseRing()
        }
        if let failure = state.lock.withLock({ state.failure }) { throw failure }
    }
}
