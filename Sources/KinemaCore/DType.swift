// Element types. Names and byte sizes follow PyTorch / safetensors ("F32", "BF16", "F8_E4M3", …).

public enum DType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, f8e4m3, f8e5m2, i8, u8, i32, i64, bool

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .f8e4m3, .f8e5m2, .i8, .u8, .bool: return 1
        case .i64: return 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f32, .f16, .bf16, .f8e4m3, .f8e5m2: return true
        default: return false
        }
    }

    /// The dtype tag used in safetensors headers.
    public var safetensorsName: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f8e4m3: return "F8_E4M3"
        case .f8e5m2: return "F8_E5M2"
        case .i8: return "I8"
        case .u8: return "U8"
        case .i32: return "I32"
        case .i64: return "I64"
        case .bool: return "BOOL"
        }
    }

    public init?(safetensorsName: String) {
        guard let match = DType.allCases.first(where: { $0.safetensorsName == safetensorsName }) else { return nil }
        self = match
    }
}
