import KinemaCore

/// y = x·Wᵀ + b. W [out, in] is stored in the compute dtype (or a quantized storage in later work);
/// the bias is kept in f32 since it is added in the f32 epilogue anyway.
public struct Linear {
    public let weight: Tensor  // [out, in]
    public let bias: Tensor?  // [out]
    public let backend: any Backend

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// Loads `weight` [out, in] and, unless `bias` is false, `bias` [out].
    public init(_ w: WeightScope, inFeatures: Int, outFeatures: Int, bias: Bool = true, dtype: DType) throws {
        weight = try w.tensor("weight", shape: [outFeatures, inFeatures], dtype: dtype)
        self.bias = bias ? try w.tensor("bias", shape: [outFeatures], dtype: .f32) : nil
        backend = w.backend
    }

    /// x [..., in] → [..., out] in x's dtype.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try backend.linear(x, weight: weight, bias: bias)
    }
}
