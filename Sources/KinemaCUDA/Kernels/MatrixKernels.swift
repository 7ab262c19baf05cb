import KinemaCore

// Correct-first matrix kernels: a shared-memory tiled GEMM with arbitrary operand strides (so linear's
// Wᵀ is a stride swap, not a copy), flash-style attention with an online softmax (one warp per query
// row, O(L) memory), and a direct 3-D convolution. cuBLASLt and a tensor-core attention replace these on
// the hot path in the speed work; these stay as their twins.

enum MatrixKernels {
    static func gemm(_ a: DType, _ b: DType, out: DType) -> String {
        ElementwiseKernels.header([("A", a), ("B", b), ("O", out)]) + #"""

        #define TILE 16
        // out[batch, M, N] = a[batch, M, K] · b[batch, K, N] (+ bias[N]); strides in elements per operand.
        extern "C" __global__ void kinema_gemm(const A_T* a, long long sab, long long sam, long long sak,
                                               const B_T* b, long long sbb, long long sbk, long long sbn,
                                               O_T* out, int M, int N, int K, const float* bias) {
            __shared__ float ta[TILE][TILE + 1];
            __shared__ float tb[TILE][TILE + 1];
            int batch = blockIdx.z;
            int row = blockIdx.y * TILE + threadIdx.y;
            int col = blockIdx.x * TILE + threadIdx.x;
            const A_T* ab = a + batch * sab;
            const B_T* bb = b + batch * sbb;
            float acc = 0.0f;
            for (int k0 = 0; k0 < K; k0 += TILE) {
                int ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
                ta[threadIdx.y][threadIdx.x] = (row < M && ka < K) ? A_LD(ab, row * sam + ka * sak) : 0.0f;
                tb[threadIdx.y][threadIdx.x] = (kb < K && col < N) ? B_LD(bb, kb * sbk + col * sbn) : 0.0f;
                __syncthreads();
                #pragma unroll
                for (int k = 0; k < TILE; ++k) acc += ta[threadIdx.y][k] * tb[k][threadIdx.x];
                __syncthreads();
            }
            if (row < M && col < N) {
                if (bias) acc += bias[col];
                O_ST(out, ((long long)batch * M + row) * N + col, acc);
            }
        }
        """#
    }

    static func attention(_ dtype: DType) -> String {
        ElementwiseKernels.header([("T", dtype)]) + #"""

        #define MAXD 8  /* elements per lane: head dims up to 256 */
        // q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv] with strides (b, h, l) and unit last stride;
        // out [B,H,Lq,Dv] contiguous. One warp per query row.
        extern "C" __global__ void kinema_attention(
                const T_T* q, long long qb, long long qh, long long ql,
                const T_T* k, long long kb, long long kh, long long kl,
                const T_T* v, long long vb, long long vh, long long vl,
                T_T* out, long long rows, int H, int Lq, int Lk, int D, int Dv, float scale) {
            int lane = threadIdx.x & 31;
            long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
            if (row >= rows) return;
            int i = (int)(row % Lq);
            int h = (int)((row / Lq) % H);
            int bz = (int)(row / ((long long)Lq * H));
            const T_T* qr = q + bz * qb + h * qh + (long long)i * ql;
            const T_T* kbase = k + bz * kb + h * kh;
            const T_T* vbase = v + bz * vb + h * vh;
            float qv[MAXD], acc[MAXD];
            #pragma unroll
            for (int t = 0; t < MAXD; ++t) {
                int d = lane + 32 * t;
                qv[t] = d < D ? T_LD(qr, d) * scale : 0.0f;
                acc[t] = 0.0f;
            }
            float m = __int_as_float(0xff800000), l = 0.0f;
            for (int j = 0; j < Lk; ++j) {
                const T_T* kr = kbase + (long long)j * kl;
                float s = 0.0f;
                #pragma unroll
                for (int t = 0; t < MAXD; ++t) { int d = lane + 32 * t; if (d < D) s += qv[t] * T_LD(kr, d); }
                s = warp_sum(s);
                float mNew = fmaxf(m, s);
                float correction = expf(m - mNew);
                float p = expf(s - mNew);
                l = l * correction + p;
                const T_T* vr = vbase + (long long)j * vl;
                #pragma unroll
                for (int t = 0; t < MAXD; ++t) { int d = lane + 32 * t; if (d < Dv) acc[t] = acc[t] * correction + p * T_LD(vr, d); }
                m = mNew;
            }
            T_T* o = out + row * Dv;
            float inv = 1.0f / l;
            #pragma unroll
            for (int t = 0; t < MAXD; ++t) { int d = lane + 32 * t; if (d < Dv) T_ST(o, d, acc[t] * inv); }
        }
        """#
    }

    static func conv3d(_ x: DType, _ w: DType) -> String {
        ElementwiseKernels.header([("X", x), ("W", w)]) + #"""

        // x [B,Ci,T,H,W], w [Co,Ci,kT,kH,kW] contiguous; out [B,Co,To,Ho,Wo] contiguous in X's dtype.
        extern "C" __global__ void kinema_conv3d(const X_T* x, const W_T* w, const float* bias, X_T* out,
                int B, int Ci, int T, int H, int W, int Co, int kT, int kH, int kW,
                int To, int Ho, int Wo, int st, int sh, int sw, int pt, int ph, int pw) {
            long long n = (long long)B * Co * To * Ho * Wo;
            for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n; idx += (long long)gridDim.x * blockDim.x) {
                long long r = idx;
                int wo = (int)(r % Wo); r /= Wo;
                int ho = (int)(r % Ho); r /= Ho;
                int to = (int)(r % To); r /= To;
                int co = (int)(r % Co); r /= Co;
                int b = (int)r;
                float acc = bias ? bias[co] : 0.0f;
                for (int ci = 0; ci < Ci; ++ci)
                    for (int a = 0; a < kT; ++a) {
                        int t = to * st - pt + a;
                        if (t < 0 || t >= T) continue;
                        for (int c = 0; c < kH; ++c) {
                            int y = ho * sh - ph + c;
                            if (y < 0 || y >= H) continue;
                            for (int e = 0; e < kW; ++e) {
                                int xx = wo * sw - pw + e;
                                if (xx < 0 || xx >= W) continue;
                                acc += X_LD(x, (((long long)(b * Ci + ci) * T + t) * H + y) * W + xx)
                                     * W_LD(w, (((long long)(co * Ci + ci) * kT + a) * kH + c) * kW + e);
                            }
                        }
                    }
                X_ST(out, idx, acc);
            }
        }
        """#
    }
}
