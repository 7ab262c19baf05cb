import KinemaCore

// Flash attention on the tensor cores (mma.sync m16n8k16, bf16 in, f32 accumulate), head dim 128.
// One warp owns 16 query rows; a block of 8 warps shares each 64-key tile of K and V in shared memory.
// S = Q·Kᵀ is accumulated in the mma C layout, which is also the A layout P needs for P·V, so the
// softmax probabilities never leave registers. Online softmax in the exp2 domain (scale folded with
// log2 e). Keys past Lk are masked; query rows past Lq are computed on zeros and not stored.
//
// Fragment layout (PTX ISA, mma.m16n8k16, .bf16): lane = 4·g + t.
//   A 16×16 row-major: a0 (g, 2t..2t+1) a1 (g+8, 2t..) a2 (g, 2t+8..) a3 (g+8, 2t+8..)
//   B 16×8 (k × n):    b0 (k 2t..2t+1, n g)  b1 (k 2t+8..2t+9, n g)
//   C 16×8 f32:        c0 c1 (g, 2t, 2t+1)   c2 c3 (g+8, 2t, 2t+1)
// V is stored transposed in shared memory ([dim][key], rows padded by 8) so that each B fragment of P·V is
// one conflict-free 32-bit load. The next K/V tile is prefetched into registers while the current one is
// computed (register double buffering; no cp.async/TMA, no ldmatrix, no warp specialization yet).

enum FlashAttentionKernel {
    static let headDim = 128
    static let queriesPerBlock = 128
    static let threadsPerBlock = 256
    static let keysPerTile = 64

    static var source: String {
        KernelPrelude.source + #"""

        #define HD 128
        #define BQ 128
        #define BK 64
        __device__ __forceinline__ unsigned int pack_bf16(float lo, float hi) {
            unsigned int r;
            asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
            return r;
        }
        // 2^x on the special-function unit (flushes subnormal results to zero; probabilities that small
        // vanish in bf16 anyway).
        __device__ __forceinline__ float fast_exp2(float x) {
            float y;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
            return y;
        }
        __device__ __forceinline__ void mma_bf16(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                         "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                         : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
        }

        // q [B,H,Lq,128], k/v [B,H,Lk,128] bf16 with (b, h, l) strides, unit last stride; out [B,H,Lq,128].
        // grid: (ceil(Lq / 128), B·H); block: 256 threads (8 warps × 16 query rows).
        extern "C" __global__ void __launch_bounds__(256) kinema_flash_attention(
                const unsigned short* q, long long qb, long long qh, long long ql,
                const unsigned short* k, long long kb, long long kh, long long kl,
                const unsigned short* v, long long vb, long long vh, long long vl,
                unsigned short* out, int H, int Lq, int Lk, float scale_log2) {
            __shared__ unsigned short Ks[BK][HD + 8];
            __shared__ unsigned short Vt[HD][BK + 8];  // V transposed: [dim][key], so P·V's B fragments are 32-bit loads
            const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
            const int g = lane >> 2, t = lane & 3;
            const int bh = blockIdx.y, bz = bh / H, h = bh % H;
            const int row0 = blockIdx.x * BQ + warp * 16;
            const unsigned short* qbase = q + bz * qb + h * qh;
            const unsigned short* kbase = k + bz * kb + h * kh;
            const unsigned short* vbase = v + bz * vb + h * vh;

            // Q fragments for this warp's 16 rows: 8 chunks of 16 dims × 4 registers.
            unsigned int qa[8][4];
            #pragma unroll
            for (int c = 0; c < 8; ++c) {
                #pragma unroll
                for (int r = 0; r < 4; ++r) {
                    int row = row0 + g + ((r & 1) ? 8 : 0);
                    int col = c * 16 + 2 * t + ((r & 2) ? 8 : 0);
                    unsigned int value = 0;
                    if (row < Lq) value = *(const unsigned int*)(qbase + (long long)row * ql + col);
                    qa[c][r] = value;
                }
            }
            float o[16][4];
            #pragma unroll
            for (int n = 0; n < 16; ++n) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f; }
            float m0 = -1e30f, m1 = -1e30f, l0 = 0.0f, l1 = 0.0f;  // rows g and g + 8

            // Each thread moves WORDS 32-bit words of K and of V per tile. The next tile's words are fetched
            // into registers before the current tile is computed, so global latency overlaps the mma work.
            #define WORDS (BK * (HD / 2) / 256)
            unsigned int kn[WORDS], vn[WORDS];
            #pragma unroll
            for (int w = 0; w < WORDS; ++w) {
                int i = w * 256 + threadIdx.x;
                int r = i / (HD / 2), c2 = (i % (HD / 2)) * 2;
                kn[w] = r < Lk ? *(const unsigned int*)(kbase + (long long)r * kl + c2) : 0u;
                vn[w] = r < Lk ? *(const unsigned int*)(vbase + (long long)r * vl + c2) : 0u;
            }
            for (int key0 = 0; key0 < Lk; key0 += BK) {
                __syncthreads();
                #pragma unroll
                for (int w = 0; w < WORDS; ++w) {
                    int i = w * 256 + threadIdx.x;
                    int r = i / (HD / 2), c2 = (i % (HD / 2)) * 2;
                    *(unsigned int*)&Ks[r][c2] = kn[w];
                    Vt[c2][r] = (unsigned short)(vn[w] & 0xffffu);
                    Vt[c2 + 1][r] = (unsigned short)(vn[w] >> 16);
                }
                __syncthreads();
                if (key0 + BK < Lk) {
                    #pragma unroll
                    for (int w = 0; w < WORDS; ++w) {
                        int i = w * 256 + threadIdx.x;
                        int r = i / (HD / 2), c2 = (i % (HD / 2)) * 2;
                        int key = key0 + BK + r;
                        kn[w] = key < Lk ? *(const unsigned int*)(kbase + (long long)key * kl + c2) : 0u;
                        vn[w] = key < Lk ? *(const unsigned int*)(vbase + (long long)key * vl + c2) : 0u;
                    }
                }

                // S = Q·Kᵀ for 16 rows × 64 keys: 8 n-tiles of 8 keys.
                float s[8][4];
                #pragma unroll
                for (int n = 0; n < 8; ++n) {
                    s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
                    #pragma unroll
                    for (int c = 0; c < 8; ++c) {
                        unsigned int b0 = *(const unsigned int*)&Ks[n * 8 + g][c * 16 + 2 * t];
                        unsigned int b1 = *(const unsigned int*)&Ks[n * 8 + g][c * 16 + 2 * t + 8];
                        mma_bf16(s[n], qa[c], b0, b1);
                    }
                }
                // Online softmax: mask, row max over the 4 lanes of a group, rescale, exponentiate.
                float tileMax0 = -1e30f, tileMax1 = -1e30f;
                #pragma unroll
                for (int n = 0; n < 8; ++n) {
                    #pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        int key = key0 + n * 8 + 2 * t + (j & 1);
                        float value = key < Lk ? s[n][j] * scale_log2 : -1e30f;
                        s[n][j] = value;
                        if (j < 2) tileMax0 = fmaxf(tileMax0, value); else tileMax1 = fmaxf(tileMax1, value);
                    }
                }
                tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 1));
                tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 2));
                tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 1));
                tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 2));
                float new0 = fmaxf(m0, tileMax0), new1 = fmaxf(m1, tileMax1);
                float c0 = fast_exp2(m0 - new0), c1 = fast_exp2(m1 - new1);
                m0 = new0; m1 = new1;
                float sum0 = 0.0f, sum1 = 0.0f;
                #pragma unroll
                for (int n = 0; n < 8; ++n) {
                    s[n][0] = fast_exp2(s[n][0] - m0); s[n][1] = fast_exp2(s[n][1] - m0);
                    s[n][2] = fast_exp2(s[n][2] - m1); s[n][3] = fast_exp2(s[n][3] - m1);
                    sum0 += s[n][0] + s[n][1];
                    sum1 += s[n][2] + s[n][3];
                }
                l0 = l0 * c0 + sum0;  // per-lane partial sums; reduced across the group at the end
                l1 = l1 * c1 + sum1;
                #pragma unroll
                for (int n = 0; n < 16; ++n) { o[n][0] *= c0; o[n][1] *= c0; o[n][2] *= c1; o[n][3] *= c1; }

                // O += P·V: P (16 × 64) as 4 A-chunks of 16 keys, V tile as B (keys × dims).
                #pragma unroll
                for (int c = 0; c < 4; ++c) {
                    unsigned int pa[4];
                    pa[0] = pack_bf16(s[2 * c][0], s[2 * c][1]);
                    pa[1] = pack_bf16(s[2 * c][2], s[2 * c][3]);
                    pa[2] = pack_bf16(s[2 * c + 1][0], s[2 * c + 1][1]);
                    pa[3] = pack_bf16(s[2 * c + 1][2], s[2 * c + 1][3]);
                    #pragma unroll
                    for (int n = 0; n < 16; ++n) {
                        const unsigned short* column = &Vt[n * 8 + g][c * 16 + 2 * t];
                        unsigned int b0 = *(const unsigned int*)column;
                        unsigned int b1 = *(const unsigned int*)(column + 8);
                        mma_bf16(o[n], pa, b0, b1);
                    }
                }
            }
            l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
            l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
            float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
            unsigned short* obase = out + (long long)bh * Lq * HD;
            int r0 = row0 + g, r1 = row0 + g + 8;
            #pragma unroll
            for (int n = 0; n < 16; ++n) {
                int d = n * 8 + 2 * t;
                if (r0 < Lq) *(unsigned int*)(obase + (long long)r0 * HD + d) = pack_bf16(o[n][0] * inv0, o[n][1] * inv0);
                if (r1 < Lq) *(unsigned int*)(obase + (long long)r1 * HD + d) = pack_bf16(o[n][2] * inv1, o[n][3] * inv1);
            }
        }
        """#
    }
}
