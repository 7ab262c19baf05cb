// The AVX-512 GEMM micro-kernel: a 12×32 tile of C in 24 ZMM accumulators (of 32), one broadcast of A and
// two 16-wide loads of B per step, 24 FMAs per step.
//
// This module is compiled with `-target-cpu skylake-avx512`, so ANY function in it may contain AVX-512
// instructions. KinemaCPU calls into it only after `ckinema_cpu_features()` reports
// CKINEMA_CPU_SKYLAKE_AVX512, and nothing but kernels may live here: the micro-kernel, and
// attention's softmax step (KinemaVectorMath, inlined and so compiled for this CPU). The file is regular by design (one
// line per row of the tile); edit all rows together.
//
// Measured on the 2-core Cascade Lake dev VM: ~70–80 GFLOP/s per core with the panels in L1/L2, about the
// machine's FMA peak (one 512-bit FMA per cycle there).

#if arch(x86_64)
import CKinema
import KinemaVectorMath

public enum AVX512Microkernel {
    // Tile shape. @inlinable so KinemaCPU reads the constants without running code compiled for this CPU.
    @inlinable public static var rows: Int { 12 }
    @inlinable public static var columns: Int { 32 }

    /// C[0..<rows, 0..<columns] (row stride `ldc`) = (accumulate ? C : 0) + A·B over `depth` steps, where
    /// A holds 12 floats per step, `aStride` floats apart (a[k·aStride + i] = A[i, k]; aStride = 12 when
    /// packed) and B with 32 floats per
    /// step (b[k·32 + j] = B[k, j]). Panels are zero-padded to the full 12×32 tile; `rows` ≤ 12 and
    /// `columns` ≤ 32 select the corner of C that is written.
    public static func run(
        depth: Int, a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>,
        ldc: Int, rows: Int, columns: Int, accumulate: Bool
    ) {
        typealias Vector = SIMD16<Float>
        // C is usually far away (L3 or DRAM: a row of C is N floats long); start fetching the tile now so
        // the epilogue does not stall on it.
        for i in 0..<min(rows, 12) {
            ckinema_prefetch_for_write(c + i * ldc)
            ckinema_prefetch_for_write(c + i * ldc + 16)
        }
        // Accumulator c<i>_<j> holds C[i, 16j ..< 16j + 16]; all 24 stay in vector registers for the whole loop.
        var c0_0 = Vector(), c0_1 = Vector()
        var c1_0 = Vector(), c1_1 = Vector()
        var c2_0 = Vector(), c2_1 = Vector()
        var c3_0 = Vector(), c3_1 = Vector()
        var c4_0 = Vector(), c4_1 = Vector()
        var c5_0 = Vector(), c5_1 = Vector()
        var c6_0 = Vector(), c6_1 = Vector()
        var c7_0 = Vector(), c7_1 = Vector()
        var c8_0 = Vector(), c8_1 = Vector()
        var c9_0 = Vector(), c9_1 = Vector()
        var c10_0 = Vector(), c10_1 = Vector()
        var c11_0 = Vector(), c11_1 = Vector()
        var pa = a
        var pb = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = pb.loadUnaligned(fromByteOffset: 0, as: Vector.self)
            let b1 = pb.loadUnaligned(fromByteOffset: 64, as: Vector.self)
            var s = Vector(repeating: pa[0]); c0_0.addProduct(s, b0); c0_1.addProduct(s, b1)
            s = Vector(repeating: pa[1]); c1_0.addProduct(s, b0); c1_1.addProduct(s, b1)
            s = Vector(repeating: pa[2]); c2_0.addProduct(s, b0); c2_1.addProduct(s, b1)
            s = Vector(repeating: pa[3]); c3_0.addProduct(s, b0); c3_1.addProduct(s, b1)
            s = Vector(repeating: pa[4]); c4_0.addProduct(s, b0); c4_1.addProduct(s, b1)
            s = Vector(repeating: pa[5]); c5_0.addProduct(s, b0); c5_1.addProduct(s, b1)
            s = Vector(repeating: pa[6]); c6_0.addProduct(s, b0); c6_1.addProduct(s, b1)
            s = Vector(repeating: pa[7]); c7_0.addProduct(s, b0); c7_1.addProduct(s, b1)
            s = Vector(repeating: pa[8]); c8_0.addProduct(s, b0); c8_1.addProduct(s, b1)
            s = Vector(repeating: pa[9]); c9_0.addProduct(s, b0); c9_1.addProduct(s, b1)
            s = Vector(repeating: pa[10]); c10_0.addProduct(s, b0); c10_1.addProduct(s, b1)
            s = Vector(repeating: pa[11]); c11_0.addProduct(s, b0); c11_1.addProduct(s, b1)
            pa += aStride
            pb += 128
        }
        if rows == 12 && columns == 32 {
            func put(_ i: Int, _ v0: Vector, _ v1: Vector) {
                let row = UnsafeMutableRawPointer(c + i * ldc)
                if accumulate {
                    row.storeBytes(of: row.loadUnaligned(fromByteOffset: 0, as: Vector.self) + v0, toByteOffset: 0, as: Vector.self)
                    row.storeBytes(of: row.loadUnaligned(fromByteOffset: 64, as: Vector.self) + v1, toByteOffset: 64, as: Vector.self)
                } else {
                    row.storeBytes(of: v0, toByteOffset: 0, as: Vector.self)
                    row.storeBytes(of: v1, toByteOffset: 64, as: Vector.self)
                }
            }
            put(0, c0_0, c0_1)
            put(1, c1_0, c1_1)
            put(2, c2_0, c2_1)
            put(3, c3_0, c3_1)
            put(4, c4_0, c4_1)
            put(5, c5_0, c5_1)
            put(6, c6_0, c6_1)
            put(7, c7_0, c7_1)
            put(8, c8_0, c8_1)
            put(9, c9_0, c9_1)
            put(10, c10_0, c10_1)
            put(11, c11_0, c11_1)
            return
        }
        // Edge tile: spill the whole tile to the stack, then merge only the valid corner.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 384) { tile in
            guard let base = tile.baseAddress else { return }
            func put(_ i: Int, _ v0: Vector, _ v1: Vector) {
                let row = UnsafeMutableRawPointer(base + i * 32)
                row.storeBytes(of: v0, toByteOffset: 0, as: Vector.self)
                row.storeBytes(of: v1, toByteOffset: 64, as: Vector.self)
            }
            put(0, c0_0, c0_1)
            put(1, c1_0, c1_1)
            put(2, c2_0, c2_1)
            put(3, c3_0, c3_1)
            put(4, c4_0, c4_1)
            put(5, c5_0, c5_1)
            put(6, c6_0, c6_1)
            put(7, c7_0, c7_1)
            put(8, c8_0, c8_1)
            put(9, c9_0, c9_1)
            put(10, c10_0, c10_1)
            put(11, c11_0, c11_1)
            for i in 0..<min(rows, 12) {
                let source = base + i * 32
                let target = c + i * ldc
                for j in 0..<min(columns, 32) { target[j] = (accumulate ? target[j] : 0) + source[j] }
            }
        }
    }

    /// Attention's online-softmax step (KinemaVectorMath.OnlineSoftmax.update), compiled for this CPU.
    public static func softmax(
        _ scores: UnsafeMutablePointer<Float>, _ keys: Int, _ stride: Int, _ lanes: Int, _ max: UnsafeMutablePointer<Float>,
        _ sum: UnsafeMutablePointer<Float>, _ rescale: (Int, Float) -> Void
    ) {
        OnlineSoftmax.update(scores, keys: keys, stride: stride, lanes: lanes, max: max, sum: sum, rescale: rescale, FusedMultiplyAdd.self)
    }
}
#endif
