import KinemaCore

// sum / mean / max over a set of axes. Sums accumulate in f64 (so long reductions of f32 or bf16 values
// lose nothing before the one final rounding); max is exact in any precision and propagates NaN as
// torch.amax does.
//
// The input is split into a "kept" view (the output's axes, in order) and a "reduced" view (the axes
// being reduced), each with its neighbours merged. Two loop orders:
// - rows: each output walks its own reduced elements. Right when the reduced axes are the fast ones
//   (mean over the last axis).
// - columns: when a kept axis has unit stride and the reduced ones do not (mean over L of [B, L, D]),
//   each thread adds whole unit-stride stretches of the kept axis into an f64 accumulator row for every
//   reduced position, so memory is read in order instead of with a stride of D per element.

enum CPUReduce {
    static func reduce(_ op: ReduceOp, _ x: Tensor, axes requested: [Int], keepDims: Bool) throws -> Tensor {
        let context = "reduce \(op.rawValue)"
        try CPUChecks.floating(x, context)
        guard !requested.isEmpty else {
            throw KinemaError.invalidArgument("\(context): no axes given; pass every axis to reduce the whole tensor")
        }
        let axes = try requested.map { try x.axis($0) }
        guard Set(axes).count == axes.count else {
            throw KinemaError.invalidArgument("\(context): axis listed twice in \(requested) for shape \(x.shape)")
        }
        let isReduced = (0..<x.rank).map { axes.contains($0) }
        let keptAxes = (0..<x.rank).filter { !isReduced[$0] }
        let reducedAxes = (0..<x.rank).filter { isReduced[$0] }
        let reducedCount = reducedAxes.reduce(1) { $0 * x.shape[$1] }
        if op == .max && reducedCount == 0 {
            throw KinemaError.invalidArgument("\(context): cannot take a max over zero elements (axes \(axes) of \(x.shape))")
        }
        let outShape = keepDims ? (0..<x.rank).map { isReduced[$0] ? 1 : x.shape[$0] } : keptAxes.map { x.shape[$0] }
        let out = try Tensor.uninitialized(outShape, dtype: x.dtype)
        guard out.count > 0 else { return out }

        let base = UnsafeRawPointer(x.storage.base)
        // The kept view carries the tensor's offset; the reduced view is relative to each output's element.
        let kept = StridedSource(base: base, dtype: x.dtype, offset: x.offset,
                                 shape: keptAxes.map { x.shape[$0] }, strides: keptAxes.map { x.strides[$0] })
        let reduced = StridedSource(base: base, dtype: x.dtype, offset: 0,
                                    shape: reducedAxes.map { x.shape[$0] }, strides: reducedAxes.map { x.strides[$0] })
        let keptInner = kept.shape[kept.shape.count - 1]
        if reducedCount > 1 && reduced.innerStride != 1 && kept.innerStride == 1 && keptInner >= 16 {
            reduceColumns(op, kept: kept, reduced: reduced, into: out)
        } else {
            reduceRows(op, kept: kept, reduced: reduced, into: out)
        }
        return out
    }

    /// The f64 accumulator's starting value.
    @inline(__always)
    private static func identity(_ op: ReduceOp) -> Double { op == .max ? -Double.infinity : 0 }

    /// The output value from an accumulator over `count` elements.
    @inline(__always)
    private static func finish(_ op: ReduceOp, _ accumulator: Double, count: Int) -> Float {
        op == .mean ? Float(accumulator / Double(count)) : Float(accumulator)
    }

    /// NaN-propagating max: once the accumulator is NaN it stays NaN (NaN > y and y > NaN are both false).
    @inline(__always)
    private static func maxCombine(_ accumulator: Double, _ value: Double) -> Double {
        (value > accumulator || value.isNaN) ? value : accumulator
    }

    /// Folds `values[0..<count]` into `accumulator`. Four independent f64 partial sums keep the adds off one
    /// dependency chain without giving up f64 accuracy.
    @inline(__always)
    private static func fold(_ op: ReduceOp, _ values: UnsafePointer<Float>, _ count: Int, into accumulator: inout Double) {
        if op == .max {
            var m = accumulator
            for index in 0..<count { m = maxCombine(m, Double(values[index])) }
            accumulator = m
            return
        }
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var index = 0
        while index + 4 <= count {
            s0 += Double(values[index])
            s1 += Double(values[index + 1])
            s2 += Double(values[index + 2])
            s3 += Double(values[index + 3])
            index += 4
        }
        while index < count {
            s0 += Double(values[index])
            index += 1
        }
        accumulator += (s0 + s1) + (s2 + s3)
    }

    /// One output at a time, each walking its reduced elements in scratch blocks.
    private static func reduceRows(_ op: ReduceOp, kept: StridedSource, reduced: StridedSource, into out: Tensor) {
        let reducedCount = reduced.count
        let destination = out.hostPointer
        let dtype = out.dtype
        let grain = max(1, parallelGrain / max(reducedCount, 1))
        Parallel.forRanges(kept.count, grain: grain) { range in
            let block = min(max(reducedCount, 1), scratchBlock)
            let outBlock = min(range.count, scratchBlock)
            withScratch(block + outBlock) { scratch in
                let results = scratch + block
                forBlocks(range) { part in
                    var written = 0
                    kept.forEachRun(part) { start, length in
                        for step in 0..<length {
                            let origin = start + step * kept.innerStride
                            var accumulator = identity(op)
                            forBlocks(0..<reducedCount) { chunk in
                                reduced.gather(chunk, shiftedBy: origin, into: scratch)
                                fold(op, scratch, chunk.count, into: &accumulator)
                            }
                            results[written] = finish(op, accumulator, count: reducedCount)
                            written += 1
                        }
                    }
                    ElementRun.store(results, count: part.count, to: destination, offset: part.lowerBound, dtype: dtype)
                }
            }
        }
    }

    /// Accumulates unit-stride stretches of the innermost kept axis, one reduced position at a time.
    /// Work items are (outer kept index, column chunk); chunks are narrowed when there are too few rows
    /// to keep every thread busy.
    private static func reduceColumns(_ op: ReduceOp, kept: StridedSource, reduced: StridedSource, into out: Tensor) {
        let width = kept.shape[kept.shape.count - 1]
        let outerRows = kept.count / width
        let wanted = max(1, (Parallel.threads + outerRows - 1) / outerRows)
        let chunkWidth = min(scratchBlock, max(64, (width + wanted - 1) / wanted))
        let chunksPerRow = (width + chunkWidth - 1) / chunkWidth
        let reducedCount = reduced.count
        let destination = out.hostPointer
        let dtype = out.dtype
        Parallel.forRanges(outerRows * chunksPerRow, grain: 1) { items in
            let accumulators = UnsafeMutablePointer<Double>.allocate(capacity: chunkWidth)
            defer { accumulators.deallocate() }
            withScratch(chunkWidth) { scratch in
                for item in items {
                    let row = item / chunksPerRow
                    let column = (item % chunksPerRow) * chunkWidth
                    let columns = min(chunkWidth, width - column)
                    let origin = kept.elementOffset(of: row * width + column)
                    accumulators.update(repeating: identity(op), count: columns)
                    reduced.forEachRun(0..<reducedCount) { start, length in
                        for step in 0..<length {
                            let offset = origin + start + step * reduced.innerStride
                            ElementRun.load(kept.base, offset: offset, stride: 1, count: columns, dtype: kept.dtype, into: scratch)
                            if op == .max {
                                for j in 0..<columns { accumulators[j] = maxCombine(accumulators[j], Double(scratch[j])) }
                            } else {
                                for j in 0..<columns { accumulators[j] += Double(scratch[j]) }
                            }
                        }
                    }
                    for j in 0..<columns { scratch[j] = finish(op, accumulators[j], count: reducedCount) }
                    ElementRun.store(scratch, count: columns, to: destination, offset: row * width + column, dtype: dtype)
                }
            }
        }
    }
}
