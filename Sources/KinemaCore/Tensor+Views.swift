// Metadata-only views. Each throws a clear error when the request does not fit the tensor.

extension Tensor {
    /// Resolves one `-1` in a requested shape and checks the element count.
    public func resolvedShape(_ requested: [Int]) throws -> [Int] {
        var shape = requested
        let unknown = shape.indices.filter { shape[$0] == -1 }
        guard unknown.count <= 1, shape.allSatisfy({ $0 >= -1 }) else {
            throw KinemaError.invalidArgument("reshape: bad target shape \(requested)")
        }
        let known = shape.filter { $0 != -1 }.reduce(1, *)
        if let index = unknown.first {
            guard known > 0, count % known == 0 else {
                throw KinemaError.shapeMismatch(context: "reshape", expected: "\(requested)", found: "\(self.shape)")
            }
            shape[index] = count / known
        }
        guard shape.reduce(1, *) == count else {
            throw KinemaError.shapeMismatch(context: "reshape", expected: "\(requested)", found: "\(self.shape)")
        }
        return shape
    }

    /// A view with a new shape, or nil when the strides cannot express it without a copy.
    public func viewed(as requested: [Int]) throws -> Tensor? {
        let newShape = try resolvedShape(requested)
        if isContiguous {
            return try Tensor(storage: storage, shape: newShape, strides: Tensor.contiguousStrides(for: newShape), offset: offset, dtype: dtype)
        }
        // Merge/split dimensions group by group, as PyTorch's view does.
        let oldDims = zip(shape, strides).filter { $0.0 != 1 }
        var newStrides = [Int](repeating: 0, count: newShape.count)
        var oldIndex = 0
        var newIndex = 0
        while newIndex < newShape.count {
            if newShape[newIndex] == 1 { newStrides[newIndex] = 1; newIndex += 1; continue }
            guard oldIndex < oldDims.count else { return nil }
            // Collect a run of old dims that are mutually contiguous and match the product of new dims.
            var oldProduct = oldDims[oldIndex].0
            var runEnd = oldIndex
            var newProduct = newShape[newIndex]
            var newEnd = newIndex
            while oldProduct != newProduct {
                if oldProduct < newProduct {
                    runEnd += 1
                    guard runEnd < oldDims.count, oldDims[runEnd - 1].1 == oldDims[runEnd].0 * oldDims[runEnd].1 else { return nil }
                    oldProduct *= oldDims[runEnd].0
                } else {
                    newEnd += 1
                    guard newEnd < newShape.count else { return nil }
                    newProduct *= newShape[newEnd]
                }
            }
            var running = oldDims[runEnd].1
            for axis in stride(from: newEnd, through: newIndex, by: -1) {
                newStrides[axis] = running
                running *= newShape[axis]
            }
            oldIndex = runEnd + 1
            newIndex = newEnd + 1
        }
        guard oldIndex == oldDims.count else { return nil }
        return try Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset, dtype: dtype)
    }

    public func permuted(_ order: [Int]) throws -> Tensor {
        let resolved = try order.map { try axis($0) }
        guard resolved.count == rank, Set(resolved).count == rank else {
            throw KinemaError.invalidArgument("permute: \(order) is not a permutation of \(rank) axes")
        }
        return try Tensor(storage: storage, shape: resolved.map { shape[$0] }, strides: resolved.map { strides[$0] }, offset: offset, dtype: dtype)
    }

    public func transposed(_ first: Int, _ second: Int) throws -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(try axis(first), try axis(second))
        return try permuted(order)
    }

    /// Elements `start ..< start + length` along `axis`.
    public func narrowed(axis requested: Int, start: Int, length: Int) throws -> Tensor {
        let dim = try axis(requested)
        guard start >= 0, length >= 0, start + length <= shape[dim] else {
            throw KinemaError.invalidArgument("narrow: [\(start), \(start + length)) outside 0..<\(shape[dim]) on axis \(dim) of \(shape)")
        }
        var newShape = shape
        newShape[dim] = length
        return try Tensor(storage: storage, shape: newShape, strides: strides, offset: offset + start * strides[dim], dtype: dtype)
    }

    /// Every `step`-th element in `start ..< end` along `axis`.
    public func sliced(axis requested: Int, start: Int, end: Int, step: Int = 1) throws -> Tensor {
        let dim = try axis(requested)
        guard step > 0, start >= 0, start <= end, end <= shape[dim] else {
            throw KinemaError.invalidArgument("slice: \(start)..<\(end) step \(step) invalid for axis \(dim) of \(shape)")
        }
        var newShape = shape
        var newStrides = strides
        newShape[dim] = (end - start + step - 1) / step
        newStrides[dim] = strides[dim] * step
        return try Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset + start * strides[dim], dtype: dtype)
    }

    /// Broadcasts size-1 axes (and missing leading axes) to `target` with stride 0.
    public func expanded(to target: [Int]) throws -> Tensor {
        guard target.count >= rank else {
            throw KinemaError.shapeMismatch(context: "expand", expected: "\(target)", found: "\(shape)")
        }
        let lead = target.count - rank
        var newStrides = [Int](repeating: 0, count: target.count)
        for axis in 0..<target.count {
            guard axis >= lead else { continue }
            let size = shape[axis - lead]
            if size == target[axis] {
                newStrides[axis] = strides[axis - lead]
            } else if size != 1 {
                throw KinemaError.shapeMismatch(context: "expand", expected: "\(target)", found: "\(shape)")
            }
        }
        return try Tensor(storage: storage, shape: target, strides: newStrides, offset: offset, dtype: dtype)
    }

    public func unsqueezed(_ requested: Int) throws -> Tensor {
        let position = requested < 0 ? requested + rank + 1 : requested
        guard position >= 0, position <= rank else {
            throw KinemaError.invalidArgument("unsqueeze: axis \(requested) out of range for rank \(rank)")
        }
        var newShape = shape
        var newStrides = strides
        newShape.insert(1, at: position)
        newStrides.insert(position < rank ? strides[position] * shape[position] : 1, at: position)
        return try Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset, dtype: dtype)
    }

    public func squeezed(_ requested: Int) throws -> Tensor {
        let dim = try axis(requested)
        guard shape[dim] == 1 else {
            throw KinemaError.invalidArgument("squeeze: axis \(dim) of \(shape) has size \(shape[dim]), not 1")
        }
        var newShape = shape
        var newStrides = strides
        newShape.remove(at: dim)
        newStrides.remove(at: dim)
        return try Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset, dtype: dtype)
    }

    /// Splits `axis` into `parts` equal views.
    public func chunked(_ parts: Int, axis requested: Int) throws -> [Tensor] {
        let dim = try axis(requested)
        guard parts > 0, shape[dim] % parts == 0 else {
            throw KinemaError.invalidArgument("chunk: axis \(dim) of \(shape) does not split into \(parts) parts")
        }
        let size = shape[dim] / parts
        return try (0..<parts).map { try narrowed(axis: dim, start: $0 * size, length: size) }
    }
}
