import KinemaCore

// Fused passes of the Wan block: one block of threads per row of the [B·L, D] activation, the row held
// in registers between the statistics and the output (each thread owns the elements j = tid + k·blockDim,
// so every load and store of a warp is one coalesced run). One read of the input, one write of the
// output: these kernels are bound by memory bandwidth.

enum FusedKernels {
    /// Elements (or pairs) each thread keeps in registers; the host picks blockDim so that
    /// blockDim · perThread covers the row, which bounds the row at 1024 · perThread. The kernels are
    /// declared __launch_bounds__(1024) so that ptxas keeps them within 64 registers a thread: without
    /// it a 1024-thread block (rows near 8192) could fail with CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES.
    static let valuesPerThread = 8
    static let pairsPerThread = 4

    /// (LN(x)·w + b)·(1 + scale) + shift → O. x: [rows, D] contiguous; w, b: [D] f32 or null;
    /// shift, scale: f32 rows of D for sample r / L, `shiftStride`/`scaleStride` elements apart (0: shared),
    /// or null.
    static func modulatedLayerNorm(_ input: DType, out: DType) -> String {
        ElementwiseKernels.header([("X", input), ("O", out)]) + """

        #define VPT \(valuesPerThread)
        """ + #"""

        extern "C" __global__ void __launch_bounds__(1024) kinema_modulated_layer_norm(
            const X_T* x, O_T* out, int L, int D, const float* w, const float* b,
            const float* shift, long long shiftStride, const float* scale, long long scaleStride, float eps) {
            __shared__ float scratch[32];
            const long long r = blockIdx.x;
            const X_T* row = x + r * D;
            O_T* dst = out + r * D;
            float v[VPT];
            float s = 0.0f;
            #pragma unroll
            for (int k = 0; k < VPT; ++k) {
                int j = threadIdx.x + k * blockDim.x;
                v[k] = j < D ? X_LD(row, j) : 0.0f;
                s += v[k];
            }
            const float mean = block_sum(s, scratch) / D;
            float q = 0.0f;
            #pragma unroll
            for (int k = 0; k < VPT; ++k) {
                int j = threadIdx.x + k * blockDim.x;
                float d = j < D ? v[k] - mean : 0.0f;
                q += d * d;
            }
            const float rstd = rsqrtf(block_sum(q, scratch) / D + eps);
            const long long sample = r / L;
            const float* sh = shift ? shift + sample * shiftStride : 0;
            const float* sc = scale ? scale + sample * scaleStride : 0;
            #pragma unroll
            for (int k = 0; k < VPT; ++k) {
                int j = threadIdx.x + k * blockDim.x;
                if (j < D) {
                    float y = (v[k] - mean) * rstd;
                    if (w) y *= w[j];
                    if (b) y += b[j];
                    if (sc) y *= 1.0f + sc[j];
                    if (sh) y += sh[j];
                    O_ST(dst, j, y);
                }
            }
        }
        """#
    }

    /// out = x + y·gate (gate null: x + y), the product rounded before the sum. x, y, out: [rows, D]
    /// contiguous; gate: f32 row of D for sample r / L, `gateStride` elements apart (0: shared). All loads
    /// of a thread are issued before its first store (out may alias nothing, but the compiler cannot know).
    static func gatedResidual(_ x: DType, _ y: DType) -> String {
        ElementwiseKernels.header([("X", x), ("Y", y)]) + """

        #define VPT \(valuesPerThread)
        """ + #"""

        extern "C" __global__ void __launch_bounds__(1024) kinema_gated_residual(
            const X_T* x, const Y_T* y, X_T* out, int L, int D, const float* gate, long long gateStride) {
            const long long base = (long long)blockIdx.x * D;
            const float* g = gate ? gate + ((long long)blockIdx.x / L) * gateStride : 0;
            float a[VPT], p[VPT];
            #pragma unroll
            for (int k = 0; k < VPT; ++k) {
                int j = threadIdx.x + k * blockDim.x;
                a[k] = j < D ? X_LD(x, base + j) : 0.0f;
                p[k] = j < D ? Y_LD(y, base + j) : 0.0f;
                if (g && j < D) p[k] = __fmul_rn(p[k], g[j]);
            }
            #pragma unroll
            for (int k = 0; k < VPT; ++k) {
                int j = threadIdx.x + k * blockDim.x;
                if (j < D) X_ST(out, base + j, __fadd_rn(a[k], p[k]));
            }
        }
        """#
    }

    /// RMSNorm over the row (D = H·d) with weight w, then RoPE on interleaved pairs: pair p of the row
    /// rotates by table column p mod half of position l. x: row (b, l) at b·strideB + l·strideL, unit
    /// element stride; out: [rows, D] contiguous; cs, sn: [L, half] f32; w: [D] f32 or null.
    static func rmsNormRope(_ dtype: DType) -> String {
        ElementwiseKernels.header([("T", dtype)]) + """

        #define PPT \(pairsPerThread)
        """ + #"""

        extern "C" __global__ void __launch_bounds__(1024) kinema_rms_norm_rope(
            const T_T* x, long long strideB, long long strideL, T_T* out, int L, int D, int half,
            const float* w, const float* cs, const float* sn, float eps) {
            __shared__ float scratch[32];
            const long long r = blockIdx.x;
            const int l = (int)(r % L);
            const T_T* row = x + (r / L) * strideB + (long long)l * strideL;
            T_T* dst = out + r * D;
            const int P = D / 2;
            float re[PPT], im[PPT];
            float q = 0.0f;
            #pragma unroll
            for (int k = 0; k < PPT; ++k) {
                int p = threadIdx.x + k * blockDim.x;
                re[k] = p < P ? T_LD(row, 2 * p) : 0.0f;
                im[k] = p < P ? T_LD(row, 2 * p + 1) : 0.0f;
                q += re[k] * re[k] + im[k] * im[k];
            }
            const float inv = rsqrtf(block_sum(q, scratch) / D + eps);
            const float* c = cs + (long long)l * half;
            const float* s = sn + (long long)l * half;
            #pragma unroll
            for (int k = 0; k < PPT; ++k) {
                int p = threadIdx.x + k * blockDim.x;
                if (p < P) {
                    float a = re[k] * inv, e = im[k] * inv;
                    if (w) { a *= w[2 * p]; e *= w[2 * p + 1]; }
                    int i = p % half;
                    T_ST(dst, 2 * p, a * c[i] - e * s[i]);
                    T_ST(dst, 2 * p + 1, a * s[i] + e * c[i]);
                }
            }
        }
        """#
    }

    /// Threads per block for a row of `count` items at `perThread` items per thread: a multiple of 32,
    /// at most 1024, or nil when the row is longer than 1024 · perThread (callers then compose).
    static func threads(count: Int, perThread: Int) -> Int? {
        let needed = (count + perThread - 1) / perThread
        let rounded = max(32, (needed + 31) / 32 * 32)
        return rounded <= 1024 ? rounded : nil
    }

    /// The Wan VAE norm over channels of a contiguous [B, C, S] tensor, with optional SiLU. One thread per
    /// (b, s) position: the warp's 32 consecutive positions make every load and store of a channel one
    /// coalesced run, where the unfused path transposed to channels-last and back (two strided passes).
    /// The C values are read twice (statistics, then output); the second read hits L2.
    static func channelRMSNorm(_ dtype: DType) -> String {
        ElementwiseKernels.header([("X", dtype)]) + #"""

        extern "C" __global__ void __launch_bounds__(256) kinema_channel_rms_norm(
            const X_T* x, X_T* out, int C, long long S, long long positions, const float* w, float eps, int silu) {
            for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < positions; p += (long long)gridDim.x * blockDim.x) {
                const long long sample = p / S;
                const long long base = sample * C * S + (p - sample * S);
                float q = 0.0f;
                for (int c = 0; c < C; ++c) { float v = X_LD(x, base + c * S); q += v * v; }
                const float rstd = rsqrtf(q / C + eps);
                for (int c = 0; c < C; ++c) {
                    float y = X_LD(x, base + c * S) * rstd;
                    if (w) y *= w[c];
                    if (silu) {
                        // y·sigmoid(y) as the unary SiLU computes it (exp of a non-positive argument only).
                        float e = expf(-fabsf(y));
                        y *= y >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
                    }
                    X_ST(out, base + c * S, y);
                }
            }
        }
        """#
    }
}
