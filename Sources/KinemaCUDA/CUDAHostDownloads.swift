import Foundation
import KinemaCore

// Device → host copies that overlap with the work queued after them (HostDownloadQueue on CUDA).
//
// The caller's thread queues each piece as a DMA into a free pinned buffer on the compute stream (so it runs
// after the kernels that produced the data) and records an event; a worker thread waits for the event, copies
// the buffer to the piece's pageable destination and returns the buffer to the ring. The caller goes on
// queueing kernels meanwhile.
//
// Why: the 480p pipeline's decode was 0.870 s against the VAE bench's 0.803 s (H100, sixth session): the
// 388 MB f32 video was concatenated on the device and downloaded after the last frame. The VAE decodes it
// in 21 chunks of ≈ 40 ms; with each chunk's 19 MB copied out during the next chunk, only the last one's copy
// is left at the end.

/// Pinned host buffers, each with an event that marks its DMA done. One queue uses the ring at a time.
final class PinnedRing: @unchecked Sendable {
    static let slotBytes = 16 << 20
    static let slotCount = 4
    let driver: CUDADriverAPI
    private(set) var buffers: [UnsafeMutableRawPointer] = []
    private(set) var events: [CUhandle?] = []
    /// Held by the queue using the ring, from its creation to its `finish()`.
    let owner = NSLock()

    /// nil when pinned memory or events cannot be had (callers then copy synchronously).
    init?(driver: CUDADriverAPI) {
        self.driver = driver
        for _ in 0..<Self.slotCount {
            var pointer: UnsafeMutableRawPointer?
            var event: CUhandle?
            guard driver.cuMemAllocHost(&pointer, Self.slotBytes) == 0, let pointer else { return nil }
            buffers.append(pointer)
            guard driver.cuEventCreate(&event, 2) == 0 else { return nil }  // CU_EVENT_DISABLE_TIMING
            events.append(event)
        }
    }

    deinit {
        for event in events { _ = driver.cuEventDestroy(event) }
        for buffer in buffers { _ = driver.cuMemFreeHost(buffer) }
    }
}

final class CUDAHostDownloads: HostDownloadQueue, @unchecked Sendable {
    private let context: CUDAContext
    private let ring: PinnedRing
    private let worker = DispatchQueue(label: "kinema.host-downloads")
    private let group = DispatchGroup()
    private let freeSlots: DispatchSemaphore
    private let lock = NSLock()
    private var available: [Int]
    private var failure: (any Error)?
    private var released = false

    /// `ring.owner` must already be held; `finish()` (or deinit) releases it.
    init(context: CUDAContext, ring: PinnedRing) {
        self.context = context
        self.ring = ring
        available = Array(0..<ring.buffers.count)
        freeSlots = DispatchSemaphore(value: ring.buffers.count)
    }

    deinit { try? finish() }

    func enqueue(_ x: Tensor, pieces: [HostCopyPiece]) throws {
        try validate(x, pieces: pieces)
        guard case .cuda = x.device else { throw KinemaError.unsupported("CUDA host download queue: \(x.device) tensor") }
        if let failure = lock.withLock({ failure }) { throw failure }
        try context.makeCurrent()
        let driver = context.driver
        let base = CUDAContext.address(x)
        for piece in pieces {
            var done = 0
            while done < piece.bytes {
                let count = min(PinnedRing.slotBytes, piece.bytes - done)
                freeSlots.wait()
                let slot = lock.withLock { available.removeLast() }
                do {
                    try driver.check(
                        driver.cuMemcpyDtoHAsync(ring.buffers[slot], base + CUdeviceptr(piece.sourceOffset + done), count, context.stream),
                        "cuMemcpyDtoHAsync")
                    try driver.check(driver.cuEventRecord(ring.events[slot], context.stream), "cuEventRecord")
                } catch {
                    release(slot)
                    throw error
                }
                let destination = SendablePointer((piece.destination + done).assumingMemoryBound(to: UInt8.self))
                worker.async(group: group) { [self] in
                    // x is held until its bytes are out (its device memory must not go back to the allocator first).
                    withExtendedLifetime(x) {
                        do {
                            try context.makeCurrent()
                            try driver.check(driver.cuEventSynchronize(ring.events[slot]), "cuEventSynchronize")
                            UnsafeMutableRawPointer(destination.pointer).copyMemory(from: ring.buffers[slot], byteCount: count)
                        } catch {
                            lock.withLock { if failure == nil { failure = error } }
                        }
                    }
                    release(slot)
                }
                done += count
            }
        }
    }

    func finish() throws {
        group.wait()
        lock.withLock {
            if !released {
                released = true
                ring.owner.unlock()
            }
        }
        if let failure = lock.withLock({ failure }) { throw failure }
    }

    private func release(_ slot: Int) {
        lock.withLock { available.append(slot) }
        freeSlots.signal()
    }
}
