import KinemaCore

/// LayerNorm over the last axis, statistics in f32; affine parameters optional (Wan's norm1/norm2 and the
/// head norm have none).
public struct LayerNorm {
    public let weight: Tensor?
    public let bias: Tensor?
    public let eps: Float
    public let backend: any Backend

    /// A parameter-free LayerNorm.
    public init(eps: Float, backend: any Backend) {
        weight = nil
        bias = nil
        self.eps = eps
        self.backend = backend
    }

    /// An affine LayerNorm loading `weight` and `bias` [dim] as f32.
    public init(_ w: WeightScope, dim: Int, eps: Float) throws {
        weight = try w.tensor("weight", shape: [dim], dtype: .f32)
        bias = try w.tensor("bias", shape: [dim], dtype: .f32)
        self.eps = eps
        backend = w.backend
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try backend.layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}

/// RMSNorm over the last axis with a learned scale (kept in f32).
public struct RMSNorm {
    public let weight: Tensor
    public let eps: Float
    public let backend: any Backend

    public init(_ w: WeightScope, dim: Int, eps: Float, key: String = "weight") throws {
        weight = try w.tensor(key, shape: [dim], dtype: .f32)
        self.eps = eps
        backend = w.backend
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try backend.rmsNorm(x, weight: weight, eps: eps)
    }
}
