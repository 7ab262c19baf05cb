// Anything that holds named tensors: a safetensors file, a sharded checkpoint, a .pth archive, a GGUF
// file, or tensors in memory. Reading a tensor's metadata must not read its data.

public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]

    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
}

public protocol TensorSource: AnyObject {
    /// A human-readable origin for error messages (a path, or "memory").
    var origin: String { get }
    /// All tensor names, sorted.
    var names: [String] { get }
    func info(_ name: String) -> TensorInfo?
    /// The tensor's data as a host tensor (zero-copy where the format allows).
    func tensor(_ name: String) throws -> Tensor
}

/// Tensors held in memory, e.g. built by tests or converted from another format.
public final class InMemoryTensors: TensorSource {
    public let origin: String
    private var tensors: [String: Tensor]

    public init(_ tensors: [String: Tensor], origin: String = "memory") {
        self.tensors = tensors
        self.origin = origin
    }

    public var names: [String] { tensors.keys.sorted() }

    public func info(_ name: String) -> TensorInfo? {
        tensors[name].map { TensorInfo(name: name, dtype: $0.dtype, shape: $0.shape) }
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let tensor = tensors[name] else {
            throw KinemaError.badFile(path: origin, location: name, reason: "no such tensor")
        }
        return tensor
    }
}
