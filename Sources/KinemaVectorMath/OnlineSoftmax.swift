// Vector math shared by the CPU kernels, written once and compiled per instruction set: every function is
// @inlinable and @inline(__always), so it is compiled into the module that calls it. KinemaCPU calls it
// for baseline x86-64 (SSE2), while KinemaKernelsAVX2 / KinemaKernelsAVX512 wrap it in functions that are
// compiled with -target-cpu haswell / skylake-avx512 (see those modules for the dispatch rules).
//
// The online-softmax step of CPU attention lives here because, compiled for SSE2 without FMA, its
// exponentials cost ~30% of attention time at DiT sizes; with AVX-512 they are ~4× cheaper.

public typealias FloatVector = SIMD16<Float>

/// How a kernel computes a·b + c: fused where the target has FMA (one rounding), separately otherwise (a
/// fused `addingProduct` without FMA hardware becomes a libm `fmaf` call per lane).
public protocol MultiplyAdd {
    static func multiplyAdd(_ a: FloatVector, _ b: FloatVector, _ c: FloatVector) -> FloatVector
}

public enum FusedMultiplyAdd: MultiplyAdd {
    @inlinable @inline(__always)
    public static func multiplyAdd(_ a: FloatVector, _ b: FloatVector, _ c: FloatVector) -> FloatVector {
        c.addingProduct(a, b)
    }
}

public enum SeparateMultiplyAdd: MultiplyAdd {
    @inlinable @inline(__always)
    public static func multiplyAdd(_ a: FloatVector, _ b: FloatVector, _ c: FloatVector) -> FloatVector { a * b + c }
}

/// The vectorized online softmax over transposed score blocks (one query per SIMD lane).
/// Min/max are written as compare-and-replace: the standard library's pointwiseMin/pointwiseMax compile to
/// per-lane loops through memory (with NaN checks), 10× slower here.
public enum OnlineSoftmax {
    /// Queries per vector.
    @inlinable public static var width: Int { 16 }

    @inlinable @inline(__always)
    static func larger(_ a: FloatVector, _ b: FloatVector) -> FloatVector { a.replacing(with: b, where: a .< b) }

    /// 2^x, x clamped to [−126, 127] (so 2^−∞ gives 2^−126 ≈ 1e−38, not 0). A polynomial rather than libm so
    /// it vectorizes; relative error ≤ 2 ulp, far below the f32 GEMM error of the scores it exponentiates.
    @inlinable @inline(__always)
    public static func exp2<Arithmetic: MultiplyAdd>(_ x: FloatVector, _: Arithmetic.Type) -> FloatVector {
        let low = FloatVector(repeating: -126), high = FloatVector(repeating: 127)
        let clamped = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        // Round to nearest with the 1.5·2²³ trick (baseline x86-64 has no SSE4.1 `round`): the integer n ends
        // up in the low mantissa bits of `shifted`.
        let magic = FloatVector(repeating: 12_582_912)
        let shifted = clamped + magic
        let f = clamped - (shifted - magic)  // [−0.5, 0.5]
        // 2^f = e^(f·ln2): Taylor terms to degree 7 (truncation < 6e−9 relative on the interval).
        var p = FloatVector(repeating: 1.525_273_4e-5)
        p = Arithmetic.multiplyAdd(p, f, FloatVector(repeating: 1.540_353_0e-4))
        p = Arithmetic.multiplyAdd(p, f, FloatVector(repeating: 1.333_355_8e-3))
        p = Arithmetic.multiplyAdd(p, f, FloatVector(repeating: 9.618_129_1e-3))
        p = Arithmetic.multiplyAdd(p, f, FloatVector(repeating: 5.550_410_9e-2))
        p = Arithmetic.multiplyAdd(p, f, FloatVector(repeating: 0.240_226_51))
        p = Arithmetic.multiplyAdd(p, f, FloatVector(repeating: 0.693_147_18))
        p = Arithmetic.multiplyAdd(p, f, FloatVector(repeating: 1))
        let exponent = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000  // n
        let power = unsafeBitCast((exponent &+ 127) &<< 23, to: FloatVector.self)  // 2^n, n ∈ [−126, 127]
        return p * power
    }

    /// One online-softmax step over a block of transposed scores: `scores` is [keys, lanes] with row stride
    /// `stride` floats, one query per column, `lanes` a multiple of 16. For each query i:
    ///   m' = max(mᵢ, max over the block); block ← 2^(block − m'); lᵢ ← lᵢ·2^(mᵢ − m') + Σ block; mᵢ ← m'.
    /// `rescale(i, 2^(mᵢ − m'))` is called for queries whose maximum moved, so the caller can rescale its
    /// accumulated output. The first block of a query has mᵢ = −∞ and gets factor 0.
    @inlinable @inline(__always)
    public static func update<Arithmetic: MultiplyAdd>(
        _ scores: UnsafeMutablePointer<Float>, keys: Int, stride: Int, lanes: Int, max m: UnsafeMutablePointer<Float>,
        sum l: UnsafeMutablePointer<Float>, rescale: (Int, Float) -> Void, _ arithmetic: Arithmetic.Type
    ) {
        let raw = UnsafeMutableRawPointer(scores)
        let negativeInfinity = FloatVector(repeating: -.infinity)
        var lane = 0
        while lane < lanes {
            let column = lane * 4
            var blockMax = negativeInfinity
            for key in 0..<keys {
                blockMax = larger(blockMax, raw.loadUnaligned(fromByteOffset: key * stride * 4 + column, as: FloatVector.self))
            }
            let oldMax = UnsafeRawPointer(m).loadUnaligned(fromByteOffset: column, as: FloatVector.self)
            let newMax = larger(oldMax, blockMax)
            var sum = FloatVector()
            for key in 0..<keys {
                let offset = key * stride * 4 + column
                let p = exp2(raw.loadUnaligned(fromByteOffset: offset, as: FloatVector.self) - newMax, arithmetic)
                raw.storeBytes(of: p, toByteOffset: offset, as: FloatVector.self)
                sum += p
            }
            let factor = exp2(oldMax - newMax, arithmetic).replacing(with: 0, where: oldMax .== negativeInfinity)
            let oldSum = UnsafeRawPointer(l).loadUnaligned(fromByteOffset: column, as: FloatVector.self)
            UnsafeMutableRawPointer(l).storeBytes(of: oldSum * factor + sum, toByteOffset: column, as: FloatVector.self)
            UnsafeMutableRawPointer(m).storeBytes(of: newMax, toByteOffset: column, as: FloatVector.self)
            for index in 0..<16 where factor[index] != 1 { rescale(lane + index, factor[index]) }
            lane += 16
        }
    }
}
