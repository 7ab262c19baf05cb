import KinemaCore

// Conversions between runs of stored elements and f32 scratch buffers: the only place where the CPU kernels
// touch storage dtypes. Every computing kernel gathers its operands into f32 blocks, computes there and
// stores once, so each result is rounded exactly once to the output dtype.
//
// The dtype switch sits outside the element loops so f32/bf16 runs compile to tight (vectorizable) loops;
// bf16 ⇄ f32 is a 16-bit shift one way and FloatConversion's round-to-nearest-even the other.

enum ElementRun {
    /// Converts `count` elements of `dtype`, the first at element `offset`, successive ones `stride` elements
    /// apart (0 repeats one element: a broadcast axis), into `out[0..<count]`.
    @inline(__always)
    static func load(
        _ base: UnsafeRawPointer, offset: Int, stride: Int, count: Int, dtype: DType, into out: UnsafeMutablePointer<Float>
    ) {
        guard count > 0 else { return }
        if stride == 0 {
            out.update(repeating: HostElements.load(base, element: offset, dtype: dtype), count: count)
            return
        }
        switch dtype {
        case .f32:
            let source = base.assumingMemoryBound(to: Float.self) + offset
            if stride == 1 {
                out.update(from: source, count: count)
            } else {
                for index in 0..<count { out[index] = source[index * stride] }
            }
        case .bf16:
            let source = base.assumingMemoryBound(to: UInt16.self) + offset
            if stride == 1 {
                for index in 0..<count { out[index] = Float(bitPattern: UInt32(source[index]) << 16) }
            } else {
                for index in 0..<count { out[index] = Float(bitPattern: UInt32(source[index * stride]) << 16) }
            }
        case .f16:
            let source = base.assumingMemoryBound(to: UInt16.self) + offset
            for index in 0..<count { out[index] = float(fromF16Bits: source[index * stride]) }
        default:
            for index in 0..<count { out[index] = HostElements.load(base, element: offset + index * stride, dtype: dtype) }
        }
    }

    /// Rounds `values[0..<count]` to `dtype` and writes them contiguously from element `offset` on.
    @inline(__always)
    static func store(
        _ values: UnsafePointer<Float>, count: Int, to base: UnsafeMutableRawPointer, offset: Int, dtype: DType
    ) {
        guard count > 0 else { return }
        switch dtype {
        case .f32:
            (base.assumingMemoryBound(to: Float.self) + offset).update(from: values, count: count)
        case .bf16:
            let out = base.assumingMemoryBound(to: UInt16.self) + offset
            for index in 0..<count { out[index] = bf16Bits(fromFloat: values[index]) }
        case .f16:
            let out = base.assumingMemoryBound(to: UInt16.self) + offset
            for index in 0..<count { out[index] = f16Bits(fromFloat: values[index]) }
        default:
            for index in 0..<count { HostElements.store(values[index], base, element: offset + index, dtype: dtype) }
        }
    }

    /// Copies `count` elements of `byteSize` bytes without conversion from a strided source run to a
    /// contiguous destination. Used by the dtype-agnostic copies (contiguous, concat).
    @inline(__always)
    static func copyBytes(
        from base: UnsafeRawPointer, offset: Int, stride: Int, count: Int, byteSize: Int, to destination: UnsafeMutableRawPointer
    ) {
        guard count > 0 else { return }
        if stride == 1 {
            destination.copyMemory(from: base + offset * byteSize, byteCount: count * byteSize)
            return
        }
        switch byteSize {
        case 1: copyStrided(UInt8.self, base, offset, stride, count, destination)
        case 2: copyStrided(UInt16.self, base, offset, stride, count, destination)
        case 4: copyStrided(UInt32.self, base, offset, stride, count, destination)
        default: copyStrided(UInt64.self, base, offset, stride, count, destination)
        }
    }

    @inline(__always)
    private static func copyStrided<Word: FixedWidthInteger>(
        _: Word.Type, _ base: UnsafeRawPointer, _ offset: Int, _ stride: Int, _ count: Int, _ destination: UnsafeMutableRawPointer
    ) {
        let source = base.assumingMemoryBound(to: Word.self) + offset
        let out = destination.assumingMemoryBound(to: Word.self)
        for index in 0..<count { out[index] = source[index * stride] }
    }

    /// Loads integer (or bool) elements exactly as Int64: integer casts must not pass through f32, which
    /// holds only 24 bits.
    @inline(__always)
    static func loadIntegers(
        _ base: UnsafeRawPointer, offset: Int, stride: Int, count: Int, dtype: DType, into out: UnsafeMutablePointer<Int64>
    ) {
        for index in 0..<count {
            let element = offset + index * stride
            switch dtype {
            case .i64: out[index] = base.load(fromByteOffset: element * 8, as: Int64.self)
            case .i32: out[index] = Int64(base.load(fromByteOffset: element * 4, as: Int32.self))
            case .i8: out[index] = Int64(base.load(fromByteOffset: element, as: Int8.self))
            case .u8: out[index] = Int64(base.load(fromByteOffset: element, as: UInt8.self))
            case .bool: out[index] = base.load(fromByteOffset: element, as: UInt8.self) != 0 ? 1 : 0
            default: out[index] = Int64(HostElements.load(base, element: element, dtype: dtype))
            }
        }
    }

    /// Stores Int64 values into an integer dtype with C's wrap-around (what PyTorch's integer casts do) or
    /// into bool as `value != 0`.
    @inline(__always)
    static func storeIntegers(
        _ values: UnsafePointer<Int64>, count: Int, to base: UnsafeMutableRawPointer, offset: Int, dtype: DType
    ) {
        for index in 0..<count {
            let element = offset + index
            let value = values[index]
            switch dtype {
            case .i64: base.storeBytes(of: value, toByteOffset: element * 8, as: Int64.self)
            case .i32: base.storeBytes(of: Int32(truncatingIfNeeded: value), toByteOffset: element * 4, as: Int32.self)
            case .i8: base.storeBytes(of: Int8(truncatingIfNeeded: value), toByteOffset: element, as: Int8.self)
            case .u8: base.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: element, as: UInt8.self)
            case .bool: base.storeBytes(of: UInt8(value != 0 ? 1 : 0), toByteOffset: element, as: UInt8.self)
            default: HostElements.store(Float(value), base, element: element, dtype: dtype)
            }
        }
    }
}
