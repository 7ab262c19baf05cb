import KinemaCore

// Flash attention for Hopper (sm_90a) on warpgroup MMA (wgmma.mma_async), bf16 in, f32 accumulate, head
// dim 128, no mask. KINEMA_ATTENTION=wgmma; built and compiled, NOT YET RUN on a GPU (see docs/PERF.md).
//
// Block: 2 warpgroups (256 threads) × 64 query rows = 128 query rows, sharing each 128-key tile of K and V.
// Shared memory (from a 1024-byte aligned base; 224 KiB + 1 KiB of alignment slack):
//   Q       128 rows × 128 dims                        32 KiB, loaded once
//   stage s K 128 keys × 128 dims, V 128 keys × 128 dims 64 KiB, s = 0, 1, 2 (tile j in stage j mod 3)
// Every tile is stored as two "panels" of 64 dims (128 bytes per row, rows back to back), with the
// 128-byte swizzle wgmma expects: the 16-byte chunk c (0…7) of row r sits at chunk c ^ (r mod 8). One
// panel of R rows is R × 128 bytes; 8-row groups are 1024 bytes apart.
//
// Per tile j (cp.async loads of tile j+2 overlap the math of tile j; no producer warp, no TMA yet). One
// block barrier per tile: after it, tile j is visible to all and every warpgroup has finished tile j−1,
// so stage (j+2) mod 3 = (j−1) mod 3 can be refilled right away.
//   S (64 × 128 per warpgroup) = Q·Kᵀ   wgmma m64n128k16, A = Q and B = K from shared memory, both K-major
//                                       (contiguous along the head dim), 8 k-steps of 16 dims.
//   online softmax in registers          exp2 domain (scale·log2 e folded in), row max/sum over the 4 lanes
//                                       of a quad, keys ≥ Lk masked on the last tile.
//   O (64 × 128) += P·V                  wgmma m64n128k16, A = P from registers (bf16), B = V from shared
//                                       memory, MN-major (contiguous along the head dim = N): transpose-B
//                                       flag set, 8 k-steps of 16 keys.
//
// Fragment layouts relied on (PTX ISA, "Asynchronous Warpgroup Level Matrix ... Register Fragments"):
//   accumulator m64nN f32: warp w of the warpgroup owns rows 16w…16w+15; lane = 4·g + t; register
//     4·i + j (i = 0…N/8−1) holds row 16w + g + 8·(j ≥ 2), column 8·i + 2t + (j & 1).
//   A from registers m64k16 bf16: 4 × b32 per thread: (g, 2t…2t+1), (g+8, 2t…), (g, 2t+8…), (g+8, 2t+8…)
//     — the same as the accumulator of columns 16c…16c+15 (blocks 2c, 2c+1), so P never leaves registers.
// Matrix descriptor (64 bits): start address >> 4 (bits 0–13), leading byte offset >> 4 (16–29), stride
//   byte offset >> 4 (32–45), base offset 0 (all tiles 1024-aligned), swizzle mode 1 = 128 B (62–63).
//   K-major 128B swizzle: SBO = 1024 (next 8 rows), LBO unused (1); a k-step of 16 elements inside the
//   64-wide panel advances the start address by 32 bytes (the hardware applies the XOR on the final
//   address), the next panel by its size. MN-major 128B swizzle (V): LBO = panel size (next 64 dims),
//   SBO = 1024 (next 8 keys); a k-step of 16 keys advances the start address by 16 × 128 bytes.
// cp.async writes shared memory through the generic proxy and wgmma reads it through the async proxy, so
// every thread runs fence.proxy.async before the barrier that publishes a tile.
//
// Prediction (H100 SXM, B·H = 12, L = 32,760): 4·L²·d·H = 6.6e12 FLOP per call. Both GEMMs are issued
// as whole 64×128×128 wgmma chains, but softmax and the MMAs of one warpgroup are serialized (no
// intra-warpgroup pipelining, no ping-pong schedule, no producer warp): each warpgroup's tensor work
// waits on its own exp2/max, and only the other warpgroup hides it (their S chains queue on the tensor
// cores, so one's softmax overlaps the other's MMAs for part of each tile; the block barrier realigns them).
// FA3 (d = 128) drops from 661 to 582 / 570 TFLOP/s removing its pipelining / its warp specialization alone;
// with both gone, no ping-pong and cp.async from the consumers, expect ≈ 350–450 TFLOP/s (≈ 15–19 ms per
// call), 3–4× the mma.sync kernel's ≈ 120.

enum WGMMAAttentionKernel {
    static let headDim = 128
    static let queriesPerBlock = 128
    static let threadsPerBlock = 256
    static let keysPerTile = 128
    static let stages = 3
    /// Q (32 KiB) + 3 stages × (K + V) (64 KiB each) + 1 KiB to align the base to 1024 bytes.
    static let sharedBytes = 32 * 1024 + stages * 64 * 1024 + 1024

    /// `{%first, …, %first+count−1}` for an inline-asm register list.
    private static func registers(_ first: Int, _ count: Int) -> String {
        "{" + (first..<(first + count)).map { "%\($0)" }.joined(separator: ", ") + "}"
    }

    /// `"+f"(name[0]), …` for the 64 accumulator registers.
    private static func accumulators(_ name: String) -> String {
        (0..<64).map { "\"+f\"(\(name)[\($0)])" }.joined(separator: ", ")
    }

    static var source: String {
        let ssRegisters = registers(0, 64)
        let rsA = registers(64, 4)
        return KernelPrelude.source + #"""

        #define HD 128
        #define BQ 128
        #define BK 128
        #define PANEL_Q (BQ * 128)      // bytes of one 64-dim panel of the Q tile
        #define PANEL_KV (BK * 128)     // bytes of one 64-dim panel of a K or V tile
        #define STAGE_BYTES (4 * PANEL_KV)

        __device__ __forceinline__ unsigned int wg_pack_bf16(float lo, float hi) {
            unsigned int r;
            asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
            return r;
        }
        __device__ __forceinline__ float wg_exp2(float x) {
            float y;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
            return y;
        }
        __device__ __forceinline__ unsigned int shared_address(const void* p) {
            return (unsigned int)__cvta_generic_to_shared(p);
        }
        // 16 bytes global → shared; bytes = 0 zero-fills (rows past the end).
        __device__ __forceinline__ void cp_async16(unsigned int dst, const void* src, int bytes) {
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(src), "r"(bytes) : "memory");
        }
        __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
        template <int N> __device__ __forceinline__ void cp_async_wait() {
            asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");
        }
        // Tile rows [first, first + rows) of a [L, 128] bf16 matrix (row stride `stride` elements) into the
        // swizzled two-panel layout at `dst`; rows ≥ limit are zero-filled. All 256 threads take part.
        __device__ __forceinline__ void load_tile(unsigned int dst, const unsigned short* src, long long stride,
                                                  int first, int limit, int rows, int panelBytes) {
            for (int i = threadIdx.x; i < rows * 16; i += 256) {
                int r = i >> 4, c = i & 15;
                int row = first + r;
                bool inside = row < limit;
                const unsigned short* p = src + (inside ? (long long)row * stride : 0LL) + c * 8;
                unsigned int d = dst + (c >> 3) * panelBytes + r * 128 + ((((c & 7) ^ (r & 7))) << 4);
                cp_async16(d, p, inside ? 16 : 0);
            }
        }
        __device__ __forceinline__ unsigned long long descriptor(unsigned int address, unsigned int leading, unsigned int stride) {
            return (unsigned long long)((address & 0x3FFFF) >> 4)
                | ((unsigned long long)((leading & 0x3FFFF) >> 4) << 16)
                | ((unsigned long long)((stride & 0x3FFFF) >> 4) << 32)
                | (1ULL << 62);  // 128-byte swizzle
        }
        // Pins the accumulator registers at this point of the program: the compiler may not move their
        // reads above a preceding wgmma.wait_group or their writes below a following wgmma issue.
        __device__ __forceinline__ void fence_accumulators(float* d) {
            #pragma unroll
            for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i]) :: "memory");
        }
        // The same for the 32 bf16x2 registers of P, the A operand of the P·V chain: PTX requires
        // wgmma.fence between writing an A-fragment register and the wgmma.mma_async reading it, so the
        // packing must not be scheduled after the fence.
        __device__ __forceinline__ void fence_fragment(unsigned int* a) {
            #pragma unroll
            for (int i = 0; i < 32; ++i) asm volatile("" : "+r"(a[i]) :: "memory");
        }
        __device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
        __device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
        __device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
        // d (64×128 f32) += A (64×16, shared, K-major) · B (16×128, shared, K-major).
        __device__ __forceinline__ void wgmma_ss(float* d, unsigned long long a, unsigned long long b) {
            asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                         "\#(ssRegisters), %64, %65, 1, 1, 1, 0, 0;"
                         : \#(accumulators("d"))
                         : "l"(a), "l"(b) : "memory");
        }
        // d (64×128 f32) += A (64×16 bf16, registers) · B (16×128, shared, MN-major: transpose flag 1).
        __device__ __forceinline__ void wgmma_rs(float* d, const unsigned int* a, unsigned long long b) {
            asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                         "\#(ssRegisters), \#(rsA), %68, 1, 1, 1, 1;"
                         : \#(accumulators("d"))
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b) : "memory");
        }

        // q [B,H,Lq,128], k/v [B,H,Lk,128] bf16 with (b, h, l) strides in elements, unit last stride, rows
        // 16-byte aligned; out [B,Lq,H,128] contiguous (returned as a [B,H,Lq,128] view).
        // grid: (ceil(Lq / 128), B·H); block: 256 threads; dynamic shared memory WGMMAAttentionKernel.sharedBytes.
        // MODE 0: attention. MODE 1 and 2 are diagnostics (see kinema_flash_attention_wgmma_debug).
        template <int MODE>
        __device__ __forceinline__ void wgmma_attention(
                const unsigned short* q, long long qb, long long qh, long long ql,
                const unsigned short* k, long long kb, long long kh, long long kl,
                const unsigned short* v, long long vb, long long vh, long long vl,
                unsigned short* out, int H, int Lq, int Lk, float scale_log2, float* debug) {
            extern __shared__ unsigned char shared_raw[];
            const unsigned int base = (shared_address(shared_raw) + 1023u) & ~1023u;
            const unsigned int qs = base;
            const unsigned int stages = base + 2 * PANEL_Q;
            const int warpgroup = threadIdx.x >> 7;
            const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
            const int g = lane >> 2, t = lane & 3;
            const int bh = blockIdx.y, bz = bh / H, h = bh % H;
            const int q0 = blockIdx.x * BQ;
            const int r0 = q0 + warpgroup * 64 + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows
            const unsigned short* qbase = q + bz * qb + h * qh;
            const unsigned short* kbase = k + bz * kb + h * kh;
            const unsigned short* vbase = v + bz * vb + h * vh;

            load_tile(qs, qbase, ql, q0, Lq, BQ, PANEL_Q);
            load_tile(stages, kbase, kl, 0, Lk, BK, PANEL_KV);
            load_tile(stages + 2 * PANEL_KV, vbase, vl, 0, Lk, BK, PANEL_KV);
            cp_async_commit();
            // One commit group per tile index, empty past the last tile, so "all but the newest group
            // complete" always means "tile j has landed".
            if (BK < Lk) {
                load_tile(stages + STAGE_BYTES, kbase, kl, BK, Lk, BK, PANEL_KV);
                load_tile(stages + STAGE_BYTES + 2 * PANEL_KV, vbase, vl, BK, Lk, BK, PANEL_KV);
            }
            cp_async_commit();

            float o[64];
            #pragma unroll
            for (int i = 0; i < 64; ++i) o[i] = 0.0f;
            float m0 = -1e30f, m1 = -1e30f, l0 = 0.0f, l1 = 0.0f;  // rows g and g + 8 of this warp
            // This warpgroup's 64 Q rows start 64 rows (8 KiB) into each Q panel.
            const unsigned int qrows = qs + warpgroup * 64 * 128;
            const int tiles = (Lk + BK - 1) / BK;

            for (int j = 0; j < tiles; ++j) {
                const unsigned int ks = stages + (j % 3) * STAGE_BYTES, vs = ks + 2 * PANEL_KV;
                cp_async_wait<1>();  // groups so far: tiles 0 … j+1; all but the newest = tile j complete
                asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
                __syncthreads();
                // S = Q·Kᵀ: 8 k-steps of 16 dims; 4 per 64-dim panel, 32 bytes apart inside a swizzled row.
                float s[64];
                #pragma unroll
                for (int i = 0; i < 64; ++i) s[i] = 0.0f;
                fence_accumulators(s);
                wgmma_fence();
                #pragma unroll
                for (int kk = 0; kk < 8; ++kk) {
                    const unsigned int offset = (kk & 3) * 32;
                    unsigned long long a = descriptor(qrows + (kk >> 2) * PANEL_Q + offset, 16, 1024);
                    unsigned long long b = descriptor(ks + (kk >> 2) * PANEL_KV + offset, 16, 1024);
                    wgmma_ss(s, a, b);
                }
                wgmma_commit();
                // While the S chain runs: tile j+2 into stage (j+2) mod 3 (not the one being read).
                if (j + 2 < tiles) {
                    const unsigned int next = stages + ((j + 2) % 3) * STAGE_BYTES;
                    load_tile(next, kbase, kl, (j + 2) * BK, Lk, BK, PANEL_KV);
                    load_tile(next + 2 * PANEL_KV, vbase, vl, (j + 2) * BK, Lk, BK, PANEL_KV);
                }
                cp_async_commit();
                wgmma_wait_all();
                fence_accumulators(s);
                if constexpr (MODE == 1) {  // diagnostics: tile 0's raw scores, f32 [B·H, Lq, 128]
                    #pragma unroll
                    for (int i = 0; i < 64; ++i) {
                        int row = (i & 2) ? r1 : r0, col = 8 * (i >> 2) + 2 * t + (i & 1);
                        if (row < Lq) debug[((long long)bh * Lq + row) * BK + col] = s[i];
                    }
                    cp_async_wait<0>();
                    return;
                }

                // Online softmax. Register 4i + jj: row g (jj < 2) or g + 8, key j·BK + 8i + 2t + (jj & 1).
                const int key0 = j * BK;
                float tileMax0 = -1e30f, tileMax1 = -1e30f;
                #pragma unroll
                for (int i = 0; i < 16; ++i) {
                    #pragma unroll
                    for (int jj = 0; jj < 4; ++jj) {
                        int key = key0 + 8 * i + 2 * t + (jj & 1);
                        float value = key < Lk ? s[4 * i + jj] * scale_log2 : -1e30f;
                        s[4 * i + jj] = value;
                        if (jj < 2) tileMax0 = fmaxf(tileMax0, value); else tileMax1 = fmaxf(tileMax1, value);
                    }
                }
                tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 1));
                tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 2));
                tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 1));
                tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 2));
                const float new0 = fmaxf(m0, tileMax0), new1 = fmaxf(m1, tileMax1);
                const float c0 = wg_exp2(m0 - new0), c1 = wg_exp2(m1 - new1);
                m0 = new0; m1 = new1;
                float sum0 = 0.0f, sum1 = 0.0f;
                unsigned int p[32];  // P in bf16, already in the register-A layout of the P·V k-steps
                #pragma unroll
                for (int i = 0; i < 16; ++i) {
                    float e0 = wg_exp2(s[4 * i] - m0), e1 = wg_exp2(s[4 * i + 1] - m0);
                    float e2 = wg_exp2(s[4 * i + 2] - m1), e3 = wg_exp2(s[4 * i + 3] - m1);
                    sum0 += e0 + e1;
                    sum1 += e2 + e3;
                    p[2 * i] = wg_pack_bf16(e0, e1);      // row g
                    p[2 * i + 1] = wg_pack_bf16(e2, e3);  // row g + 8
                }
                if constexpr (MODE == 2) {  // diagnostics: one-hot P, row r takes key r mod 128 of tile 0
                    #pragma unroll
                    for (int i = 0; i < 16; ++i) {
                        int key = 8 * i + 2 * t;
                        p[2 * i] = wg_pack_bf16(key == r0 - q0 ? 1.0f : 0.0f, key + 1 == r0 - q0 ? 1.0f : 0.0f);
                        p[2 * i + 1] = wg_pack_bf16(key == r1 - q0 ? 1.0f : 0.0f, key + 1 == r1 - q0 ? 1.0f : 0.0f);
                    }
                }
                l0 = l0 * c0 + sum0;  // per-lane partial sums; reduced across the quad at the end
                l1 = l1 * c1 + sum1;
                #pragma unroll
                for (int i = 0; i < 16; ++i) { o[4 * i] *= c0; o[4 * i + 1] *= c0; o[4 * i + 2] *= c1; o[4 * i + 3] *= c1; }

                // O += P·V: k-step c covers keys 16c…16c+15 = accumulator blocks 2c (p[4c], p[4c+1]) and
                // 2c+1 (p[4c+2], p[4c+3]) — exactly the A order (g,2t) (g+8,2t) (g,2t+8) (g+8,2t+8).
                fence_fragment(p);
                fence_accumulators(o);
                wgmma_fence();
                #pragma unroll
                for (int c = 0; c < 8; ++c) {
                    unsigned long long b = descriptor(vs + c * 16 * 128, PANEL_KV, 1024);
                    wgmma_rs(o, &p[4 * c], b);
                }
                wgmma_commit();
                wgmma_wait_all();
                fence_accumulators(o);
                if constexpr (MODE == 2) {  // diagnostics: O after tile 0 (unnormalized), f32 [B·H, Lq, 128]
                    #pragma unroll
                    for (int i = 0; i < 64; ++i) {
                        int row = (i & 2) ? r1 : r0, col = 8 * (i >> 2) + 2 * t + (i & 1);
                        if (row < Lq) debug[((long long)bh * Lq + row) * HD + col] = o[i];
                    }
                    cp_async_wait<0>();
                    return;
                }
            }

            l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
            l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
            const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
            unsigned short* row0 = out + (((long long)bz * Lq + r0) * H + h) * HD;
            unsigned short* row1 = out + (((long long)bz * Lq + r1) * H + h) * HD;
            #pragma unroll
            for (int i = 0; i < 16; ++i) {
                int d = 8 * i + 2 * t;
                if (r0 < Lq) *(unsigned int*)(row0 + d) = wg_pack_bf16(o[4 * i] * inv0, o[4 * i + 1] * inv0);
                if (r1 < Lq) *(unsigned int*)(row1 + d) = wg_pack_bf16(o[4 * i + 2] * inv1, o[4 * i + 3] * inv1);
            }
        }

        #define WGMMA_ATTENTION_PARAMETERS \
                const unsigned short* q, long long qb, long long qh, long long ql, \
                const unsigned short* k, long long kb, long long kh, long long kl, \
                const unsigned short* v, long long vb, long long vh, long long vl, \
                unsigned short* out, int H, int Lq, int Lk, float scale_log2
        #define WGMMA_ATTENTION_ARGUMENTS q, qb, qh, ql, k, kb, kh, kl, v, vb, vh, vl, out, H, Lq, Lk, scale_log2

        extern "C" __global__ void __launch_bounds__(256, 1) kinema_flash_attention_wgmma(WGMMA_ATTENTION_PARAMETERS) {
            wgmma_attention<0>(WGMMA_ATTENTION_ARGUMENTS, nullptr);
        }

        // Diagnostics for a first GPU run, isolating the two wgmma paths: mode 1 writes tile 0's raw scores
        // S = Q·Kᵀ (shared-memory descriptors, K-major A and B) and mode 2 the P·V of a one-hot P that sends
        // query row r to key r mod 128 (register A, MN-major V), each f32 [B·H, Lq, 128] into `debug`.
        extern "C" __global__ void __launch_bounds__(256, 1) kinema_flash_attention_wgmma_debug(
                WGMMA_ATTENTION_PARAMETERS, int mode, float* debug) {
            if (mode == 1) wgmma_attention<1>(WGMMA_ATTENTION_ARGUMENTS, debug);
            else wgmma_attention<2>(WGMMA_ATTENTION_ARGUMENTS, debug);
        }
        """#
    }
}
