import KinemaCore

// TEMPORARY scaffolding while the op families are written in parallel; each enum moves to its own file
// (CPUMatmul.swift, CPUAttention.swift, CPUConv.swift) and this file is deleted.

enum CPUMatmul {
    static func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor { throw KinemaError.unsupported("matmul") }
    static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor { throw KinemaError.unsupported("linear") }
}
enum CPUAttention {
    static func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws -> Tensor { throw KinemaError.unsupported("attention") }
}
enum CPUConv {
    static func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) throws -> Tensor { throw KinemaError.unsupported("conv3d") }
}
