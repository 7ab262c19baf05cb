// A tensor is a typed, strided view of a `Storage`: PyTorch dimension order (outermost first), strides
// and offset counted in elements. Views (reshape, permute, narrow, expand) share storage; `contiguous()`
// and every computing op live on a `Backend`.

public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    public let storage: Storage
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    public let dtype: DType

    public var device: Device { storage.device }
    public var rank: Int { shape.count }
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }

    /// Creates a view; throws if the view would read outside the storage.
    public init(storage: Storage, shape: [Int], strides: [Int], offset: Int = 0, dtype: DType) throws {
        guard shape.count == strides.count, shape.allSatisfy({ $0 >= 0 }), offset >= 0 else {
            throw KinemaError.invalidArgument("tensor view: bad shape \(shape) / strides \(strides) / offset \(offset)")
        }
        if !shape.contains(0) {
            var last = offset
            var first = offset
            for (size, stride) in zip(shape, strides) {
                if stride >= 0 { last += (size - 1) * stride } else { first += (size - 1) * stride }
            }
            guard first >= 0, (last + 1) * dtype.byteSize <= storage.byteCount else {
                throw KinemaError.invalidArgument(
                    "tensor view \(shape) with strides \(strides) at offset \(offset) reads past its \(storage.byteCount)-byte storage")
            }
        }
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.dtype = dtype
    }

    /// A contiguous tensor over the whole of `storage` (or its first `count` elements).
    public init(storage: Storage, shape: [Int], dtype: DType) throws {
        try self.init(storage: storage, shape: shape, strides: Tensor.contiguousStrides(for: shape), offset: 0, dtype: dtype)
    }

    /// Row-major strides for a shape.
    public static func contiguousStrides(for shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= max(shape[axis], 1)
        }
        return strides
    }

    public var isContiguous: Bool {
        // An empty tensor has no elements to be out of order (as in PyTorch); its strides need not
        // follow the row-major pattern past the zero-size axis.
        if shape.contains(0) { return true }
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// Host address of element 0 of this view. Only meaningful for CPU tensors.
    public var hostPointer: UnsafeMutableRawPointer {
        storage.base + offset * dtype.byteSize
    }

    /// Normalizes a possibly negative axis.
    public func axis(_ axis: Int) throws -> Int {
        let resolved = axis < 0 ? axis + rank : axis
        guard resolved >= 0, resolved < rank else {
            throw KinemaError.invalidArgument("axis \(axis) out of range for a rank-\(rank) tensor \(shape)")
        }
        return resolved
    }

    public var description: String {
        "Tensor(\(shape.map(String.init).joined(separator: "×")), \(dtype.rawValue), \(device))"
    }
}
