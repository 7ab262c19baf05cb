import KinemaCore

// Checkpoint key layouts as data. A model names its weights once, in one canonical layout; every other
// layout (diffusers, original repo, ComfyUI, GGUF) is a short list of rename rules onto it.

public enum KeyRule: Sendable, Equatable {
    /// Replace `from` with `to` when the key starts with `from`.
    case prefix(String, String)
    /// Replace every occurrence of `from` with `to`.
    case infix(String, String)
    /// Replace the whole key.
    case exact(String, String)

    func apply(_ key: String) -> String {
        switch self {
        case let .prefix(from, to):
            return key.hasPrefix(from) ? to + key.dropFirst(from.count) : key
        case let .infix(from, to):
            return key.contains(from) ? key.replacingOccurrences(of: from, with: to) : key
        case let .exact(from, to):
            return key == from ? to : key
        }
    }
}

/// A set of keys, for allow-lists.
public enum KeyPattern: Sendable, Equatable {
    case exact(String), prefix(String), suffix(String), contains(String)

    public func matches(_ key: String) -> Bool {
        switch self {
        case .exact(let text): return key == text
        case .prefix(let text): return key.hasPrefix(text)
        case .suffix(let text): return key.hasSuffix(text)
        case .contains(let text): return key.contains(text)
        }
    }
}

public struct KeyLayout: Sendable {
    public let name: String
    /// The layout applies when any source key contains one of these.
    public let markers: [String]
    /// Applied in order to every source key, giving the canonical key.
    public let rules: [KeyRule]

    public init(name: String, markers: [String], rules: [KeyRule]) {
        self.name = name
        self.markers = markers
        self.rules = rules
    }

    public func canonical(_ key: String) -> String {
        rules.reduce(key) { $1.apply($0) }
    }

    public func matches(_ keys: [String]) -> Bool {
        markers.isEmpty || keys.contains { key in markers.contains { key.contains($0) } }
    }

    /// Picks the first layout whose markers appear in `keys` (the last entry should be the canonical layout
    /// with no markers).
    public static func detect(_ keys: [String], among layouts: [KeyLayout]) -> KeyLayout? {
        layouts.first { $0.matches(keys) }
    }
}

/// Wrapper prefixes that checkpoints put in front of a model's own keys (ComfyUI's `model.diffusion_model.`,
/// diffusers pipelines' `transformer.`, …). One is stripped only when every key carries it.
public func commonWrapperPrefix(of keys: [String], candidates: [String]) -> String? {
    guard !keys.isEmpty else { return nil }
    return candidates.first { prefix in keys.allSatisfy { $0.hasPrefix(prefix) } }
}
