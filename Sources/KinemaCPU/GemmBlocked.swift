import Dispatch
import KinemaCore

// The built-in GEMM: C[M, N] (=|+=) A[M, K] · B[K, N] in f32, cache-blocked and multi-threaded around a
// register-tiled micro-kernel (GemmKernels.swift).
//
// Loop nest (outermost first):
//   mb over M in slabs              Ã slab: slab rows × all of K, packed once (K blocks of kc stored one
//                                   after another), shared by all threads; slab rows bound its memory
//     jc over N in panels of nc     B̃ panel: all of K × nc, packed once, shared by all threads
//       work items (rows × ≤256 columns), claimed dynamically by the threads
//         pc over K blocks of kc      the item's C block (≈128 × 256 floats, 128 KiB) stays in L2 for the
//                                     whole K loop instead of returning to L3/DRAM after every K block
//           ir over MR-row slivers      one Ã sliver (MR·kc floats) stays in L1 …
//             jr over NR-wide slivers     … while the B̃ slivers of the item stream from L2.
// Measured on the dev machine (2 Cascade Lake cores, Wan FFN shape, best of 5-run sets): keeping C resident
// this way took the built-in GEMM from ~130 to 155–190 GFLOP/s against K blocks outside the N loop.
// The first K block overwrites C (unless accumulating) and later ones add, so C is never pre-zeroed.

enum BlockedGemm {
    /// Block sizes. The defaults suit the dev machine's Cascade Lake cores (32 KiB L1, 1 MiB L2); tests
    /// pass tiny ones to drive every edge (several slabs, panels, K blocks and items) on small matrices.
    struct Blocking {
        /// kc: depth of one K block. 512 measured best (256–512 within noise): an AVX-512 Ã sliver
        /// (12×512 floats, 24 KiB) still fits L1.
        var depth = 512
        /// nc: columns of one packed B̃ panel (rounded to the kernel's NR); also capped by `panelFloats`.
        var panelColumns = 512
        /// Most rows and columns of C per work item: the C block (128 × 256 floats) stays in L2 across the
        /// K loop.
        var itemRows = 128
        var itemColumns = 256
        /// Largest packed Ã slab (64 MiB) and B̃ panel (16 MiB) in floats; both hold all of K.
        var slabFloats = 16 << 20
        var panelFloats = 4 << 20
    }

    /// Row items per worker (see `claim`): enough to rebalance when one core is slower (shared machines).
    static let itemsPerWorker = 4
    /// Below this many flops the product runs on the calling thread (dispatch costs ~10–50 µs).
    static let parallelFlopThreshold = 1 << 21

    static func multiply(
        _ a: GemmOperand, _ b: GemmOperand, into c: UnsafeMutablePointer<Float>, ldc: Int, update: GemmUpdate,
        kernel: Microkernel = .best, threads: Int = Parallel.threads, blocking: Blocking = Blocking()
    ) {
        let m = a.rows, n = b.columns, k = a.columns
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if update == .overwrite {
                for row in 0..<m { (c + row * ldc).initialize(repeating: 0, count: n) }
            }
            return
        }
        let mr = kernel.rows, nr = kernel.columns
        let workers = 2 * m * n * k < parallelFlopThreshold ? 1 : max(1, threads)
        let kcMax = min(blocking.depth, k)
        let kBlocks = ceilDiv(k, kcMax)
        let slabMax = min(roundUp(m, mr), max(mr, blocking.slabFloats / k / mr * mr))
        let ncMax = min(roundUp(n, nr), roundUp(blocking.panelColumns, nr), max(nr, blocking.panelFloats / k / nr * nr))
        let slab = UnsafeMutablePointer<Float>.allocate(capacity: kBlocks * slabMax * kcMax)
        let panel = UnsafeMutablePointer<Float>.allocate(capacity: kBlocks * kcMax * ncMax)
        defer {
            panel.deallocate()
            slab.deallocate()
        }
        for m0 in stride(from: 0, to: m, by: slabMax) {
            let rows = min(slabMax, m - m0)
            let rowSlivers = ceilDiv(rows, mr)
            spread(rowSlivers, workers: workers) { slivers in
                for q in 0..<kBlocks {
                    let kc = min(kcMax, k - q * kcMax)
                    GemmPacking.packA(
                        a, rows: m0 + slivers.lowerBound * mr, count: min(rows, slivers.upperBound * mr) - slivers.lowerBound * mr,
                        depth: q * kcMax, count: kc, tile: mr, into: slab + q * slabMax * kcMax + slivers.lowerBound * mr * kc)
                }
            }
            let wantedItems = workers == 1 ? 1 : itemsPerWorker * workers
            let rowItems = min(rowSlivers, max(wantedItems, ceilDiv(rows, blocking.itemRows)))
            for jc in stride(from: 0, to: n, by: ncMax) {
                let nc = min(ncMax, n - jc)
                let columnSlivers = ceilDiv(nc, nr)
                let columnSplits = min(columnSlivers, max(ceilDiv(wantedItems, rowItems), ceilDiv(nc, blocking.itemColumns)))
                spread(columnSlivers, workers: workers) { range in
                    for q in 0..<kBlocks {
                        let kc = min(kcMax, k - q * kcMax)
                        GemmPacking.packB(b, columns: jc, count: nc, depth: q * kcMax, count: kc, tile: nr, slivers: range, into: panel + q * kcMax * ncMax)
                    }
                }
                claim(rowItems * columnSplits, workers: workers) { item in
                    let rowItem = item / columnSplits
                    let split = item % columnSplits
                    let r0 = rowSlivers * rowItem / rowItems * mr
                    let blockRows = min(rows, rowSlivers * (rowItem + 1) / rowItems * mr) - r0
                    for q in 0..<kBlocks {
                        let kc = min(kcMax, k - q * kcMax)
                        macroKernel(
                            kernel, depth: kc, a: slab + q * slabMax * kcMax + r0 * kc, rows: blockRows,
                            b: panel + q * kcMax * ncMax, bSliverStride: kc * nr,
                            slivers: (columnSlivers * split / columnSplits)..<(columnSlivers * (split + 1) / columnSplits),
                            columns: nc, c: c + (m0 + r0) * ldc + jc, ldc: ldc, accumulate: update == .accumulate || q > 0)
                    }
                }
            }
        }
    }

    /// Multiplies an Ã block of `rows` rows by the B̃ slivers in `slivers` (sliver t at b + t·bSliverStride,
    /// NR floats per depth step; `columns` valid columns counted from sliver 0) into C, whose (0, 0) is the
    /// block's first row and the panel's first column. Ã sliver s starts at a + s·aSliverStride and steps
    /// aStepStride floats per depth step; the defaults (0) mean packed: MR·depth and MR.
    @inline(__always)
    static func macroKernel(
        _ kernel: Microkernel, depth: Int, a: UnsafePointer<Float>, aSliverStride: Int = 0, aStepStride: Int = 0,
        rows: Int, b: UnsafePointer<Float>, bSliverStride: Int, slivers: Range<Int>, columns: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let mr = kernel.rows, nr = kernel.columns
        let sliverStride = aSliverStride == 0 ? mr * depth : aSliverStride
        let stepStride = aStepStride == 0 ? mr : aStepStride
        let run = kernel.run
        var row = 0
        while row < rows {
            let aSliver = a + (row / mr) * sliverStride
            let rowsHere = min(mr, rows - row)
            for sliver in slivers {
                let column = sliver * nr
                run(depth, aSliver, stepStride, b + sliver * bSliverStride, c + row * ldc + column, ldc, rowsHere,
                    min(nr, columns - column), accumulate)
            }
            row += mr
        }
    }

    /// Runs body(0..<count) with items claimed dynamically by up to `workers` threads (GCD's
    /// concurrentPerform hands out iterations as threads become free).
    @inline(__always)
    static func claim(_ count: Int, workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 || count <= 1 {
            for item in 0..<count { body(item) }
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        }
    }

    /// Parallel.forRanges, or an inline call when one worker is asked for (small products, or callers that
    /// are themselves running on a worker thread).
    @inline(__always)
    static func spread(_ count: Int, workers: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        if workers <= 1 || count == 1 {
            body(0..<count)
        } else {
            Parallel.forRanges(count, body)
        }
    }
}

@inline(__always) func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
@inline(__always) func roundUp(_ a: Int, _ multiple: Int) -> Int { ceilDiv(a, multiple) * multiple }
