# Host model of kinema_flash_attention_wgmma's indexing (Sources/KinemaCUDA/Kernels/WGMMAAttentionKernel.swift),
# written for a review without a GPU. Shared memory is an element array filled the way load_tile fills it;
# wgmma reads it through the canonical layouts that CUTLASS's make_gmma_desc encodes (K-major and MN-major,
# 128-byte swizzle = Swizzle<3,4,3> on the byte address), fragments move per the PTX accumulator and register-A
# layouts, and the softmax / packing / tail code mirrors the kernel. Unwritten shared memory reads as NaN.
# It checks the kernel's index arithmetic against that model, not the hardware: the GPU diagnostics
# (scripts/device/wgmma.sh) are the real test. Two broken variants (V's LBO/SBO swapped, no swizzle on the
# cp.async side) must fail, to show the model can tell. Usage: /opt/refenv/bin/python scripts/device/wgmma_emulate.py
import numpy as np
def bf16(x):
    x = np.asarray(x, np.float32).copy(); u = x.view(np.uint32)
    u[:] = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000); return x
HD=BQ=BK=128; PANEL_Q=BQ*128; PANEL_KV=BK*128; STAGE=4*PANEL_KV
def swz(a): return a ^ (((a >> 7) & 7) << 4)
def run(Q, K, V, scale, base_misalign=0, v_offsets=(PANEL_KV, 1024), swizzled_writes=True):
    Lq, Lk = Q.shape[0], K.shape[0]
    total = 32*1024 + 3*64*1024 + 1024
    mem = np.full(total//2 + 8, np.nan)  # NaN: reading anything never written shows up
    raw = base_misalign
    base = (raw + 1023) & ~1023
    assert base + 224*1024 <= raw + total
    def load(dst, src, first, limit, rows, panel):
        for r in range(rows):
            row = first + r
            for c in range(16):
                d = dst + (c >> 3)*panel + r*128 + (((c & 7) ^ ((r & 7) if swizzled_writes else 0)) << 4)
                vals = src[row, c*8:c*8+8] if row < limit else np.zeros(8)
                mem[(d - raw)//2:(d - raw)//2 + 8] = vals
    def rd(addr): return mem[(swz(addr) - raw)//2]
    def kmajor(start, sbo, rows):
        return np.array([[rd(start + (i % 8)*128 + (i//8)*sbo + k*2) for k in range(16)] for i in range(rows)])
    def mnmajor(start, lbo, sbo):
        return np.array([[rd(start + (n % 64)*2 + (n//64)*lbo + (k % 8)*128 + (k//8)*sbo) for n in range(128)] for k in range(16)])
    out = np.full((Lq, HD), np.nan)
    for bx in range((Lq + BQ - 1)//BQ):
        mem[:] = np.nan
        q0 = bx*BQ; qs = base; stages = base + 2*PANEL_Q
        load(qs, Q, q0, Lq, BQ, PANEL_Q)
        load(stages, K, 0, Lk, BK, PANEL_KV); load(stages + 2*PANEL_KV, V, 0, Lk, BK, PANEL_KV)
        if BK < Lk:
            load(stages + STAGE, K, BK, Lk, BK, PANEL_KV); load(stages + STAGE + 2*PANEL_KV, V, BK, Lk, BK, PANEL_KV)
        tiles = (Lk + BK - 1)//BK
        # thread ids of one warpgroup: warp w, lane = 4g + t
        w = np.arange(128) >> 5; lane = np.arange(128) & 31; g = lane >> 2; t = lane & 3
        st = {wg: dict(o=np.zeros((128, 64)), m0=np.full(128, -1e30), m1=np.full(128, -1e30), l0=np.zeros(128), l1=np.zeros(128)) for wg in (0, 1)}
        for j in range(tiles):
            ks = stages + (j % 3)*STAGE; vs = ks + 2*PANEL_KV
            S = {}
            for wg in (0, 1):
                qrows = qs + wg*64*128
                Sm = np.zeros((64, 128))
                for kk in range(8):
                    off = (kk & 3)*32
                    A = kmajor(qrows + (kk >> 2)*PANEL_Q + off, 1024, 64)
                    B = kmajor(ks + (kk >> 2)*PANEL_KV + off, 1024, 128)
                    Sm += A @ B.T
                S[wg] = Sm
            if j + 2 < tiles:
                nxt = stages + ((j + 2) % 3)*STAGE
                load(nxt, K, (j + 2)*BK, Lk, BK, PANEL_KV); load(nxt + 2*PANEL_KV, V, (j + 2)*BK, Lk, BK, PANEL_KV)
            for wg in (0, 1):
                X = st[wg]; Sm = S[wg]
                # accumulator registers: reg 4i+jj -> row 16w+g+8(jj>=2), col 8i+2t+(jj&1)
                s = np.zeros((128, 64))
                for i in range(16):
                    for jj in range(4):
                        s[:, 4*i+jj] = Sm[16*w + g + 8*(jj >= 2), 8*i + 2*t + (jj & 1)]
                key0 = j*BK; tm0 = np.full(128, -1e30); tm1 = np.full(128, -1e30)
                for i in range(16):
                    for jj in range(4):
                        key = key0 + 8*i + 2*t + (jj & 1)
                        val = np.where(key < Lk, s[:, 4*i+jj]*scale, -1e30); s[:, 4*i+jj] = val
                        if jj < 2: tm0 = np.maximum(tm0, val)
                        else: tm1 = np.maximum(tm1, val)
                for m in (1, 2):
                    tm0 = np.maximum(tm0, tm0[np.arange(128) ^ m]); tm1 = np.maximum(tm1, tm1[np.arange(128) ^ m])
                n0 = np.maximum(X['m0'], tm0); n1 = np.maximum(X['m1'], tm1)
                c0 = np.exp2(X['m0'] - n0); c1 = np.exp2(X['m1'] - n1); X['m0'] = n0; X['m1'] = n1
                e = np.zeros((128, 64)); 
                for i in range(16):
                    e[:, 4*i] = np.exp2(s[:, 4*i] - n0); e[:, 4*i+1] = np.exp2(s[:, 4*i+1] - n0)
                    e[:, 4*i+2] = np.exp2(s[:, 4*i+2] - n1); e[:, 4*i+3] = np.exp2(s[:, 4*i+3] - n1)
                X['l0'] = X['l0']*c0 + e[:, 0::4].sum(1) + e[:, 1::4].sum(1)
                X['l1'] = X['l1']*c1 + e[:, 2::4].sum(1) + e[:, 3::4].sum(1)
                # p[2i] = (e[4i], e[4i+1]) row g; p[2i+1] = (e[4i+2], e[4i+3]) row g+8; pairs as (lo, hi)
                p = np.zeros((128, 32, 2))
                for i in range(16):
                    p[:, 2*i] = bf16(e[:, [4*i, 4*i+1]]); p[:, 2*i+1] = bf16(e[:, [4*i+2, 4*i+3]])
                o = X['o']
                for i in range(16):
                    o[:, 4*i] *= c0; o[:, 4*i+1] *= c0; o[:, 4*i+2] *= c1; o[:, 4*i+3] *= c1
                # O matrix from registers, += A·B per k-step, back to registers
                Om = np.zeros((64, 128))
                for i in range(16):
                    for jj in range(4):
                        Om[16*w + g + 8*(jj >= 2), 8*i + 2*t + (jj & 1)] = o[:, 4*i+jj]
                for c in range(8):
                    A = np.full((64, 16), np.nan)
                    # register-A m64k16: reg0 (g, 2t..), reg1 (g+8, 2t..), reg2 (g, 2t+8..), reg3 (g+8, 2t+8..); low half = lower k
                    for r, (dr, dk) in enumerate([(0, 0), (8, 0), (0, 8), (8, 8)]):
                        for h in range(2):
                            A[16*w + g + dr, 2*t + dk + h] = p[:, 4*c + r, h]
                    B = mnmajor(vs + c*16*128, *v_offsets)
                    Om += A @ B
                for i in range(16):
                    for jj in range(4):
                        o[:, 4*i+jj] = Om[16*w + g + 8*(jj >= 2), 8*i + 2*t + (jj & 1)]
        for wg in (0, 1):
            X = st[wg]; l0 = X['l0'].copy(); l1 = X['l1'].copy()
            for m in (1, 2): l0 = l0 + l0[np.arange(128) ^ m]; l1 = l1 + l1[np.arange(128) ^ m]
            r0 = q0 + wg*64 + w*16 + g; r1 = r0 + 8
            for i in range(16):
                d = 8*i + 2*t
                for k2 in range(2):
                    ok0 = r0 < Lq; ok1 = r1 < Lq
                    out[r0[ok0], d[ok0] + k2] = X['o'][ok0, 4*i + k2] / l0[ok0]
                    out[r1[ok1], d[ok1] + k2] = X['o'][ok1, 4*i + 2 + k2] / l1[ok1]
    return out
def rel_l2(Lq, Lk, misalign, **variant):
    rng = np.random.default_rng(Lq * 1000 + Lk)
    Q = bf16(rng.standard_normal((Lq, 128))*2); K = bf16(rng.standard_normal((Lk, 128))*2); V = bf16(rng.standard_normal((Lk, 128)))
    scale = 128**-0.5
    got = run(Q, K, V, scale*1.4426950408889634, misalign, **variant)
    S = (Q.astype(np.float64) @ K.T.astype(np.float64))*scale; P = np.exp(S - S.max(1, keepdims=True))
    ref = (P/P.sum(1, keepdims=True)) @ V
    return np.linalg.norm(np.nan_to_num(got, nan=1e6) - ref)/np.linalg.norm(ref)
ok = True
for Lq, Lk, misalign in [(200, 300, 16), (128, 128, 0), (70, 257, 528)]:  # Lq / Lk tails, 3 stages, unaligned base
    e = rel_l2(Lq, Lk, misalign); ok &= e < 5e-3
    print(f"kernel as written  Lq {Lq} Lk {Lk}: rel-L2 {e:.2e}")
for name, variant in [("V LBO/SBO swapped", dict(v_offsets=(1024, PANEL_KV))), ("unswizzled cp.async", dict(swizzled_writes=False))]:
    e = rel_l2(200, 300, 16, **variant); ok &= e > 0.1
    print(f"{name} (must fail): rel-L2 {e:.2e}")
print("OK" if ok else "MISMATCH"); raise SystemExit(0 if ok else 1)
