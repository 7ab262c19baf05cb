import Foundation
import KinemaCore

// The CUDA backend: every Backend op on one GPU, through NVRTC-compiled kernels (Kernels/*). This is the
// correct-first version — each op is checked against the CPU reference by `kinema doctor`; cuBLASLt GEMMs,
// tensor-core attention and fused kernels arrive with the speed work.

public final class CUDABackend: Backend, @unchecked Sendable {
    public let context: CUDAContext
    public var device: Device { .cuda(context.ordinal) }

    /// Who runs attention: cuDNN's fused kernel or Kinema's (KINEMA_ATTENTION; changeable for comparisons).
    public var attentionChoice: LibraryChoice
    /// Who runs conv3d: cuDNN or Kinema's direct kernel (KINEMA_CONV).
    public var convolutionChoice: LibraryChoice
    /// Fused DiT passes (KINEMA_FUSED; default on). Off: the same ops run as their unfused compositions.
    public var fusedPasses: Bool
    /// Launches of the wgmma attention kernel on this backend (doctor checks that it ran, not a fallback).
    public internal(set) var wgmmaAttentionLaunches = 0

    public init(ordinal: Int = 0, options: RuntimeOptions = .current) throws {
        attentionChoice = try LibraryChoice.parse(options.attentionEngine, variable: "KINEMA_ATTENTION", allowsWGMMA: true)
        convolutionChoice = try LibraryChoice.parse(options.convolutionEngine, variable: "KINEMA_CONV")
        fusedPasses = options.fusedPasses
        context = try CUDAContext.shared(ordinal: ordinal)
        if options.kernelPrewarm { context.kernels.prewarmCatalog() }
    }

    // MARK: - Launching

    func launch(
        _ name: String, _ source: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
        label: String? = nil, _ build: (inout KernelArguments) -> Void
    ) throws {
        try LaunchLimits.check(name, grid: grid, block: block)
        let function = try context.kernels.function(name, in: source)
        if sharedBytes > 48 * 1024 {
            // Dynamic shared memory beyond 48 KiB must be allowed per function
            // (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8).
            try context.driver.check(
                context.driver.cuFuncSetAttribute(function, 8, Int32(sharedBytes)), "cuFuncSetAttribute(\(name), \(sharedBytes) B shared)")
        }
        var arguments = KernelArguments()
        build(&arguments)
        defer { arguments.release() }
        try context.makeCurrent()
        let result = try context.profiled(label ?? name) {
            arguments.withPointers { pointers in
                context.driver.cuLaunchKernel(
                    function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block.0), UInt32(block.1), UInt32(block.2), UInt32(sharedBytes),
                    context.stream, pointers, nil)
            }
        }
        try context.driver.check(result, "cuLaunchKernel(\(name))")
    }

    /// A grid-stride launch over `count` elements.
    func launchLinear(
        _ name: String, _ source: String, count: Int, label: String? = nil, _ build: (inout KernelArguments) -> Void
    ) throws {
        guard count > 0 else { return }
        let blocks = min((count + 255) / 256, context.multiprocessors * 32)
        try launch(name, source, grid: (blocks, 1, 1), block: (256, 1, 1), label: label, build)
    }

    func onDevice(_ x: Tensor, _ op: String) throws {
        guard x.device == device else { throw KinemaError.deviceMismatch(context: op, expected: device, found: x.device) }
    }

    func computable(_ x: Tensor, _ op: String) throws {
        try onDevice(x, op)
        guard KernelPrelude.isComputable(x.dtype) else {
            throw KinemaError.dtypeMismatch(context: "\(op) on CUDA", expected: "f32, bf16 or f16", found: x.dtype)
        }
    }

    func empty(_ shape: [Int], _ dtype: DType) throws -> Tensor {
        let storage = try context.allocator.allocate(shape.reduce(1, *) * dtype.byteSize)
        return try Tensor(storage: storage, shape: shape, dtype: dtype)
    }

    func address(_ x: Tensor) -> CUdeviceptr { CUDAContext.address(x) }
    func optionalAddress(_ x: Tensor?) -> CUdeviceptr { x.map(address) ?? 0 }

    // MARK: - Memory

    public func upload(_ x: Tensor) throws -> Tensor {
        if x.device == device { return x }
        guard x.device == .cpu else {
            throw KinemaError.unsupported("copy from \(x.device) to \(device): download to the host first")
        }
        let host = x.isContiguous ? x : try hostContiguous(x)
        let out = try empty(x.shape, x.dtype)
        try context.copyToDevice(UnsafeRawPointer(host.hostPointer), address(out), bytes: x.byteCount)
        return out
    }

    public func download(_ x: Tensor) throws -> Tensor {
        if x.device == .cpu { return x }
        try onDevice(x, "download")
        let source = try contiguous(x)
        let host = try Tensor.zeros(x.shape, dtype: x.dtype)
        try context.copyToHost(address(source), host.hostPointer, bytes: x.byteCount)
        return host
    }

    /// Overlapped downloads through the context's pinned ring; copies made at once while another queue holds it.
    public func makeHostDownloadQueue() throws -> any HostDownloadQueue {
        try context.makeCurrent()
        guard let ring = context.downloadRing, ring.acquire() else { return ImmediateHostDownloads(backend: self) }
        return CUDAHostDownloads(context: context, ring: ring)
    }

    private func hostContiguous(_ x: Tensor) throws -> Tensor {
        let out = try Tensor.zeros(x.shape, dtype: x.dtype)
        let size = x.dtype.byteSize
        var index = 0
        x.forEachElementOffset { element in
            (out.hostPointer + index * size).copyMemory(from: x.storage.base + element * size, byteCount: size)
            index += 1
        }
        return out
    }

    public func zeros(_ shape: [Int], dtype: DType) throws -> Tensor {
        let out = try empty(shape, dtype)
        try context.makeCurrent()
        try context.memset(address(out), bytes: out.byteCount)
        return out
    }

    // MARK: - Layout and type

    public func contiguous(_ x: Tensor) throws -> Tensor {
        try onDevice(x, "contiguous")
        if x.isContiguous { return x }
        let out = try empty(x.shape, x.dtype)
        try copy(x, into: out)
        return out
    }

    /// Bit-exact copy of `source` into the view `destination` (same shape and dtype). When both sides end
    /// in contiguous runs whose length, other strides and start addresses allow, the runs move as wider
    /// elements (up to 16 bytes a thread): the VAE's cache concatenations are long bf16 runs, and 2-byte
    /// accesses left them at a fraction of the memory bandwidth.
    func copy(_ source: Tensor, into destination: Tensor) throws {
        let byteSize = source.dtype.byteSize
        var layouts = try KernelLayout.coalesced([source, destination])
        var (elementBytes, count) = (byteSize, source.count)
        let addresses = [address(source), address(destination)].map { UInt64($0) }
        for wide in [16, 8, 4] where wide > byteSize {
            if let widened = KernelLayout.widened(layouts, by: wide / byteSize, addresses: addresses, elementBytes: byteSize) {
                layouts = widened
                (elementBytes, count) = (wide, source.count / (wide / byteSize))
                break
            }
        }
        let (layoutSource, layoutDestination) = (layouts[0], layouts[1])
        try launchLinear("kinema_copy", ElementwiseKernels.copyRaw(elementBytes: elementBytes), count: count) { arguments in
            arguments.append(address(source))
            arguments.append(layoutSource)
            arguments.append(address(destination))
            arguments.append(layoutDestination)
            arguments.append(Int64(count))
        }
    }

    public func cast(_ x: Tensor, to dtype: DType) throws -> Tensor {
        try onDevice(x, "cast")
        if x.dtype == dtype { return try contiguous(x) }
        guard KernelPrelude.isComputable(x.dtype), KernelPrelude.isComputable(dtype) else {
            // Integer and fp8 casts are rare (checkpoint loading): do them on the host, exactly.
            let converted = try hostCast(try download(x), to: dtype)
            return try upload(converted)
        }
        let layoutX = try KernelLayout.coalesced([x])[0]
        let out = try empty(x.shape, dtype)
        try launchLinear("kinema_cast", ElementwiseKernels.cast(from: x.dtype, to: dtype), count: x.count, label: "cast \(x.dtype.rawValue)→\(dtype.rawValue)") { arguments in
            arguments.append(address(x))
            arguments.append(layoutX)
            arguments.append(address(out))
            arguments.append(Int64(x.count))
        }
        return out
    }

    private func hostCast(_ x: Tensor, to dtype: DType) throws -> Tensor {
        let values = try x.floats()
        if dtype.isFloatingPoint || dtype == .bool { return try Tensor(values, shape: x.shape, dtype: dtype) }
        return try Tensor(integers: try x.integers(), shape: x.shape, dtype: dtype)
    }

    public func concat(_ xs: [Tensor], axis: Int) throws -> Tensor {
        guard let first = xs.first else { throw KinemaError.invalidArgument("concat of no tensors") }
        let dim = try first.axis(axis)
        var shape = first.shape
        shape[dim] = 0
        for x in xs {
            try onDevice(x, "concat")
            guard x.rank == first.rank, x.dtype == first.dtype,
                zip(x.shape, first.shape).enumerated().allSatisfy({ $0.offset == dim || $0.element.0 == $0.element.1 })
            else {
                throw KinemaError.shapeMismatch(context: "concat on axis \(dim)", expected: "\(first.shape) (\(first.dtype.rawValue))", found: "\(x.shape) (\(x.dtype.rawValue))")
            }
            shape[dim] += x.shape[dim]
        }
        let out = try empty(shape, first.dtype)
        var start = 0
        for x in xs where x.count > 0 {
            try copy(x, into: try out.narrowed(axis: dim, start: start, length: x.shape[dim]))
            start += x.shape[dim]
        }
        return out
    }

    /// One launch for any number of rows (the umT5 embedding lookup was 512 narrow + copy launches). The
    /// host indices go up as i64 [n]. Rows move as the widest unit (16, 8 or 4 bytes) that divides the row
    /// length and the row stride in bytes and aligns both base addresses; else as single elements.
    public func gatherRows(_ table: Tensor, indices: [Int]) throws -> Tensor {
        try onDevice(table, "gatherRows")
        let (_, width) = try RowGather.validate(table, indices: indices)
        let out = try empty([indices.count, width], table.dtype)
        guard out.count > 0 else { return out }
        let deviceIndices = try upload(try Tensor(integers: indices.map(Int64.init), shape: [indices.count]))
        let byteSize = table.dtype.byteSize
        let (rowBytes, strideBytes) = (width * byteSize, table.strides[0] * byteSize)
        let addresses = [address(table), address(out)].map { UInt64($0) }
        let unitBytes = [16, 8, 4].first { wide in
            wide > byteSize && rowBytes % wide == 0 && strideBytes % wide == 0 && addresses.allSatisfy { $0 % UInt64(wide) == 0 }
        } ?? byteSize
        let units = rowBytes / unitBytes
        let threads = min(256, (units + 31) / 32 * 32)
        let grid = (min((units + threads - 1) / threads, context.multiprocessors * 32), min(indices.count, LaunchLimits.maxGridYZ), 1)
        try launch(
            "kinema_gather_rows", ElementwiseKernels.gatherRows(elementBytes: unitBytes), grid: grid, block: (threads, 1, 1),
            label: "gatherRows \(table.dtype.rawValue) (\(unitBytes) B units)"
        ) { arguments in
            arguments.append(address(table))
            arguments.append(Int64(strideBytes / unitBytes))
            arguments.append(address(deviceIndices))
            arguments.append(address(out))
            arguments.append(Int64(indices.count))
            arguments.append(Int64(units))
        }
        return out
    }

    // MARK: - Elementwise

    public func unary(_ op: UnaryOp, _ x: Tensor) throws -> Tensor {
        try computable(x, "unary \(op.rawValue)")
        let layoutX = try KernelLayout.coalesced([x])[0]
        let out = try empty(x.shape, x.dtype)
        let code = ElementwiseKernels.unaryCodes[op] ?? 0
        if let vectors = vectorCount([x, out]) {
            try launchLinear("kinema_unary_vec", ElementwiseKernels.unary(x.dtype), count: vectors, label: "unary \(op.rawValue) \(x.dtype.rawValue)") { arguments in
                arguments.append(address(x))
                arguments.append(address(out))
                arguments.append(Int64(vectors))
                arguments.append(code)
            }
            return out
        }
        try launchLinear("kinema_unary", ElementwiseKernels.unary(x.dtype), count: x.count, label: "unary \(op.rawValue) \(x.dtype.rawValue)") { arguments in
            arguments.append(address(x))
            arguments.append(layoutX)
            arguments.append(address(out))
            arguments.append(Int64(x.count))
            arguments.append(code)
        }
        return out
    }

    public func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try computable(x, "affine")
        let layoutX = try KernelLayout.coalesced([x])[0]
        let out = try empty(x.shape, x.dtype)
        try launchLinear("kinema_affine", ElementwiseKernels.unary(x.dtype), count: x.count) { arguments in
            arguments.append(address(x))
            arguments.append(layoutX)
            arguments.append(address(out))
            arguments.append(Int64(x.count))
            arguments.append(scale)
            arguments.append(shift)
        }
        return out
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try computable(a, "binary \(op.rawValue)")
        try computable(b, "binary \(op.rawValue)")
        let shape = try broadcastShape(a.shape, b.shape)
        let outType: DType = (a.dtype == .f32 || b.dtype == .f32) ? .f32 : a.dtype
        let (left, right) = (try a.expanded(to: shape), try b.expanded(to: shape))
        // The output is contiguous, so its (implicit) layout coalesces with any merge of the inputs'.
        let layouts = try KernelLayout.coalesced([left, right])
        let (layoutLeft, layoutRight) = (layouts[0], layouts[1])
        let out = try empty(shape, outType)
        let code = ElementwiseKernels.binaryCodes[op] ?? 0
        if a.dtype == b.dtype, a.dtype == outType, a.shape == shape, b.shape == shape, let vectors = vectorCount([a, b, out]) {
            try launchLinear(
                "kinema_binary_vec", ElementwiseKernels.binary(a.dtype, b.dtype, out: outType), count: vectors,
                label: "binary \(op.rawValue) \(a.dtype.rawValue),\(b.dtype.rawValue)"
            ) { arguments in
                arguments.append(address(a))
                arguments.append(address(b))
                arguments.append(address(out))
                arguments.append(Int64(vectors))
                arguments.append(code)
            }
            return out
        }
        try launchLinear(
            "kinema_binary", ElementwiseKernels.binary(a.dtype, b.dtype, out: outType), count: out.count,
            label: "binary \(op.rawValue) \(a.dtype.rawValue),\(b.dtype.rawValue)"
        ) { arguments in
            arguments.append(address(left))
            arguments.append(layoutLeft)
            arguments.append(address(right))
            arguments.append(layoutRight)
            arguments.append(address(out))
            arguments.append(Int64(out.count))
            arguments.append(code)
        }
        return out
    }

    /// The number of 16-byte vectors when every tensor is contiguous, starts 16-byte aligned and holds a
    /// whole number of vectors (the vectorized elementwise kernels' condition), else nil.
    private func vectorCount(_ tensors: [Tensor]) -> Int? {
        guard let first = tensors.first, first.count > 0 else { return nil }
        let lanes = 16 / first.dtype.byteSize
        guard first.count % lanes == 0,
            tensors.allSatisfy({ $0.isContiguous && $0.count == first.count && UInt64(address($0)) % 16 == 0 })
        else { return nil }
        return first.count / lanes
    }

    private func broadcastShape(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a
        let pb = Array(repeating: 1, count: rank - b.count) + b
        return try zip(pa, pb).map { x, y in
            guard x == y || x == 1 || y == 1 else {
                throw KinemaError.shapeMismatch(context: "broadcast", expected: "\(a)", found: "\(b)")
            }
            return x == 1 ? y : x
        }
    }
}
