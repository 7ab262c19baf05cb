import KinemaCore

// Walking arbitrary strided views in logical (row-major) order, in runs along the innermost axis.
//
// Every CPU kernel reads its inputs through a `StridedSource`: the view's axes with size-1 axes dropped
// and neighbours merged wherever the strides allow (a contiguous tensor becomes one axis, a permuted one
// keeps only the axes that really jump). Kernels then work on flat index ranges of the logical order, so
// a contiguous input is one long run per block and only genuinely strided inputs pay per-run overhead.
// Broadcast axes have stride 0 and are walked like any other axis.

struct StridedSource {
    let base: UnsafeRawPointer
    let dtype: DType
    /// Element offset of logical element 0.
    let offset: Int
    /// Merged axes, outermost first; never empty (a scalar is one axis of size 1).
    let shape: [Int]
    let strides: [Int]
    let count: Int

    /// The stride of the innermost merged axis: successive elements of one run are this far apart.
    var innerStride: Int { strides[strides.count - 1] }

    init(base: UnsafeRawPointer, dtype: DType, offset: Int, shape: [Int], strides: [Int]) {
        self.base = base
        self.dtype = dtype
        self.offset = offset
        self.count = shape.reduce(1, *)
        (self.shape, self.strides) = StridedSource.merged(shape: shape, strides: strides, isEmpty: count == 0)
    }

    /// A host tensor, optionally broadcast (NumPy rules, stride 0) to `target`.
    init(_ x: Tensor, broadcastTo target: [Int]? = nil) throws {
        try CPUChecks.host(x, "CPU kernel")
        let view = try target.map { try x.expanded(to: $0) } ?? x
        self.init(base: UnsafeRawPointer(view.storage.base), dtype: view.dtype, offset: view.offset,
                  shape: view.shape, strides: view.strides)
    }

    /// Drops size-1 axes and merges axis i into axis i+1 when stride[i] == stride[i+1]·size[i+1]
    /// (which includes two broadcast axes, 0 == 0·n).
    private static func merged(shape: [Int], strides: [Int], isEmpty: Bool) -> ([Int], [Int]) {
        if isEmpty { return ([0], [1]) }
        var mergedShape: [Int] = []
        var mergedStrides: [Int] = []
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if let innerSize = mergedShape.first, let innerStride = mergedStrides.first,
               strides[axis] == innerStride * innerSize {
                mergedShape[0] = innerSize * shape[axis]
            } else {
                mergedShape.insert(shape[axis], at: 0)
                mergedStrides.insert(strides[axis], at: 0)
            }
        }
        if mergedShape.isEmpty { return ([1], [1]) }
        return (mergedShape, mergedStrides)
    }

    /// Calls `body(elementOffset, length)` for each maximal run of logical elements in `range` that lies
    /// on one innermost row; the run's elements are `innerStride` apart starting at `elementOffset`.
    /// `shift` is added to every offset (the same walk from another origin, e.g. per output of a reduction).
    @inline(__always)
    func forEachRun(_ range: Range<Int>, shiftedBy shift: Int = 0, _ body: (_ elementOffset: Int, _ length: Int) -> Void) {
        guard !range.isEmpty else { return }
        let rank = shape.count
        let inner = shape[rank - 1]
        let innerStride = strides[rank - 1]
        if rank == 1 {
            body(offset + shift + range.lowerBound * innerStride, range.count)
            return
        }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { index in
            // Unravel the first logical index into a multi-index and its element offset.
            var position = offset + shift
            var rest = range.lowerBound
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                index[axis] = rest % shape[axis]
                rest /= shape[axis]
                position += index[axis] * strides[axis]
            }
            var remaining = range.count
            while remaining > 0 {
                let length = min(inner - index[rank - 1], remaining)
                body(position, length)
                remaining -= length
                guard remaining > 0 else { break }
                // The run ended at the end of an innermost row: rewind to the row's start, then carry
                // into the outer axes.
                position -= index[rank - 1] * innerStride
                index[rank - 1] = 0
                var axis = rank - 2
                while axis >= 0 {
                    index[axis] += 1
                    position += strides[axis]
                    if index[axis] < shape[axis] { break }
                    position -= shape[axis] * strides[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }

    /// Converts logical elements `range` to f32 into `out[0..<range.count]`.
    @inline(__always)
    func gather(_ range: Range<Int>, shiftedBy shift: Int = 0, into out: UnsafeMutablePointer<Float>) {
        var written = 0
        let stride = innerStride
        forEachRun(range, shiftedBy: shift) { elementOffset, length in
            ElementRun.load(base, offset: elementOffset, stride: stride, count: length, dtype: dtype, into: out + written)
            written += length
        }
    }

    /// The element offset of logical element `index` (0 ≤ index < count).
    func elementOffset(of index: Int) -> Int {
        var position = offset
        var rest = index
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            position += (rest % shape[axis]) * strides[axis]
            rest /= shape[axis]
        }
        return position
    }

    /// Copies logical elements `range`, bytes unchanged, to consecutive elements at `destination`.
    func gatherBytes(_ range: Range<Int>, into destination: UnsafeMutableRawPointer) {
        var written = 0
        let stride = innerStride
        let size = dtype.byteSize
        forEachRun(range) { elementOffset, length in
            ElementRun.copyBytes(from: base, offset: elementOffset, stride: stride, count: length, byteSize: size,
                                 to: destination + written * size)
            written += length
        }
    }
}

/// A tensor seen as rows along its last axis: `[..., D]` is `rows` rows of `length` elements, row-major
/// over the leading axes. Element j of a row starting at element offset o is at o + j · elementStride.
struct RowSource {
    let base: UnsafeRawPointer
    let dtype: DType
    let rows: Int
    let length: Int
    let elementStride: Int
    /// The outer axes, walked one "element" per row.
    private let outer: StridedSource

    init(_ x: Tensor, _ context: String) throws {
        try CPUChecks.host(x, context)
        guard x.rank >= 1 else {
            throw KinemaError.invalidArgument("\(context): needs at least one axis, got a scalar")
        }
        base = UnsafeRawPointer(x.storage.base)
        dtype = x.dtype
        length = x.shape[x.rank - 1]
        elementStride = x.strides[x.rank - 1]
        outer = StridedSource(base: base, dtype: dtype, offset: x.offset,
                              shape: Array(x.shape.dropLast()), strides: Array(x.strides.dropLast()))
        rows = length == 0 ? 0 : outer.count
    }

    /// Calls `body(row, elementOffsetOfRow)` for each row in `range`, in order.
    @inline(__always)
    func forEachRow(_ range: Range<Int>, _ body: (_ row: Int, _ elementOffset: Int) -> Void) {
        var row = range.lowerBound
        let rowStride = outer.innerStride
        outer.forEachRun(range) { start, length in
            for step in 0..<length { body(row + step, start + step * rowStride) }
            row += length
        }
    }

    /// Row `r` as f32 in `out[0..<length]`.
    @inline(__always)
    func load(rowAt elementOffset: Int, into out: UnsafeMutablePointer<Float>) {
        ElementRun.load(base, offset: elementOffset, stride: elementStride, count: length, dtype: dtype, into: out)
    }
}

/// Argument checks shared by the CPU kernels; each throws a typed error naming the op.
enum CPUChecks {
    static func host(_ x: Tensor, _ context: String) throws {
        guard x.device == .cpu else {
            throw KinemaError.deviceMismatch(context: context, expected: .cpu, found: x.device)
        }
    }

    /// Computing kernels load through f32, which is only meaningful for floating-point storage.
    static func floating(_ x: Tensor, _ context: String) throws {
        try host(x, context)
        guard x.dtype.isFloatingPoint else {
            throw KinemaError.dtypeMismatch(context: context, expected: "a floating-point dtype", found: x.dtype)
        }
    }

    /// A per-feature parameter (norm weight/bias) of shape [length].
    static func vector(_ p: Tensor, length: Int, _ context: String) throws {
        try floating(p, context)
        guard p.shape == [length] else {
            throw KinemaError.shapeMismatch(context: context, expected: "[\(length)]", found: "\(p.shape)")
        }
    }
}

/// Elements per scratch block: 16 KiB of f32 stays in L1 alongside a second operand.
let scratchBlock = 4096
/// Fewest elements worth handing to a thread of their own (~tens of µs of simple work).
let parallelGrain = 32768

/// A per-thread f32 scratch buffer, freed when `body` returns.
@inline(__always)
func withScratch<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
    defer { buffer.deallocate() }
    return try body(buffer)
}

/// Splits `range` into consecutive blocks of at most `scratchBlock` elements.
@inline(__always)
func forBlocks(_ range: Range<Int>, _ body: (Range<Int>) -> Void) {
    var start = range.lowerBound
    while start < range.upperBound {
        let end = min(start + scratchBlock, range.upperBound)
        body(start..<end)
        start = end
    }
}
