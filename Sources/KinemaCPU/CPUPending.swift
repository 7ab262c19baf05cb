import KinemaCore

// TEMPORARY scaffolding while the op families are written in parallel; each enum moves to its own file
// (CPUShapeOps.swift, CPUElementwise.swift, CPUReduce.swift, CPUNorms.swift, CPURope.swift, CPUMatmul.swift,
// CPUAttention.swift, CPUConv.swift) and this file is deleted.

enum CPUShapeOps {
    static func contiguous(_ x: Tensor) throws -> Tensor { throw KinemaError.unsupported("contiguous") }
    static func cast(_ x: Tensor, to dtype: DType) throws -> Tensor { throw KinemaError.unsupported("cast") }
    static func concat(_ xs: [Tensor], axis: Int) throws -> Tensor { throw KinemaError.unsupported("concat") }
}
enum CPUElementwise {
    static func unary(_ op: UnaryOp, _ x: Tensor) throws -> Tensor { throw KinemaError.unsupported("unary") }
    static func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) throws -> Tensor { throw KinemaError.unsupported("binary") }
    static func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor { throw KinemaError.unsupported("affine") }
}
enum CPUReduce {
    static func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int], keepDims: Bool) throws -> Tensor { throw KinemaError.unsupported("reduce") }
}
enum CPUNorms {
    static func softmax(_ x: Tensor) throws -> Tensor { throw KinemaError.unsupported("softmax") }
    static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor { throw KinemaError.unsupported("layerNorm") }
    static func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor { throw KinemaError.unsupported("rmsNorm") }
}
enum CPURope {
    static func apply(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor { throw KinemaError.unsupported("rope") }
}
