import KinemaCore

/// How a model computes. `f32` is the reference; `bf16` stores matrix weights and the activations that
/// feed GEMMs and attention in bf16 while norms' statistics, modulation, RoPE tables, the time embedding
/// and the residual stream stay f32 (as upstream Wan does under autocast).
public enum Precision: String, Sendable, CaseIterable, Codable {
    case f32, bf16

    /// The dtype of GEMM/attention operands.
    public var computeDType: DType {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        }
    }
}
