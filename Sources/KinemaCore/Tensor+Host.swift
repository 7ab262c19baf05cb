// Host-side creation and read-back: the bridge between Swift arrays and tensors. Values are converted with
// the rounding rules of FloatConversion.swift.

extension Tensor {
    /// A zero-filled contiguous host tensor.
    public static func zeros(_ shape: [Int], dtype: DType = .f32) throws -> Tensor {
        let count = shape.reduce(1, *)
        return try Tensor(storage: Storage(hostBytes: count * dtype.byteSize), shape: shape, dtype: dtype)
    }

    /// A contiguous host tensor whose contents are unspecified: only for code that writes every element.
    public static func uninitialized(_ shape: [Int], dtype: DType) throws -> Tensor {
        let count = shape.reduce(1, *)
        return try Tensor(storage: Storage(hostBytes: count * dtype.byteSize, fill: .uninitialized), shape: shape, dtype: dtype)
    }

    /// A host tensor from floats, rounded to `dtype`.
    public init(_ values: [Float], shape: [Int], dtype: DType = .f32) throws {
        guard shape.reduce(1, *) == values.count else {
            throw KinemaError.shapeMismatch(context: "Tensor(values:)", expected: "\(values.count) elements", found: "\(shape)")
        }
        self = try Tensor.zeros(shape, dtype: dtype)
        try values.withUnsafeBufferPointer { source in
            try HostElements.store(source, into: hostPointer, dtype: dtype)
        }
    }

    /// A host tensor from integers (i32, i64, i8, u8 or bool).
    public init(integers values: [Int64], shape: [Int], dtype: DType = .i64) throws {
        guard shape.reduce(1, *) == values.count else {
            throw KinemaError.shapeMismatch(context: "Tensor(integers:)", expected: "\(values.count) elements", found: "\(shape)")
        }
        self = try Tensor.zeros(shape, dtype: dtype)
        let pointer = hostPointer
        for (index, value) in values.enumerated() {
            switch dtype {
            case .i64: pointer.storeBytes(of: value, toByteOffset: index * 8, as: Int64.self)
            case .i32: pointer.storeBytes(of: Int32(truncatingIfNeeded: value), toByteOffset: index * 4, as: Int32.self)
            case .i8: pointer.storeBytes(of: Int8(truncatingIfNeeded: value), toByteOffset: index, as: Int8.self)
            case .u8: pointer.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: index, as: UInt8.self)
            case .bool: pointer.storeBytes(of: UInt8(value != 0 ? 1 : 0), toByteOffset: index, as: UInt8.self)
            default:
                throw KinemaError.invalidArgument("Tensor(integers:) needs an integer dtype, got \(dtype.rawValue)")
            }
        }
    }

    /// Calls `body` with the storage element offset of every element, in logical (row-major) order.
    public func forEachElementOffset(_ body: (Int) throws -> Void) rethrows {
        let total = count
        guard total > 0 else { return }
        if isContiguous {
            for index in 0..<total { try body(offset + index) }
            return
        }
        var index = [Int](repeating: 0, count: rank)
        var position = offset
        for _ in 0..<total {
            try body(position)
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                position += strides[axis]
                if index[axis] < shape[axis] { break }
                position -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// All elements as floats in logical order. Host tensors only.
    public func floats() throws -> [Float] {
        guard device == .cpu else {
            throw KinemaError.deviceMismatch(context: "floats()", expected: .cpu, found: device)
        }
        var result = [Float]()
        result.reserveCapacity(count)
        let base = storage.base
        let type = dtype
        forEachElementOffset { element in
            result.append(HostElements.load(base, element: element, dtype: type))
        }
        return result
    }

    /// All elements as 64-bit integers in logical order (integer and bool dtypes; floats truncate).
    public func integers() throws -> [Int64] {
        guard device == .cpu else {
            throw KinemaError.deviceMismatch(context: "integers()", expected: .cpu, found: device)
        }
        var result = [Int64]()
        result.reserveCapacity(count)
        let base = storage.base
        forEachElementOffset { element in
            switch dtype {
            case .i64: result.append(base.load(fromByteOffset: element * 8, as: Int64.self))
            case .i32: result.append(Int64(base.load(fromByteOffset: element * 4, as: Int32.self)))
            case .i8: result.append(Int64(base.load(fromByteOffset: element, as: Int8.self)))
            case .u8, .bool: result.append(Int64(base.load(fromByteOffset: element, as: UInt8.self)))
            default: result.append(Int64(HostElements.load(base, element: element, dtype: dtype)))
            }
        }
        return result
    }
}

/// Element-wise load/store between host memory of any dtype and Float.
public enum HostElements {
    @inline(__always)
    public static func load(_ base: UnsafeRawPointer, element: Int, dtype: DType) -> Float {
        switch dtype {
        case .f32: return base.load(fromByteOffset: element * 4, as: Float.self)
        case .bf16: return float(fromBF16Bits: base.load(fromByteOffset: element * 2, as: UInt16.self))
        case .f16: return float(fromF16Bits: base.load(fromByteOffset: element * 2, as: UInt16.self))
        case .f8e4m3: return float(fromF8E4M3Bits: base.load(fromByteOffset: element, as: UInt8.self))
        case .f8e5m2: return float(fromF8E5M2Bits: base.load(fromByteOffset: element, as: UInt8.self))
        case .i8: return Float(base.load(fromByteOffset: element, as: Int8.self))
        case .u8, .bool: return Float(base.load(fromByteOffset: element, as: UInt8.self))
        case .i32: return Float(base.load(fromByteOffset: element * 4, as: Int32.self))
        case .i64: return Float(base.load(fromByteOffset: element * 8, as: Int64.self))
        }
    }

    @inline(__always)
    public static func store(_ value: Float, _ base: UnsafeMutableRawPointer, element: Int, dtype: DType) {
        switch dtype {
        case .f32: base.storeBytes(of: value, toByteOffset: element * 4, as: Float.self)
        case .bf16: base.storeBytes(of: bf16Bits(fromFloat: value), toByteOffset: element * 2, as: UInt16.self)
        case .f16: base.storeBytes(of: f16Bits(fromFloat: value), toByteOffset: element * 2, as: UInt16.self)
        case .f8e4m3: base.storeBytes(of: f8e4m3Bits(fromFloat: value, overflow: .saturate), toByteOffset: element, as: UInt8.self)
        case .f8e5m2: base.storeBytes(of: f8e5m2Bits(fromFloat: value), toByteOffset: element, as: UInt8.self)
        case .i8: base.storeBytes(of: Int8(clamping: truncatedInt64(value)), toByteOffset: element, as: Int8.self)
        // PyTorch converts float → uint8 through int64, so negative values wrap (-1 → 255).
        case .u8: base.storeBytes(of: UInt8(truncatingIfNeeded: truncatedInt64(value)), toByteOffset: element, as: UInt8.self)
        case .bool: base.storeBytes(of: UInt8(value != 0 ? 1 : 0), toByteOffset: element, as: UInt8.self)
        case .i32: base.storeBytes(of: Int32(clamping: truncatedInt64(value)), toByteOffset: element * 4, as: Int32.self)
        case .i64: base.storeBytes(of: truncatedInt64(value), toByteOffset: element * 8, as: Int64.self)
        }
    }

    /// Float → Int64 toward zero. Out-of-range values saturate and NaN gives 0: C (and so PyTorch) leaves
    /// both undefined, and Swift's `Int64(_:)` would trap on them, which a file's values must never cause.
    @inline(__always)
    public static func truncatedInt64(_ value: Float) -> Int64 {
        if value.isNaN { return 0 }
        // 2^63 is exactly representable; every Float below it converts without trapping.
        if value >= 9.223372036854775808e18 { return .max }
        if value < -9.223372036854775808e18 { return .min }
        return Int64(value.rounded(.towardZero))
    }

    /// Converts a run of contiguous floats into `dtype` at `destination`.
    public static func store(_ values: UnsafeBufferPointer<Float>, into destination: UnsafeMutableRawPointer, dtype: DType) throws {
        switch dtype {
        case .f32:
            if let source = values.baseAddress { destination.copyMemory(from: source, byteCount: values.count * 4) }
        case .bf16:
            let out = destination.assumingMemoryBound(to: UInt16.self)
            for index in 0..<values.count { out[index] = bf16Bits(fromFloat: values[index]) }
        default:
            for index in 0..<values.count { store(values[index], destination, element: index, dtype: dtype) }
        }
    }

    /// Converts `count` contiguous elements of `dtype` at `source` to floats.
    public static func load(_ source: UnsafeRawPointer, count: Int, dtype: DType, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            out.update(from: source.assumingMemoryBound(to: Float.self), count: count)
        case .bf16:
            let input = source.assumingMemoryBound(to: UInt16.self)
            for index in 0..<count { out[index] = Float(bitPattern: UInt32(input[index]) << 16) }
        default:
            for index in 0..<count { out[index] = load(source, element: index, dtype: dtype) }
        }
    }
}
