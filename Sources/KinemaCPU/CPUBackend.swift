import KinemaCore

// The CPU reference backend: correct first, multi-threaded, and fast enough to run the tiny and demo models
// in tests. Each op family lives in its own file; this type only routes.

public final class CPUBackend: Backend {
    public static let shared = CPUBackend()
    public let device: Device = .cpu

    public init() {}

    public func upload(_ x: Tensor) throws -> Tensor {
        guard x.device == .cpu else {
            throw KinemaError.unsupported("the CPU backend cannot read a tensor on \(x.device); download it from its backend first")
        }
        return x
    }

    public func download(_ x: Tensor) throws -> Tensor { try contiguous(x) }

    public func zeros(_ shape: [Int], dtype: DType) throws -> Tensor { try Tensor.zeros(shape, dtype: dtype) }

    public func contiguous(_ x: Tensor) throws -> Tensor { try CPUShapeOps.contiguous(x) }
    public func cast(_ x: Tensor, to dtype: DType) throws -> Tensor { try CPUShapeOps.cast(x, to: dtype) }
    public func concat(_ xs: [Tensor], axis: Int) throws -> Tensor { try CPUShapeOps.concat(xs, axis: axis) }
    public func gatherRows(_ table: Tensor, indices: [Int]) throws -> Tensor { try CPUShapeOps.gatherRows(table, indices: indices) }

    public func unary(_ op: UnaryOp, _ x: Tensor) throws -> Tensor { try CPUElementwise.unary(op, x) }
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) throws -> Tensor { try CPUElementwise.binary(op, a, b) }
    public func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try CPUElementwise.affine(x, scale: scale, shift: shift)
    }
    public func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int], keepDims: Bool) throws -> Tensor {
        try CPUReduce.reduce(op, x, axes: axes, keepDims: keepDims)
    }

    public func softmax(_ x: Tensor) throws -> Tensor { try CPUNorms.softmax(x) }
    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        try CPUNorms.layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        try CPUNorms.rmsNorm(x, weight: weight, eps: eps)
    }
    public func rope(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor { try CPURope.apply(x, cos: cos, sin: sin) }

    public func modulatedLayerNorm(
        _ x: Tensor, weight: Tensor?, bias: Tensor?, shift: Tensor?, scale: Tensor?, eps: Float, outDType: DType
    ) throws -> Tensor {
        try CPUFused.modulatedLayerNorm(x, weight: weight, bias: bias, shift: shift, scale: scale, eps: eps, outDType: outDType)
    }
    public func gatedResidual(_ x: Tensor, _ y: Tensor, gate: Tensor?) throws -> Tensor {
        try CPUFused.gatedResidual(x, y, gate: gate)
    }
    public func rmsNormRope(_ x: Tensor, weight: Tensor?, eps: Float, cos: Tensor, sin: Tensor, heads: Int) throws -> Tensor {
        try CPUFused.rmsNormRope(x, weight: weight, eps: eps, cos: cos, sin: sin, heads: heads)
    }

    public func channelRMSNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor {
        try composedChannelRMSNorm(x, weight: weight, eps: eps, silu: silu)
    }

    public func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try CPUMatmul.matmul(a, b) }
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: LinearActivation) throws -> Tensor {
        try CPUMatmul.linear(x, weight: weight, bias: bias, activation: activation)
    }
    public func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws -> Tensor {
        try CPUAttention.attention(query: query, key: key, value: value, scale: scale)
    }
    public func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) throws -> Tensor {
        try CPUConv.conv3d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }

    public func conv3dChannelsLast(
        _ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?, stride: [Int], padding: [Int]
    ) throws -> Tensor {
        try CPUConvChannelsLast.conv3d(x, weight: weight, bias: bias, residual: residual, stride: stride, padding: padding)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool) throws -> Tensor {
        try composedRMSNorm(x, weight: weight, eps: eps, silu: silu)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, silu: Bool, after prefix: Tensor) throws -> Tensor {
        try composedRMSNorm(x, weight: weight, eps: eps, silu: silu, after: prefix)
    }
}
