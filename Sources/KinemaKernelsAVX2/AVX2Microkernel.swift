// The AVX2+FMA GEMM micro-kernel: a 6×16 tile of C in 12 YMM accumulators (of 16), one broadcast of A and
// two 8-wide loads of B per step, 12 FMAs per step — the classic Haswell shape, which leaves room for the
// B vectors and the broadcast without spilling.
//
// This module is compiled with `-target-cpu haswell`, so ANY function in it may contain AVX2/FMA/BMI
// instructions. KinemaCPU calls into it only after `ckinema_cpu_features()` reports CKINEMA_CPU_HASWELL,
// and nothing but kernels may live here: the micro-kernel, and
// attention's softmax step (KinemaVectorMath, inlined and so compiled for this CPU). The file is regular by design (one line per row of the tile);
// edit all rows together.

#if arch(x86_64)
import KinemaVectorMath
public enum AVX2Microkernel {
    // Tile shape. @inlinable so KinemaCPU reads the constants without running code compiled for this CPU.
    @inlinable public static var rows: Int { 6 }
    @inlinable public static var columns: Int { 16 }

    /// C[0..<rows, 0..<columns] (row stride `ldc`) = (accumulate ? C : 0) + A·B over `depth` steps, where
    /// A holds 6 floats per step, `aStride` floats apart (a[k·aStride + i] = A[i, k]; aStride = 6 when
    /// packed) and B with 16 floats per
    /// step (b[k·16 + j] = B[k, j]). Panels are zero-padded to the full 6×16 tile; `rows` ≤ 6 and
    /// `columns` ≤ 16 select the corner of C that is written.
    public static func run(
        depth: Int, a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>,
        ldc: Int, rows: Int, columns: Int, accumulate: Bool
    ) {
        typealias Vector = SIMD8<Float>
        // Accumulator c<i>_<j> holds C[i, 8j ..< 8j + 8]; all 12 stay in vector registers for the whole loop.
        var c0_0 = Vector(), c0_1 = Vector()
        var c1_0 = Vector(), c1_1 = Vector()
        var c2_0 = Vector(), c2_1 = Vector()
        var c3_0 = Vector(), c3_1 = Vector()
        var c4_0 = Vector(), c4_1 = Vector()
        var c5_0 = Vector(), c5_1 = Vector()
        var pa = a
        var pb = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = pb.loadUnaligned(fromByteOffset: 0, as: Vector.self)
            let b1 = pb.loadUnaligned(fromByteOffset: 32, as: Vector.self)
            var s = Vector(repeating: pa[0]); c0_0.addProduct(s, b0); c0_1.addProduct(s, b1)
            s = Vector(repeating: pa[1]); c1_0.addProduct(s, b0); c1_1.addProduct(s, b1)
            s = Vector(repeating: pa[2]); c2_0.addProduct(s, b0); c2_1.addProduct(s, b1)
            s = Vector(repeating: pa[3]); c3_0.addProduct(s, b0); c3_1.addProduct(s, b1)
            s = Vector(repeating: pa[4]); c4_0.addProduct(s, b0); c4_1.addProduct(s, b1)
            s = Vector(repeating: pa[5]); c5_0.addProduct(s, b0); c5_1.addProduct(s, b1)
            pa += aStride
            pb += 64
        }
        if rows == 6 && columns == 16 {
            func put(_ i: Int, _ v0: Vector, _ v1: Vector) {
                let row = UnsafeMutableRawPointer(c + i * ldc)
                if accumulate {
                    row.storeBytes(of: row.loadUnaligned(fromByteOffset: 0, as: Vector.self) + v0, toByteOffset: 0, as: Vector.self)
                    row.storeBytes(of: row.loadUnaligned(fromByteOffset: 32, as: Vector.self) + v1, toByteOffset: 32, as: Vector.self)
                } else {
                    row.storeBytes(of: v0, toByteOffset: 0, as: Vector.self)
                    row.storeBytes(of: v1, toByteOffset: 32, as: Vector.self)
                }
            }
            put(0, c0_0, c0_1)
            put(1, c1_0, c1_1)
            put(2, c2_0, c2_1)
            put(3, c3_0, c3_1)
            put(4, c4_0, c4_1)
            put(5, c5_0, c5_1)
            return
        }
        // Edge tile: spill the whole tile to the stack, then merge only the valid corner.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 96) { tile in
            guard let base = tile.baseAddress else { return }
            func put(_ i: Int, _ v0: Vector, _ v1: Vector) {
                let row = UnsafeMutableRawPointer(base + i * 16)
                row.storeBytes(of: v0, toByteOffset: 0, as: Vector.self)
                row.storeBytes(of: v1, toByteOffset: 32, as: Vector.self)
            }
            put(0, c0_0, c0_1)
            put(1, c1_0, c1_1)
            put(2, c2_0, c2_1)
            put(3, c3_0, c3_1)
            put(4, c4_0, c4_1)
            put(5, c5_0, c5_1)
            for i in 0..<min(rows, 6) {
                let source = base + i * 16
                let target = c + i * ldc
                for j in 0..<min(columns, 16) { target[j] = (accumulate ? target[j] : 0) + source[j] }
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
