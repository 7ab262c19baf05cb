// Where a tensor's bytes live.

public enum Device: Hashable, Sendable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let ordinal): return "cuda:\(ordinal)"
        }
    }

    /// Parses "cpu", "cuda" (ordinal 0) or "cuda:N".
    public init?(parsing text: String) {
        let lowered = text.lowercased()
        if lowered == "cpu" { self = .cpu; return }
        if lowered == "cuda" || lowered == "gpu" { self = .cuda(0); return }
        if lowered.hasPrefix("cuda:"), let ordinal = Int(lowered.dropFirst(5)), ordinal >= 0 {
            self = .cuda(ordinal)
            return
        }
        return nil
    }
}
