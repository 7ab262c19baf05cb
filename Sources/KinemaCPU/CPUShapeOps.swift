import KinemaCore

// Copies that change layout or element type: contiguous, cast, concat, gatherRows. These handle every
// DType, including f8 and the integer types; contiguous, concat and gatherRows move bytes unchanged.

enum CPUShapeOps {
    /// `x` itself when already contiguous (views share storage), else a row-major copy.
    static func contiguous(_ x: Tensor) throws -> Tensor {
        try CPUChecks.host(x, "contiguous")
        if x.isContiguous { return x }
        let out = try Tensor.uninitialized(x.shape, dtype: x.dtype)
        let source = try StridedSource(x)
        let destination = out.hostPointer
        let size = x.dtype.byteSize
        Parallel.forRanges(source.count, grain: parallelGrain) { range in
            source.gatherBytes(range, into: destination + range.lowerBound * size)
        }
        return out
    }

    /// Element type conversion. Float targets round as FloatConversion does (f8e4m3 overflow → NaN, as
    /// PyTorch's cast); float → integer truncates toward zero (see `HostElements.store` for NaN and
    /// out-of-range values); integer → integer wraps like C; anything → bool is `value != 0`.
    static func cast(_ x: Tensor, to dtype: DType) throws -> Tensor {
        try CPUChecks.host(x, "cast")
        if dtype == x.dtype { return try contiguous(x) }
        let out = try Tensor.uninitialized(x.shape, dtype: dtype)
        let source = try StridedSource(x)
        let destination = out.hostPointer
        // Integer sources go through Int64 so that large values survive exactly; everything else through f32,
        // which holds every f16/bf16/f8 value exactly.
        let viaIntegers = !x.dtype.isFloatingPoint
        Parallel.forRanges(source.count, grain: parallelGrain) { range in
            if viaIntegers {
                let scratch = UnsafeMutablePointer<Int64>.allocate(capacity: min(range.count, scratchBlock))
                defer { scratch.deallocate() }
                forBlocks(range) { block in
                    var written = 0
                    let stride = source.innerStride
                    source.forEachRun(block) { elementOffset, length in
                        ElementRun.loadIntegers(source.base, offset: elementOffset, stride: stride, count: length,
                                                dtype: source.dtype, into: scratch + written)
                        written += length
                    }
                    ElementRun.storeIntegers(scratch, count: block.count, to: destination, offset: block.lowerBound, dtype: dtype)
                }
            } else {
                withScratch(min(range.count, scratchBlock)) { scratch in
                    forBlocks(range) { block in
                        source.gather(block, into: scratch)
                        ElementRun.store(scratch, count: block.count, to: destination, offset: block.lowerBound, dtype: dtype)
                    }
                }
            }
        }
        return out
    }

    /// Concatenates along `axis`. All inputs share rank, dtype and every other axis; any may be empty
    /// along `axis`. The result is always a new tensor, even for a single input.
    static func concat(_ xs: [Tensor], axis requested: Int) throws -> Tensor {
        guard let first = xs.first else {
            throw KinemaError.invalidArgument("concat: needs at least one tensor")
        }
        let axis = try first.axis(requested)
        for (index, x) in xs.enumerated() {
            try CPUChecks.host(x, "concat input \(index)")
            guard x.dtype == first.dtype else {
                throw KinemaError.dtypeMismatch(context: "concat input \(index)", expected: first.dtype.rawValue, found: x.dtype)
            }
            var expected = first.shape
            if x.rank == first.rank { expected[axis] = x.shape[axis] }
            guard x.shape == expected else {
                var pattern = first.shape.map(String.init)
                pattern[axis] = "*"
                throw KinemaError.shapeMismatch(
                    context: "concat input \(index) along axis \(axis)",
                    expected: "[\(pattern.joined(separator: ", "))]", found: "\(x.shape)")
            }
        }
        var shape = first.shape
        shape[axis] = xs.reduce(0) { $0 + $1.shape[axis] }
        let out = try Tensor.uninitialized(shape, dtype: first.dtype)
        guard out.count > 0 else { return out }

        // The output is `outer` slabs of [total · inner]; input i fills columns [start_i, start_i + n_i)
        // of each slab, i.e. a contiguous piece of n_i · inner elements per slab.
        let inner = shape[(axis + 1)...].reduce(1, *)
        let slab = shape[axis] * inner
        let size = first.dtype.byteSize
        let destination = out.hostPointer
        var start = 0
        for x in xs {
            let piece = x.shape[axis] * inner
            defer { start += x.shape[axis] }
            guard x.count > 0 else { continue }
            let source = try StridedSource(x)
            let columnOffset = start * inner
            Parallel.forRanges(x.count, grain: parallelGrain) { range in
                // Split the range where it crosses from one slab's piece to the next.
                var position = range.lowerBound
                while position < range.upperBound {
                    let slabIndex = position / piece
                    let end = min(range.upperBound, (slabIndex + 1) * piece)
                    let target = slabIndex * slab + columnOffset + (position - slabIndex * piece)
                    source.gatherBytes(position..<end, into: destination + target * size)
                    position = end
                }
            }
        }
        return out
    }

    /// out[r, :] = table[indices[r], :] (Backend.gatherRows): each row is one memcpy from wherever the
    /// table's row stride puts it; threads split the output rows.
    static func gatherRows(_ table: Tensor, indices: [Int]) throws -> Tensor {
        try CPUChecks.host(table, "gatherRows")
        let (_, width) = try RowGather.validate(table, indices: indices)
        let out = try Tensor.uninitialized([indices.count, width], dtype: table.dtype)
        guard out.count > 0 else { return out }
        let size = table.dtype.byteSize
        let rowBytes = width * size
        let rowStrideBytes = table.strides[0] * size
        let source = table.hostPointer
        let destination = out.hostPointer
        Parallel.forRanges(indices.count, grain: max(1, parallelGrain / width)) { range in
            for row in range {
                (destination + row * rowBytes).copyMemory(from: source + indices[row] * rowStrideBytes, byteCount: rowBytes)
            }
        }
        return out
    }
}
