import KinemaCore

/// 3-D convolution with zero padding (PyTorch Conv3d semantics). weight [Cout, Cin, kT, kH, kW].
public struct Conv3d {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: [Int]
    public let padding: [Int]
    public let backend: any Backend

    public init(
        _ w: WeightScope, inChannels: Int, outChannels: Int, kernel: [Int], stride: [Int], padding: [Int] = [0, 0, 0],
        bias: Bool = true, dtype: DType
    ) throws {
        weight = try w.tensor("weight", shape: [outChannels, inChannels] + kernel, dtype: dtype)
        self.bias = bias ? try w.tensor("bias", shape: [outChannels], dtype: .f32) : nil
        self.stride = stride
        self.padding = padding
        backend = w.backend
    }

    /// x [B, Cin, T, H, W] → [B, Cout, T', H', W'].
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try backend.conv3d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}
