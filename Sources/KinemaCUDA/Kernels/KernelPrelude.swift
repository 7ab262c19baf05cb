import KinemaCore

// Device code shared by every kernel family: element types, f32 conversions through PTX `cvt` (no CUDA
// headers needed), and strided layouts of up to 8 dimensions passed by value.

/// Up to 8 dimensions of sizes and element strides, plus an element offset — the C `Layout` struct.
struct KernelLayout {
    var rank: Int64 = 0
    var size: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64) = (1, 1, 1, 1, 1, 1, 1, 1)
    var stride: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0, 0, 0)
    var offset: Int64 = 0

    static let maxRank = 8

    /// The layout of `tensor` (its offset included), viewed with `shape` (broadcast axes get stride 0).
    init(_ tensor: Tensor) throws {
        try self.init(shape: tensor.shape, strides: tensor.strides)
    }

    init(shape: [Int], strides: [Int]) throws {
        guard shape.count <= KernelLayout.maxRank else {
            throw KinemaError.unsupported("CUDA kernels handle up to \(KernelLayout.maxRank) dimensions, got \(shape)")
        }
        rank = Int64(shape.count)
        withUnsafeMutableBytes(of: &size) { raw in
            let sizes = raw.bindMemory(to: Int64.self)
            for (axis, value) in shape.enumerated() { sizes[axis] = Int64(value) }
        }
        withUnsafeMutableBytes(of: &stride) { raw in
            let values = raw.bindMemory(to: Int64.self)
            for (axis, value) in strides.enumerated() { values[axis] = Int64(value) }
        }
        offset = 0  // kernels receive the address of element 0 of the view
    }

    /// Layouts of same-shape tensors read with one logical index, with the axes merged that every one of
    /// them walks as a single run: size-1 axes are dropped, and axis d joins d + 1 when
    /// stride[d] = stride[d + 1] · size[d + 1] in all of them. A contiguous tensor becomes rank 1, which the
    /// kernels index without any division; a rank-5 NCDHW slice along T becomes rank 2 or 3. The mapping
    /// from logical index to element is unchanged, so results are bit-identical.
    static func coalesced(_ tensors: [Tensor]) throws -> [KernelLayout] {
        guard let first = tensors.first else { return [] }
        guard tensors.allSatisfy({ $0.shape == first.shape }) else {
            throw KinemaError.shapeMismatch(context: "elementwise layouts", expected: "\(first.shape)", found: tensors.map { "\($0.shape)" }.joined(separator: ", "))
        }
        let kept = first.shape.indices.filter { first.shape[$0] != 1 }
        var shape: [Int] = []
        var strides: [[Int]] = Array(repeating: [], count: tensors.count)
        for axis in kept {
            let extent = first.shape[axis]
            if let last = shape.indices.last,
                tensors.indices.allSatisfy({ strides[$0][last] == tensors[$0].strides[axis] * extent })
            {
                shape[last] *= extent
                for index in tensors.indices { strides[index][last] = tensors[index].strides[axis] }
            } else {
                shape.append(extent)
                for index in tensors.indices { strides[index].append(tensors[index].strides[axis]) }
            }
        }
        return try tensors.indices.map { try KernelLayout(shape: shape, strides: strides[$0]) }
    }

    /// The same layouts read `factor` elements at a time, or nil when that is not the same data: every
    /// layout must end in a unit-stride axis whose size `factor` divides, every other stride must be a
    /// multiple of `factor`, and every start address a multiple of factor · elementBytes.
    static func widened(_ layouts: [KernelLayout], by factor: Int, addresses: [UInt64], elementBytes: Int) -> [KernelLayout]? {
        guard factor > 1, let rank = layouts.first.map({ Int($0.rank) }), rank >= 1,
            addresses.allSatisfy({ $0 % UInt64(factor * elementBytes) == 0 })
        else { return nil }
        var result: [KernelLayout] = []
        for layout in layouts {
            var (size, stride) = (layout.size, layout.stride)
            let fits = withUnsafeMutableBytes(of: &size) { sizeBytes in
                withUnsafeMutableBytes(of: &stride) { strideBytes in
                    let sizes = sizeBytes.bindMemory(to: Int64.self)
                    let strides = strideBytes.bindMemory(to: Int64.self)
                    let f = Int64(factor)
                    guard strides[rank - 1] == 1, sizes[rank - 1] % f == 0,
                        (0..<(rank - 1)).allSatisfy({ strides[$0] % f == 0 })
                    else { return false }
                    sizes[rank - 1] /= f
                    for axis in 0..<(rank - 1) { strides[axis] /= f }
                    return true
                }
            }
            guard fits else { return nil }
            var widened = layout
            (widened.size, widened.stride) = (size, stride)
            result.append(widened)
        }
        return result
    }
}

enum KernelPrelude {
    /// C type name and load/store expressions for a dtype; only float types compute.
    static func cType(_ dtype: DType) -> String {
        switch dtype {
        case .f32: return "float"
        case .bf16, .f16: return "unsigned short"
        case .f8e4m3, .f8e5m2, .u8, .bool: return "unsigned char"
        case .i8: return "signed char"
        case .i32: return "int"
        case .i64: return "long long"
        }
    }

    static func loader(_ dtype: DType) -> String {
        switch dtype {
        case .f32: return "ld_f32"
        case .bf16: return "ld_bf16"
        case .f16: return "ld_f16"
        default: return "ld_other"
        }
    }

    static func storer(_ dtype: DType) -> String {
        switch dtype {
        case .f32: return "st_f32"
        case .bf16: return "st_bf16"
        case .f16: return "st_f16"
        default: return "st_other"
        }
    }

    static func isComputable(_ dtype: DType) -> Bool { dtype == .f32 || dtype == .bf16 || dtype == .f16 }

    static let source = #"""
    struct Layout { long long rank; long long size[8]; long long stride[8]; long long offset; };

    // Element offset of logical index `linear`. The divisions run in 32 bits whenever the operands fit
    // (a 64-bit division is a long software routine on the GPU; strided copies such as the attention
    // head merge spent most of their time in it); offsets stay 64-bit.
    __device__ __forceinline__ long long offset_of(const Layout& L, long long linear) {
        if (L.rank <= 1) return L.rank == 1 ? linear * L.stride[0] : 0;  // coalesced runs: no division
        long long off = 0;
        for (int d = (int)L.rank - 1; d >= 0; --d) {
            long long s = L.size[d];
            long long i;
            if ((((unsigned long long)linear) | ((unsigned long long)s)) < 4294967296ULL) {
                unsigned int l32 = (unsigned int)linear, s32 = (unsigned int)s;
                unsigned int q = l32 / s32;
                i = (long long)(l32 - q * s32);
                linear = (long long)q;
            } else {
                i = linear % s;
                linear /= s;
            }
            off += i * L.stride[d];
        }
        return off;
    }

    __device__ __forceinline__ float ld_f32(const float* p, long long i) { return p[i]; }
    __device__ __forceinline__ void st_f32(float* p, long long i, float v) { p[i] = v; }
    __device__ __forceinline__ float ld_bf16(const unsigned short* p, long long i) {
        return __uint_as_float(((unsigned int)p[i]) << 16);
    }
    __device__ __forceinline__ void st_bf16(unsigned short* p, long long i, float v) {
        unsigned short r;
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(v));
        p[i] = r;
    }
    __device__ __forceinline__ float ld_f16(const unsigned short* p, long long i) {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
        return f;
    }
    __device__ __forceinline__ void st_f16(unsigned short* p, long long i, float v) {
        unsigned short r;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(v));
        p[i] = r;
    }

    __device__ __forceinline__ float warp_sum(float v) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        return v;
    }
    __device__ __forceinline__ float warp_max(float v) {
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
        return v;
    }
    // Block-wide reduction for blockDim.x a multiple of 32, at most 1024. `scratch` holds 32 floats.
    __device__ float block_sum(float v, float* scratch) {
        v = warp_sum(v);
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        __syncthreads();
        if (lane == 0) scratch[warp] = v;
        __syncthreads();
        int warps = blockDim.x >> 5;
        v = (threadIdx.x < warps) ? scratch[threadIdx.x] : 0.0f;
        if (warp == 0) v = warp_sum(v);
        if (threadIdx.x == 0) scratch[0] = v;
        __syncthreads();
        return scratch[0];
    }
    __device__ float block_max(float v, float* scratch) {
        v = warp_max(v);
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        __syncthreads();
        if (lane == 0) scratch[warp] = v;
        __syncthreads();
        int warps = blockDim.x >> 5;
        v = (threadIdx.x < warps) ? scratch[threadIdx.x] : __int_as_float(0xff800000);
        if (warp == 0) v = warp_max(v);
        if (threadIdx.x == 0) scratch[0] = v;
        __syncthreads();
        return scratch[0];
    }
    """#
}
