import KinemaCore

// GEMM operands and the packing that feeds the micro-kernels.
//
// Packed layouts (MR×NR is the micro-kernel's tile, see GemmKernels.swift):
//   Ã block, rows r0 ..< r0+mc, depth k0 ..< k0+kc: ⌈mc/MR⌉ slivers of MR·kc floats;
//     sliver s, step k, lane i = A[r0 + s·MR + i, k0 + k]; lanes past the last row are zero.
//   B̃ panel, columns n0 ..< n0+nc, depth k0 ..< k0+kc: ⌈nc/NR⌉ slivers of kc·NR floats;
//     sliver t, step k, lane j = B[k0 + k, n0 + t·NR + j]; lanes past the last column are zero.
// Packing is also where dtypes and strides disappear: operands may be f32, bf16, f16 (or f8) with any
// strides, and are read along whichever axis is unit-stride so that the loads stay sequential.

/// A read-only matrix in host memory: element (i, j) is at `base + (i·rowStride + j·columnStride)·byteSize`.
/// Strides may be anything a tensor view allows (0 for broadcast, larger than the row for views); `dtype`
/// must be a floating-point type.
public struct GemmOperand {
    public var base: UnsafeRawPointer
    public var dtype: DType
    public var rows: Int
    public var columns: Int
    public var rowStride: Int
    public var columnStride: Int

    public init(base: UnsafeRawPointer, dtype: DType, rows: Int, columns: Int, rowStride: Int, columnStride: Int) throws {
        guard dtype.isFloatingPoint else {
            throw KinemaError.dtypeMismatch(context: "GEMM operand", expected: "a floating-point dtype", found: dtype)
        }
        guard rows >= 0, columns >= 0 else {
            throw KinemaError.invalidArgument("GEMM operand: negative size \(rows)×\(columns)")
        }
        self.base = base
        self.dtype = dtype
        self.rows = rows
        self.columns = columns
        self.rowStride = rowStride
        self.columnStride = columnStride
    }

    /// For internal callers whose arguments are correct by construction (no checks).
    init(unchecked base: UnsafeRawPointer, dtype: DType, rows: Int, columns: Int, rowStride: Int, columnStride: Int) {
        self.base = base
        self.dtype = dtype
        self.rows = rows
        self.columns = columns
        self.rowStride = rowStride
        self.columnStride = columnStride
    }

    /// A row-major f32 matrix with leading dimension `rowStride` (≥ columns).
    public init(_ pointer: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int? = nil) throws {
        try self.init(
            base: UnsafeRawPointer(pointer), dtype: .f32, rows: rows, columns: columns,
            rowStride: rowStride ?? columns, columnStride: 1)
    }

    /// The last two axes of a host tensor as a matrix, starting `elementOffset` elements past the view's
    /// first element (used to step through batch axes).
    public init(matrixOf tensor: Tensor, elementOffset: Int = 0) throws {
        guard tensor.rank >= 2 else {
            throw KinemaError.shapeMismatch(context: "GEMM operand", expected: "rank ≥ 2", found: "\(tensor.shape)")
        }
        guard tensor.device == .cpu else {
            throw KinemaError.deviceMismatch(context: "GEMM operand", expected: .cpu, found: tensor.device)
        }
        try self.init(
            base: UnsafeRawPointer(tensor.hostPointer + elementOffset * tensor.dtype.byteSize), dtype: tensor.dtype,
            rows: tensor.shape[tensor.rank - 2], columns: tensor.shape[tensor.rank - 1],
            rowStride: tensor.strides[tensor.rank - 2], columnStride: tensor.strides[tensor.rank - 1])
    }

    /// The same memory read as the transpose.
    public var transposed: GemmOperand {
        var result = self
        swap(&result.rows, &result.columns)
        swap(&result.rowStride, &result.columnStride)
        return result
    }

    @inline(__always) func offset(_ row: Int, _ column: Int) -> Int { row * rowStride + column * columnStride }
}

enum StridedFloats {
    /// out[i·outStride] = source element (start + i·stride) as Float, for i in 0..<count. The dtype switch
    /// is outside the loop; f32→f32 unit-stride is a memcpy.
    @inline(__always)
    static func load(
        _ base: UnsafeRawPointer, dtype: DType, start: Int, stride: Int, count: Int,
        into out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        switch dtype {
        case .f32:
            let source = base.assumingMemoryBound(to: Float.self) + start
            if stride == 1 && outStride == 1 {
                out.update(from: source, count: count)
            } else {
                for i in 0..<count { out[i * outStride] = source[i * stride] }
            }
        case .bf16:
            let source = base.assumingMemoryBound(to: UInt16.self) + start
            for i in 0..<count { out[i * outStride] = Float(bitPattern: UInt32(source[i * stride]) << 16) }
        case .f16:
            let source = base.assumingMemoryBound(to: UInt16.self) + start
            for i in 0..<count { out[i * outStride] = Float(Float16(bitPattern: source[i * stride])) }
        default:
            for i in 0..<count { out[i * outStride] = HostElements.load(base, element: start + i * stride, dtype: dtype) }
        }
    }

    /// Copies rows `rowRange` of a matrix operand into row-major f32 with leading dimension `ld`, reading
    /// along the unit-stride axis when there is one.
    static func copy(_ m: GemmOperand, rows rowRange: Range<Int>, columns columnRange: Range<Int>, into out: UnsafeMutablePointer<Float>, ld: Int) {
        if abs(m.columnStride) != 1 && abs(m.rowStride) == 1 {
            for (j, column) in columnRange.enumerated() {
                load(m.base, dtype: m.dtype, start: m.offset(rowRange.lowerBound, column), stride: m.rowStride,
                     count: rowRange.count, into: out + j, outStride: ld)
            }
        } else {
            for (i, row) in rowRange.enumerated() {
                load(m.base, dtype: m.dtype, start: m.offset(row, columnRange.lowerBound), stride: m.columnStride,
                     count: columnRange.count, into: out + i * ld, outStride: 1)
            }
        }
    }
}

enum GemmPacking {
    /// Packs Ã for rows r0 ..< r0+mc and depth k0 ..< k0+kc into `out` (⌈mc/mr⌉·mr·kc floats).
    static func packA(
        _ a: GemmOperand, rows r0: Int, count mc: Int, depth k0: Int, count kc: Int, tile mr: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        // Column-major sources (e.g. a transposed view) are read one depth step at a time: MR contiguous
        // rows land contiguously in the sliver. Otherwise each row is a run along depth, scattered by MR.
        let alongRows = abs(a.columnStride) != 1 && abs(a.rowStride) == 1
        var sliver = 0
        while sliver * mr < mc {
            let first = r0 + sliver * mr
            let valid = min(mr, mc - sliver * mr)
            let target = out + sliver * mr * kc
            if valid < mr { target.initialize(repeating: 0, count: mr * kc) }
            if alongRows {
                for step in 0..<kc {
                    StridedFloats.load(
                        a.base, dtype: a.dtype, start: a.offset(first, k0 + step), stride: a.rowStride, count: valid,
                        into: target + step * mr, outStride: 1)
                }
            } else if a.dtype == .f32 && a.columnStride == 1 {
                // Row-major f32 (the common case): interleave the sliver's rows step by step, so the writes
                // are sequential and each row is read as a forward stream.
                let source = a.base.assumingMemoryBound(to: Float.self) + a.offset(first, k0)
                let rowStride = a.rowStride
                for step in 0..<kc {
                    let column = source + step
                    let lanes = target + step * mr
                    for lane in 0..<valid { lanes[lane] = column[lane * rowStride] }
                }
            } else {
                for lane in 0..<valid {
                    StridedFloats.load(
                        a.base, dtype: a.dtype, start: a.offset(first + lane, k0), stride: a.columnStride, count: kc,
                        into: target + lane, outStride: mr)
                }
            }
            sliver += 1
        }
    }

    /// Packs slivers `slivers` of B̃ for columns n0 ..< n0+nc and depth k0 ..< k0+kc into `out`, which
    /// points at sliver 0 of the panel; sliver t starts at out + t·kc·nr. `nr` is a multiple of 8.
    static func packB(
        _ b: GemmOperand, columns n0: Int, count nc: Int, depth k0: Int, count kc: Int, tile nr: Int,
        slivers: Range<Int>, into out: UnsafeMutablePointer<Float>
    ) {
        guard !slivers.isEmpty else { return }
        let firstColumn = slivers.lowerBound * nr
        let width = min(nc, slivers.upperBound * nr) - firstColumn
        let lastValid = width - (slivers.count - 1) * nr
        if lastValid < nr {
            (out + (slivers.upperBound - 1) * kc * nr).initialize(repeating: 0, count: kc * nr)
        }
        if abs(b.columnStride) != 1 && abs(b.rowStride) == 1 {
            // Column-contiguous B (a weight [out, in] read as its transpose): one run along depth per column.
            for column in 0..<width {
                let sliver = slivers.lowerBound + column / nr
                StridedFloats.load(
                    b.base, dtype: b.dtype, start: b.offset(k0, n0 + firstColumn + column), stride: b.rowStride,
                    count: kc, into: out + sliver * kc * nr + column % nr, outStride: nr)
            }
            return
        }
        // Row-major B: one depth step at a time, read the step's whole row segment (rows of a large B are far
        // apart, so walking down one sliver at a time would miss cache on every step) and deal it out to the
        // slivers in 8-float vectors.
        let direct = b.dtype == .f32 && b.columnStride == 1
        let row = UnsafeMutablePointer<Float>.allocate(capacity: direct ? 0 : slivers.count * nr)
        defer { row.deallocate() }
        if !direct { row.initialize(repeating: 0, count: slivers.count * nr) }
        for step in 0..<kc {
            let start = b.offset(k0 + step, n0 + firstColumn)
            let source: UnsafePointer<Float>
            if direct {
                source = b.base.assumingMemoryBound(to: Float.self) + start
            } else {
                StridedFloats.load(b.base, dtype: b.dtype, start: start, stride: b.columnStride, count: width, into: row, outStride: 1)
                source = UnsafePointer(row)
            }
            for (index, sliver) in slivers.enumerated() {
                let target = UnsafeMutableRawPointer(out + sliver * kc * nr + step * nr)
                let from = UnsafeRawPointer(source + index * nr)
                if index < slivers.count - 1 || lastValid == nr {
                    var offset = 0
                    while offset < nr * 4 {
                        target.storeBytes(of: from.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), toByteOffset: offset, as: SIMD8<Float>.self)
                        offset += 32
                    }
                } else {
                    target.copyMemory(from: from, byteCount: lastValid * 4)
                }
            }
        }
    }
}
