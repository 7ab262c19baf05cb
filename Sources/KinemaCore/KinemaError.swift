// Errors that name what went wrong and where. Every failure a user or a file can cause is one of these;
// nothing a file controls may reach a precondition or a force-unwrap.

public enum KinemaError: Error, CustomStringConvertible, Equatable {
    /// A tensor had the wrong shape for an operation or a weight slot.
    case shapeMismatch(context: String, expected: String, found: String)
    case dtypeMismatch(context: String, expected: String, found: DType)
    case deviceMismatch(context: String, expected: Device, found: Device)
    case invalidArgument(String)
    case unsupported(String)
    case outOfMemory(requestedBytes: Int, detail: String)
    /// A file could not be read or is malformed. `location` names the tensor/key/offset when known.
    case badFile(path: String, location: String?, reason: String)
    case io(path: String, reason: String)
    /// Checkpoint keys that a model expected but did not find, and keys the model did not use.
    case weightAccounting(component: String, missing: [String], unused: [String], wrong: [String])
    case missingLibrary(name: String, searched: [String])

    public var description: String {
        switch self {
        case let .shapeMismatch(context, expected, found):
            return "\(context): expected shape \(expected), found \(found)"
        case let .dtypeMismatch(context, expected, found):
            return "\(context): expected dtype \(expected), found \(found.rawValue)"
        case let .deviceMismatch(context, expected, found):
            return "\(context): expected a tensor on \(expected), found one on \(found)"
        case let .invalidArgument(message):
            return message
        case let .unsupported(message):
            return "unsupported: \(message)"
        case let .outOfMemory(requested, detail):
            return "out of memory: asked for \(requested) bytes (\(detail))"
        case let .badFile(path, location, reason):
            if let location { return "\(path): \(location): \(reason)" }
            return "\(path): \(reason)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        case let .weightAccounting(component, missing, unused, wrong):
            var lines = ["\(component): checkpoint does not match the model"]
            func section(_ title: String, _ keys: [String]) {
                guard !keys.isEmpty else { return }
                let shown = keys.prefix(20).map { "    \($0)" }.joined(separator: "\n")
                let more = keys.count > 20 ? "\n    … and \(keys.count - 20) more" : ""
                lines.append("  \(title) (\(keys.count)):\n\(shown)\(more)")
            }
            section("missing keys", missing)
            section("unused keys", unused)
            section("wrong shape or dtype", wrong)
            return lines.joined(separator: "\n")
        case let .missingLibrary(name, searched):
            return "could not load \(name); looked in: \(searched.joined(separator: ", "))"
        }
    }
}
