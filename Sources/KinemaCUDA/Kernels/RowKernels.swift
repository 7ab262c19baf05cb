import KinemaCore

// Per-row kernels over contiguous rows of the last axis: LayerNorm, RMSNorm, softmax (one block per row,
// statistics in f32, two passes so large means do not cancel), reductions, and the interleaved RoPE.
// Short RMSNorm rows (the channels-last VAE's C = 96…384, up to ~1.6 M rows; the DiT's 1,536) take a group of lanes
// per row instead: 16-byte vectors where the rows are made of them, else a warp per row.

enum RowKernels {
    /// The warp-per-row RMSNorm variants: (widest row, rows a warp holds at once, kernel name).
    static let warpRowVariants: [(width: Int, rowsPerWarp: Int, name: String)] = [
        (128, 1, "kinema_rms_norm_warp_rows_128"), (256, 1, "kinema_rms_norm_warp_rows_256"), (512, 1, "kinema_rms_norm_warp_rows_512"),
    ]

    /// The 16-byte-vector RMSNorm variants for rows of whole vectors (D a multiple of 16 / element size, rows
    /// 16-byte aligned): (lanes a row takes, vectors a lane holds, kernel name). A row of V vectors takes the
    /// first whose lanes · vectors ≥ V.
    static let vectorRowVariants: [(lanes: Int, vectorsPerLane: Int, name: String)] = [
        (8, 1, "kinema_rms_norm_vec_rows_8"), (16, 1, "kinema_rms_norm_vec_rows_16"), (32, 1, "kinema_rms_norm_vec_rows_32"),
        (32, 2, "kinema_rms_norm_vec_rows_32x2"), (32, 4, "kinema_rms_norm_vec_rows_32x4"), (32, 8, "kinema_rms_norm_vec_rows_32x8"),
    ]

    static func norms(_ dtype: DType) -> String {
        ElementwiseKernels.header([("T", dtype)]) + #"""

        // y·sigmoid(y) as the unary SiLU computes it (exp of a non-positive argument only).
        __device__ __forceinline__ float silu_f(float y) {
            float e = expf(-fabsf(y));
            return y * (y >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e));
        }

        // The same with the fast exponential and division (a few ulp from silu_f): for 16-bit outputs, whose one
        // rounding (2^-9 relative for bf16) dwarfs that; the exact forms cost ≈ 20 FP32 instructions an element,
        // which kept the VAE's norm + SiLU partly compute-bound (docs/PERF.md, seventh session).
        // exp(-|y|) = 2^(-|y|·log2 e) and 1 / (1 + e) (1 + e in [1, 2]) on the special-function unit.
        __device__ __forceinline__ float silu_fast(float y) {
            float e, s;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(-fabsf(y) * 1.4426950408889634f));
            asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(s) : "f"(1.0f + e));
            return y * (y >= 0.0f ? s : e * s);
        }

        // x, out: [rows, D] contiguous; w, b: [D] f32 or null.
        extern "C" __global__ void kinema_layer_norm(const T_T* x, T_T* out, int D, const float* w, const float* b, float eps) {
            __shared__ float scratch[32];
            const T_T* row = x + (long long)blockIdx.x * D;
            T_T* dst = out + (long long)blockIdx.x * D;
            float s = 0.0f;
            for (int j = threadIdx.x; j < D; j += blockDim.x) s += T_LD(row, j);
            float mean = block_sum(s, scratch) / D;
            float q = 0.0f;
            for (int j = threadIdx.x; j < D; j += blockDim.x) { float d = T_LD(row, j) - mean; q += d * d; }
            float rstd = rsqrtf(block_sum(q, scratch) / D + eps);
            for (int j = threadIdx.x; j < D; j += blockDim.x) {
                float v = (T_LD(row, j) - mean) * rstd;
                if (w) v *= w[j];
                if (b) v += b[j];
                T_ST(dst, j, v);
            }
        }
        // silu: SiLU applied to the normalized (and weighted) value before the single rounding.
        extern "C" __global__ void kinema_rms_norm(const T_T* x, T_T* out, int D, const float* w, float eps, int silu) {
            __shared__ float scratch[32];
            const T_T* row = x + (long long)blockIdx.x * D;
            T_T* dst = out + (long long)blockIdx.x * D;
            float q = 0.0f;
            for (int j = threadIdx.x; j < D; j += blockDim.x) { float v = T_LD(row, j); q += v * v; }
            float scale = rsqrtf(block_sum(q, scratch) / D + eps);
            for (int j = threadIdx.x; j < D; j += blockDim.x) {
                float v = T_LD(row, j) * scale;
                if (w) v *= w[j];
                if (silu) v = silu_f(v);
                T_ST(dst, j, v);
            }
        }
        // One warp per row of D ≤ 32 · V: lane l holds elements l, l + 32, … of R rows at once in registers (one
        // read of each row, every warp load a coalesced run), the sums of squares by shuffles, no block barrier.
        // R rows per warp keep R times the bytes in flight. Measured on the H100 (480p decode's 630 norms): one
        // row a warp 141 ms, R = 4 / 4 / 2 170 ms — slower, so every variant takes R = 1 until a profile of the
        // two side by side says why (docs/PERF.md, fifth session). Warps stride over row groups; row indices are
        // uniform across the warp, so every shuffle is full.
        template <int V, int R>
        __device__ __forceinline__ void rms_norm_warp_rows(
            const T_T* x, T_T* out, long long rows, int D, const float* w, float eps, int silu) {
            const int lane = threadIdx.x & 31;
            const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
            const long long warp = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
            for (long long r0 = warp * R; r0 < rows; r0 += warps * R) {
                float v[R][V];
                float scale[R];
                #pragma unroll
                for (int i = 0; i < R; ++i) {
                    const long long r = r0 + i;
                    float q = 0.0f;
                    #pragma unroll
                    for (int k = 0; k < V; ++k) {
                        const int j = lane + 32 * k;
                        v[i][k] = (r < rows && j < D) ? T_LD(x + r * D, j) : 0.0f;
                        q += v[i][k] * v[i][k];
                    }
                    scale[i] = q;
                }
                #pragma unroll
                for (int i = 0; i < R; ++i) scale[i] = rsqrtf(warp_sum(scale[i]) / D + eps);
                #pragma unroll
                for (int i = 0; i < R; ++i) {
                    const long long r = r0 + i;
                    if (r < rows) {
                        T_T* dst = out + r * D;
                        #pragma unroll
                        for (int k = 0; k < V; ++k) {
                            const int j = lane + 32 * k;
                            if (j < D) {
                                float y = v[i][k] * scale[i];
                                if (w) y *= w[j];
                                if (silu) y = silu_f(y);
                                T_ST(dst, j, y);
                            }
                        }
                    }
                }
            }
        }
        // D ≤ 128, ≤ 256, ≤ 512: one row a warp (R must match warpRowVariants' rowsPerWarp: the launch's grid).
        extern "C" __global__ void __launch_bounds__(256) kinema_rms_norm_warp_rows_128(
            const T_T* x, T_T* out, long long rows, int D, const float* w, float eps, int silu) {
            rms_norm_warp_rows<4, 1>(x, out, rows, D, w, eps, silu);
        }
        extern "C" __global__ void __launch_bounds__(256) kinema_rms_norm_warp_rows_256(
            const T_T* x, T_T* out, long long rows, int D, const float* w, float eps, int silu) {
            rms_norm_warp_rows<8, 1>(x, out, rows, D, w, eps, silu);
        }
        extern "C" __global__ void __launch_bounds__(256) kinema_rms_norm_warp_rows_512(
            const T_T* x, T_T* out, long long rows, int D, const float* w, float eps, int silu) {
            rms_norm_warp_rows<16, 1>(x, out, rows, D, w, eps, silu);
        }
        // Rows of whole 16-byte vectors (8 bf16/f16 or 4 f32): a group of G lanes (a power of two) per row, 32 / G
        // rows a warp, lane g of a group holding vectors g, g + G, … (C of them) of its row in registers. Each warp
        // load is one 16-byte vector a lane — the one-element-a-lane loads of rms_norm_warp_rows move 64 bytes a
        // warp instruction, these up to 512 — and the group's sum of squares is an xor-shuffle within the group.
        // r0 is uniform across the warp, so every shuffle is full; lanes past the last row carry zeros.
        struct alignas(16) RowV16 { unsigned int w[4]; };
        struct alignas(16) RowF4 { float a, b, c, d; };
        #define ROW_LANES ((int)(16 / sizeof(T_T)))
        template <int G, int C>
        __device__ __forceinline__ void rms_norm_vec_rows(
            const RowV16* x, RowV16* out, long long rows, int vectors, int D, const float* w, float eps, int silu) {
            const int lane = threadIdx.x & 31;
            const int g = lane & (G - 1);
            const int sub = lane / G;
            const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
            const long long warp = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
            for (long long r0 = warp * (32 / G); r0 < rows; r0 += warps * (32 / G)) {
                const long long r = r0 + sub;
                float v[C][ROW_LANES];
                float q = 0.0f;
                #pragma unroll
                for (int c = 0; c < C; ++c) {
                    const int vi = c * G + g;
                    RowV16 chunk = {{0u, 0u, 0u, 0u}};
                    if (r < rows && vi < vectors) chunk = x[r * vectors + vi];
                    const T_T* e = reinterpret_cast<const T_T*>(&chunk);
                    #pragma unroll
                    for (int k = 0; k < ROW_LANES; ++k) { v[c][k] = T_LD(e, k); q += v[c][k] * v[c][k]; }
                }
                #pragma unroll
                for (int o = G / 2; o > 0; o >>= 1) q += __shfl_xor_sync(0xffffffffu, q, o);
                const float scale = rsqrtf(q / D + eps);
                #pragma unroll
                for (int c = 0; c < C; ++c) {
                    const int vi = c * G + g;
                    if (r < rows && vi < vectors) {
                        // The weights of this vector's elements as 16-byte loads (w is 16-byte aligned: see the launch).
                        float wv[ROW_LANES];
                        #pragma unroll
                        for (int h = 0; h < ROW_LANES / 4; ++h) {
                            RowF4 t = {1.0f, 1.0f, 1.0f, 1.0f};
                            if (w) t = reinterpret_cast<const RowF4*>(w)[vi * (ROW_LANES / 4) + h];
                            wv[4 * h] = t.a; wv[4 * h + 1] = t.b; wv[4 * h + 2] = t.c; wv[4 * h + 3] = t.d;
                        }
                        RowV16 chunk;
                        T_T* e = reinterpret_cast<T_T*>(&chunk);
                        #pragma unroll
                        for (int k = 0; k < ROW_LANES; ++k) {
                            float y = v[c][k] * scale;
                            if (w) y *= wv[k];
                            if (silu) y = sizeof(T_T) == 2 ? silu_fast(y) : silu_f(y);
                            T_ST(e, k, y);
                        }
                        out[r * vectors + vi] = chunk;
                    }
                }
            }
        }
        // G lanes a row, C vectors a lane (RowKernels.vectorRowVariants; the grid assumes 32 / G rows a warp).
        #define KINEMA_VEC_ROWS(NAME, G, C) \
            extern "C" __global__ void __launch_bounds__(256) NAME( \
                const RowV16* x, RowV16* out, long long rows, int vectors, int D, const float* w, float eps, int silu) { \
                rms_norm_vec_rows<G, C>(x, out, rows, vectors, D, w, eps, silu); \
            }
        KINEMA_VEC_ROWS(kinema_rms_norm_vec_rows_8, 8, 1)
        KINEMA_VEC_ROWS(kinema_rms_norm_vec_rows_16, 16, 1)
        KINEMA_VEC_ROWS(kinema_rms_norm_vec_rows_32, 32, 1)
        KINEMA_VEC_ROWS(kinema_rms_norm_vec_rows_32x2, 32, 2)
        KINEMA_VEC_ROWS(kinema_rms_norm_vec_rows_32x4, 32, 4)
        KINEMA_VEC_ROWS(kinema_rms_norm_vec_rows_32x8, 32, 8)
        extern "C" __global__ void kinema_softmax(const T_T* x, T_T* out, int D) {
            __shared__ float scratch[32];
            const T_T* row = x + (long long)blockIdx.x * D;
            T_T* dst = out + (long long)blockIdx.x * D;
            float m = __int_as_float(0xff800000);
            for (int j = threadIdx.x; j < D; j += blockDim.x) m = fmaxf(m, T_LD(row, j));
            m = block_max(m, scratch);
            float s = 0.0f;
            for (int j = threadIdx.x; j < D; j += blockDim.x) s += expf(T_LD(row, j) - m);
            float inv = 1.0f / block_sum(s, scratch);
            for (int j = threadIdx.x; j < D; j += blockDim.x) T_ST(dst, j, expf(T_LD(row, j) - m) * inv);
        }
        // op 0 sum, 1 mean, 2 max over rows of length D; out has one element per row.
        extern "C" __global__ void kinema_reduce(const T_T* x, T_T* out, long long D, int op) {
            __shared__ float scratch[32];
            const T_T* row = x + (long long)blockIdx.x * D;
            if (op == 2) {
                float m = __int_as_float(0xff800000);
                for (long long j = threadIdx.x; j < D; j += blockDim.x) { float v = T_LD(row, j); m = (v != v || m != m) ? v + m : fmaxf(m, v); }
                m = block_max(m, scratch);
                if (threadIdx.x == 0) T_ST(out, blockIdx.x, m);
                return;
            }
            double s = 0.0;
            for (long long j = threadIdx.x; j < D; j += blockDim.x) s += (double)T_LD(row, j);
            float total = block_sum((float)s, scratch);
            if (threadIdx.x == 0) T_ST(out, blockIdx.x, op == 1 ? total / (float)D : total);
        }
        // x, out: [B, L, H, D] contiguous; cs, sn: [L, D/2] f32. Pairs (2i, 2i+1) rotate by angle i.
        extern "C" __global__ void kinema_rope(const T_T* x, T_T* out, long long pairs, int L, int H, int half,
                                               const float* cs, const float* sn) {
            for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < pairs; p += (long long)gridDim.x * blockDim.x) {
                int i = (int)(p % half);
                long long token = (p / half) / H;
                int l = (int)(token % L);
                float c = cs[(long long)l * half + i], s = sn[(long long)l * half + i];
                float a = T_LD(x, 2 * p), b = T_LD(x, 2 * p + 1);
                T_ST(out, 2 * p, a * c - b * s);
                T_ST(out, 2 * p + 1, a * s + b * c);
            }
        }
        """#
    }
}
