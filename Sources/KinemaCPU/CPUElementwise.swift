import Foundation
import KinemaCore

// Elementwise ops: unary activations, binary arithmetic with NumPy broadcasting, and x·scale + shift.
//
// Each thread walks its share of the output in blocks: operands are gathered into f32 scratch (any
// strides, stride 0 for broadcast axes), the op runs on the f32 block, and the block is rounded once into
// the contiguous output. Op switches sit outside the element loops.

enum CPUElementwise {
    static func unary(_ op: UnaryOp, _ x: Tensor) throws -> Tensor {
        try CPUChecks.floating(x, "unary \(op.rawValue)")
        let source = try StridedSource(x)
        return try map(source, shape: x.shape, dtype: x.dtype) { values, count in apply(op, values, count) }
    }

    /// `x · scale + shift`, one f32 multiply and one add (not fused, like PyTorch's `x * s + t` in f32).
    static func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try CPUChecks.floating(x, "affine")
        let source = try StridedSource(x)
        return try map(source, shape: x.shape, dtype: x.dtype) { values, count in
            for index in 0..<count { values[index] = values[index] * scale + shift }
        }
    }

    static func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        let context = "binary \(op.rawValue)"
        try CPUChecks.floating(a, context)
        try CPUChecks.floating(b, context)
        let shape = try broadcastShape(a.shape, b.shape, context)
        let dtype: DType = (a.dtype == .f32 || b.dtype == .f32) ? .f32 : a.dtype
        let left = try StridedSource(a, broadcastTo: shape)
        let right = try StridedSource(b, broadcastTo: shape)
        let out = try Tensor.uninitialized(shape, dtype: dtype)
        let destination = out.hostPointer
        Parallel.forRanges(out.count, grain: parallelGrain) { range in
            let block = min(range.count, scratchBlock)
            withScratch(2 * block) { scratch in
                let lhs = scratch
                let rhs = scratch + block
                forBlocks(range) { part in
                    left.gather(part, into: lhs)
                    right.gather(part, into: rhs)
                    apply(op, lhs, rhs, part.count)
                    ElementRun.store(lhs, count: part.count, to: destination, offset: part.lowerBound, dtype: dtype)
                }
            }
        }
        return out
    }

    /// NumPy broadcasting: align trailing axes; each pair must be equal or contain a 1.
    static func broadcastShape(_ a: [Int], _ b: [Int], _ context: String) throws -> [Int] {
        let rank = max(a.count, b.count)
        var shape = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let left = axis < rank - a.count ? 1 : a[axis - (rank - a.count)]
            let right = axis < rank - b.count ? 1 : b[axis - (rank - b.count)]
            guard left == right || left == 1 || right == 1 else {
                throw KinemaError.shapeMismatch(
                    context: "\(context): shapes \(a) and \(b) do not broadcast (axis \(axis - rank): \(left) vs \(right))",
                    expected: "a shape broadcastable with \(a)", found: "\(b)")
            }
            shape[axis] = left == 1 ? right : left
        }
        return shape
    }

    /// Runs `body` over f32 blocks of `source` and stores the results as a new contiguous `dtype` tensor.
    private static func map(
        _ source: StridedSource, shape: [Int], dtype: DType, _ body: (UnsafeMutablePointer<Float>, Int) -> Void
    ) throws -> Tensor {
        let out = try Tensor.uninitialized(shape, dtype: dtype)
        let destination = out.hostPointer
        Parallel.forRanges(source.count, grain: parallelGrain) { range in
            withScratch(min(range.count, scratchBlock)) { scratch in
                forBlocks(range) { part in
                    source.gather(part, into: scratch)
                    body(scratch, part.count)
                    ElementRun.store(scratch, count: part.count, to: destination, offset: part.lowerBound, dtype: dtype)
                }
            }
        }
        return out
    }

    // MARK: - f32 kernels (in place on scratch blocks)

    static func apply(_ op: UnaryOp, _ v: UnsafeMutablePointer<Float>, _ n: Int) {
        switch op {
        case .silu: for i in 0..<n { v[i] = v[i] * sigmoid(v[i]) }
        case .sigmoid: for i in 0..<n { v[i] = sigmoid(v[i]) }
        case .geluTanh:
            // 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³) (PyTorch's approximate="tanh"), evaluated
            // through the identity (1 + tanh u)/2 = sigmoid(2u): one expf instead of a tanhf (about 3× the
            // cost in glibc), and no cancellation in 1 + tanh u for x ≪ 0.
            let twoK: Float = 2 * 0.797_884_560_802_865_4
            for i in 0..<n {
                let x = v[i]
                v[i] = x * sigmoid(twoK * (x + 0.044715 * x * x * x))
            }
        case .geluExact:
            // 0.5·x·(1 + erf(x/√2)). For very negative x, 1 + erf cancels to 0 just as PyTorch's does.
            let invSqrt2: Float = 0.707_106_781_186_547_6
            for i in 0..<n { v[i] = 0.5 * v[i] * (1 + Foundation.erf(v[i] * invSqrt2)) }
        case .exp: for i in 0..<n { v[i] = Foundation.exp(v[i]) }
        case .neg: for i in 0..<n { v[i] = -v[i] }
        case .sqrt: for i in 0..<n { v[i] = v[i].squareRoot() }
        case .rsqrt: for i in 0..<n { v[i] = 1 / v[i].squareRoot() }
        case .tanh: for i in 0..<n { v[i] = Foundation.tanh(v[i]) }
        case .square: for i in 0..<n { v[i] = v[i] * v[i] }
        case .abs: for i in 0..<n { v[i] = Swift.abs(v[i]) }
        case .sin: for i in 0..<n { v[i] = Foundation.sin(v[i]) }
        case .cos: for i in 0..<n { v[i] = Foundation.cos(v[i]) }
        }
    }

    /// `a[i] = a[i] op b[i]`. maximum/minimum propagate NaN, as torch.maximum/minimum do.
    static func apply(_ op: BinaryOp, _ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
        switch op {
        case .add: for i in 0..<n { a[i] = a[i] + b[i] }
        case .sub: for i in 0..<n { a[i] = a[i] - b[i] }
        case .mul: for i in 0..<n { a[i] = a[i] * b[i] }
        case .div: for i in 0..<n { a[i] = a[i] / b[i] }
        case .maximum:
            for i in 0..<n {
                let x = a[i], y = b[i]
                a[i] = (x.isNaN || y.isNaN) ? x + y : (x > y ? x : y)
            }
        case .minimum:
            for i in 0..<n {
                let x = a[i], y = b[i]
                a[i] = (x.isNaN || y.isNaN) ? x + y : (x < y ? x : y)
            }
        }
    }

    /// 1 / (1 + e^−x) written with e^−|x|, which never overflows: for x < 0 it is e^x / (1 + e^x), so the
    /// tail x ≪ 0 keeps full relative accuracy instead of becoming 1 / (1 + huge). Finite x never gives NaN,
    /// and x · sigmoid(x) (SiLU) smoothly reaches −0.
    @inline(__always)
    static func sigmoid(_ x: Float) -> Float {
        let e = Foundation.exp(-Swift.abs(x))
        let r = 1 / (1 + e)
        return x >= 0 ? r : e * r
    }
}
