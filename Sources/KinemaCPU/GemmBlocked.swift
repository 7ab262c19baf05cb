import Dispatch
import KinemaCore

// The built-in GEMM: C[M, N] (=|+=) A[M, K] · B[K, N] in f32, cache-blocked and multi-threaded around a
// register-tiled micro-kernel (GemmKernels.swift).
//
// Loop nest (outermost first), after the Goto/BLIS structure:
//   mb over M in slabs of ≤ slabRows    bounds the packed-A memory for very tall A
//   pc over K in blocks of kc           Ã slab (slab rows × kc) packed once, shared by all threads
//     jc over N in blocks of nc         B̃ panel (kc × nc, 768 KiB at 384×512: fits each core's L2),
//                                       packed once, shared by all threads
//       work items over rows (and N)    threads split the slab's rows; skinny products also split N
//         ir over MR-row slivers of Ã     one Ã sliver (MR·kc floats, 18 KiB for AVX-512) stays in L1 …
//           jr over NR-wide slivers of B̃    … while the B̃ slivers stream from L2.
// Packing A once per K block (rather than once per (N block, K block)) matters for wide products such as
// the Wan FFN (N = 8960 would repack A 18 times). The first K block overwrites C (unless accumulating) and
// later ones add, so C is never pre-zeroed.

enum BlockedGemm {
    /// kc: depth of one packed block. 384 keeps an AVX-512 Ã sliver (12×384 floats) inside L1; measured
    /// flat between 256 and 768 on the dev machine.
    static let depthBlock = 384
    /// nc: columns of one packed B̃ panel (rounded up to the kernel's NR).
    static let columnBlock = 512
    /// Rows of A packed at a time (the packed slab is slabRows × kc floats, 6 MiB).
    static let slabRows = 4096
    /// Compute items per worker and panel (see `claim`): enough to rebalance, few enough that each item
    /// still sweeps many B̃ slivers with one Ã sliver.
    static let itemsPerWorker = 4
    /// Below this many flops the product runs on the calling thread (dispatch costs ~10–50 µs).
    static let parallelFlopThreshold = 1 << 21

    static func multiply(
        _ a: GemmOperand, _ b: GemmOperand, into c: UnsafeMutablePointer<Float>, ldc: Int, update: GemmUpdate,
        kernel: Microkernel = .best, threads: Int = Parallel.threads
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
        let kcMax = min(depthBlock, k)
        let ncMax = min(roundUp(columnBlock, nr), roundUp(n, nr))
        let slabMax = min(roundUp(slabRows, mr), roundUp(m, mr))

        let panel = UnsafeMutablePointer<Float>.allocate(capacity: kcMax * ncMax)
        let slab = UnsafeMutablePointer<Float>.allocate(capacity: slabMax * kcMax)
        defer {
            panel.deallocate()
            slab.deallocate()
        }

        for m0 in stride(from: 0, to: m, by: slabMax) {
            let rows = min(slabMax, m - m0)
            let rowSlivers = ceilDiv(rows, mr)
            // Work items are claimed dynamically, several per worker: on a shared machine one core is often
            // slower than the other, and a static split would leave the fast core waiting at every panel.
            let wantedItems = workers == 1 ? 1 : itemsPerWorker * workers
            let rowItems = min(rowSlivers, wantedItems)
            let columnSplitsWanted = ceilDiv(wantedItems, rowItems)
            for pc in stride(from: 0, to: k, by: kcMax) {
                let kc = min(kcMax, k - pc)
                let accumulate = update == .accumulate || pc > 0
                spread(rowSlivers, workers: workers) { slivers in
                    GemmPacking.packA(
                        a, rows: m0 + slivers.lowerBound * mr, count: min(rows, slivers.upperBound * mr) - slivers.lowerBound * mr,
                        depth: pc, count: kc, tile: mr, into: slab + slivers.lowerBound * mr * kc)
                }
                for jc in stride(from: 0, to: n, by: ncMax) {
                    let nc = min(ncMax, n - jc)
                    let columnSlivers = ceilDiv(nc, nr)
                    let columnSplits = min(columnSlivers, columnSplitsWanted)
                    spread(columnSlivers, workers: workers) { range in
                        GemmPacking.packB(b, columns: jc, count: nc, depth: pc, count: kc, tile: nr, slivers: range, into: panel)
                    }
                    claim(rowItems * columnSplits, workers: workers) { item in
                        let rowItem = item / columnSplits
                        let split = item % columnSplits
                        let r0 = rowSlivers * rowItem / rowItems * mr
                        let blockRows = min(rows, rowSlivers * (rowItem + 1) / rowItems * mr) - r0
                        macroKernel(
                            kernel, depth: kc, a: slab + r0 * kc, rows: blockRows, b: panel, bSliverStride: kc * nr,
                            slivers: (columnSlivers * split / columnSplits)..<(columnSlivers * (split + 1) / columnSplits),
                            columns: nc, c: c + (m0 + r0) * ldc + jc, ldc: ldc, accumulate: accumulate)
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
