import KinemaCore

// Elementwise families: strided copy/cast, unary, broadcasting binary, scalar affine. One thread per
// output element in a grid-stride loop; arithmetic in f32. Correct-first versions: vectorized and fused
// variants come with the speed work, each keeping these as its slow twin.

enum ElementwiseKernels {
    static func header(_ types: [(String, DType)]) -> String {
        var lines = [KernelPrelude.source]
        for (prefix, dtype) in types {
            lines.append("typedef \(KernelPrelude.cType(dtype)) \(prefix)_T;")
            lines.append("#define \(prefix)_LD \(KernelPrelude.loader(dtype))")
            lines.append("#define \(prefix)_ST \(KernelPrelude.storer(dtype))")
        }
        return lines.joined(separator: "\n")
    }

    /// out[i] = convert(in[layout(i)]) — contiguous output; float types only (others use `copyRaw`).
    static func cast(from input: DType, to output: DType) -> String {
        header([("IN", input), ("OUT", output)]) + #"""

        extern "C" __global__ void kinema_cast(const IN_T* in, Layout L, OUT_T* out, long long n) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
                OUT_ST(out, i, IN_LD(in, offset_of(L, i)));
        }
        """#
    }

    /// Bit-exact strided → strided copy for element sizes 1, 2, 4, 8 and 16 bytes (16: runs of narrower
    /// elements moved as one vector, see CUDABackend.copy).
    static func copyRaw(elementBytes: Int) -> String {
        KernelPrelude.source + rawElement(bytes: elementBytes) + """

        extern "C" __global__ void kinema_copy(const E* in, Layout Lin, E* out, Layout Lout, long long n) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
                out[offset_of(Lout, i)] = in[offset_of(Lin, i)];
        }
        """
    }

    /// Row gather for Backend.gatherRows: out[r, :] = table[indices[r], :], each row `units` elements of
    /// `elementBytes` bytes (16: a row of narrower elements moved as 16-byte vectors when its length, the
    /// row stride and both addresses allow, see CUDABackend.gatherRows). Threads run along the row
    /// (x, coalesced), grid y walks the output rows. Indices were range-checked on the host.
    static func gatherRows(elementBytes: Int) -> String {
        rawElement(bytes: elementBytes) + """

        extern "C" __global__ void kinema_gather_rows(const E* table, long long rowStride, const long long* indices,
                                                      E* out, long long rows, long long units) {
            for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
                const E* src = table + indices[r] * rowStride;
                E* dst = out + r * units;
                for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < units; j += (long long)gridDim.x * blockDim.x)
                    dst[j] = src[j];
            }
        }
        """
    }

    /// `typedef … E;` an unsigned type of 1, 2, 4 or 8 bytes, or a 16-byte aligned vector (any other size).
    private static func rawElement(bytes: Int) -> String {
        let type: String
        switch bytes {
        case 1: type = "unsigned char"
        case 2: type = "unsigned short"
        case 4: type = "unsigned int"
        case 8: type = "unsigned long long"
        default: type = "V16"
        }
        return """

        struct alignas(16) V16 { unsigned int a, b, c, d; };
        typedef \(type) E;
        """
    }

    static let unaryCodes: [UnaryOp: Int32] = [
        .silu: 0, .geluTanh: 1, .geluExact: 2, .exp: 3, .neg: 4, .sqrt: 5, .rsqrt: 6, .tanh: 7, .sigmoid: 8,
        .square: 9, .abs: 10, .sin: 11, .cos: 12,
    ]

    static func unary(_ dtype: DType) -> String {
        header([("T", dtype)]) + #"""

        __device__ __forceinline__ float sigmoid_f(float x) {
            // exp of a non-positive argument only: no overflow for large |x|.
            float e = expf(-fabsf(x));
            return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        }
        __device__ __forceinline__ float apply_unary(int op, float x) {
            switch (op) {
            case 0: return x * sigmoid_f(x);
            case 1: { float u = 0.7978845608028654f * (x + 0.044715f * x * x * x); return 0.5f * x * (1.0f + tanhf(u)); }
            case 2: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
            case 3: return expf(x);
            case 4: return -x;
            case 5: return sqrtf(x);
            case 6: return rsqrtf(x);
            case 7: return tanhf(x);
            case 8: return sigmoid_f(x);
            case 9: return x * x;
            case 10: return fabsf(x);
            case 11: return sinf(x);
            default: return cosf(x);
            }
        }
        extern "C" __global__ void kinema_unary(const T_T* in, Layout L, T_T* out, long long n, int op) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
                T_ST(out, i, apply_unary(op, T_LD(in, offset_of(L, i))));
        }
        // Contiguous, 16-byte aligned input and output: each thread moves one 16-byte vector (8 bf16/f16 or
        // 4 f32), the same arithmetic lane by lane. `vectors` = n / lanes.
        struct alignas(16) V16 { unsigned int w[4]; };
        #define LANES ((int)(16 / sizeof(T_T)))
        extern "C" __global__ void kinema_unary_vec(const V16* in, V16* out, long long vectors, int op) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < vectors; i += (long long)gridDim.x * blockDim.x) {
                V16 x = in[i], r;
                const T_T* xs = reinterpret_cast<const T_T*>(&x);
                T_T* rs = reinterpret_cast<T_T*>(&r);
                #pragma unroll
                for (int k = 0; k < LANES; ++k) T_ST(rs, k, apply_unary(op, T_LD(xs, k)));
                out[i] = r;
            }
        }
        // out[row, j] += bias[j] for a contiguous [rows, N] output (the GEMM epilogue, for now a pass of its own).
        extern "C" __global__ void kinema_bias(T_T* out, const float* bias, long long n, int N) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
                T_ST(out, i, T_LD(out, i) + bias[i % N]);
        }
        // out[b, c, ...] += bias[c] for a contiguous [B, C, inner] output (cuDNN convolutions' bias). The grid's
        // y index walks the B·C planes, so no thread divides to find its channel.
        extern "C" __global__ void kinema_channel_bias(T_T* out, const float* bias, long long planes, int C, long long inner) {
            for (long long plane = blockIdx.y; plane < planes; plane += gridDim.y) {
                const float v = bias[plane % C];
                T_T* p = out + plane * inner;
                for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < inner; i += (long long)gridDim.x * blockDim.x)
                    T_ST(p, i, T_LD(p, i) + v);
            }
        }
        extern "C" __global__ void kinema_affine(const T_T* in, Layout L, T_T* out, long long n, float scale, float shift) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
                T_ST(out, i, T_LD(in, offset_of(L, i)) * scale + shift);
        }
        """#
    }

    /// y[i] += bias[i mod C] + residual[i] in place on a contiguous [rows, C] output (the channels-last
    /// convolution's epilogue when cuDNN could not fuse it): bias f32 [C] or null, residual y's dtype or null,
    /// one rounding. The vector form moves 16 bytes of y and of the residual per thread; the host uses it
    /// when both addresses are 16-byte aligned and C is a multiple of the lanes, so a vector never spans rows.
    static func biasResidual(_ dtype: DType) -> String {
        header([("T", dtype)]) + #"""

        extern "C" __global__ void kinema_bias_residual(T_T* y, const float* bias, const T_T* residual, long long n, int C) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
                float v = T_LD(y, i);
                if (bias) v += bias[i % C];
                if (residual) v += T_LD(residual, i);
                T_ST(y, i, v);
            }
        }
        struct alignas(16) V16 { unsigned int w[4]; };
        #define LANES ((int)(16 / sizeof(T_T)))
        extern "C" __global__ void kinema_bias_residual_vec(V16* y, const float* bias, const V16* residual, long long vectors, int C) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < vectors; i += (long long)gridDim.x * blockDim.x) {
                V16 a = y[i];
                const V16 b = residual ? residual[i] : a;
                T_T* as = reinterpret_cast<T_T*>(&a);
                const T_T* bs = reinterpret_cast<const T_T*>(&b);
                const int c0 = (int)((i * LANES) % C);
                #pragma unroll
                for (int k = 0; k < LANES; ++k) {
                    float v = T_LD(as, k);
                    if (bias) v += bias[c0 + k];
                    if (residual) v += T_LD(bs, k);
                    T_ST(as, k, v);
                }
                y[i] = a;
            }
        }
        """#
    }

    static let binaryCodes: [BinaryOp: Int32] = [.add: 0, .sub: 1, .mul: 2, .div: 3, .maximum: 4, .minimum: 5]

    static func binary(_ a: DType, _ b: DType, out: DType) -> String {
        header([("A", a), ("B", b), ("O", out)]) + #"""

        __device__ __forceinline__ float apply_binary(int op, float x, float y) {
            switch (op) {
            case 0: return x + y;
            case 1: return x - y;
            case 2: return x * y;
            case 3: return x / y;
            case 4: return (x != x || y != y) ? x + y : fmaxf(x, y);
            default: return (x != x || y != y) ? x + y : fminf(x, y);
            }
        }
        extern "C" __global__ void kinema_binary(const A_T* a, Layout La, const B_T* b, Layout Lb, O_T* out, long long n, int op) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
                O_ST(out, i, apply_binary(op, A_LD(a, offset_of(La, i)), B_LD(b, offset_of(Lb, i))));
        }
        // One dtype, all three contiguous and 16-byte aligned, no broadcasting: one 16-byte vector per
        // thread and operand (instantiated only where A, B and O are the same type).
        struct alignas(16) V16 { unsigned int w[4]; };
        #define LANES ((int)(16 / sizeof(O_T)))
        extern "C" __global__ void kinema_binary_vec(const V16* a, const V16* b, V16* out, long long vectors, int op) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < vectors; i += (long long)gridDim.x * blockDim.x) {
                V16 x = a[i], y = b[i], r;
                const A_T* xs = reinterpret_cast<const A_T*>(&x);
                const B_T* ys = reinterpret_cast<const B_T*>(&y);
                O_T* rs = reinterpret_cast<O_T*>(&r);
                #pragma unroll
                for (int k = 0; k < LANES; ++k) O_ST(rs, k, apply_binary(op, A_LD(xs, k), B_LD(ys, k)));
                out[i] = r;
            }
        }
        """#
    }
}
