"""dtype-conversion goldens: an f32 `input` of edge-case values and torch's
conversions of it to bf16 / f16 / float8_e4m3fn / float8_e5m2.

Writes Tests/Fixtures/convert/convert.safetensors and convert.json.
"""

from __future__ import annotations

import time

import torch

from _common import FIXTURES, dtype_name, randn, rel, reset_dir, save_tensors, shape_of, write_json

OUT_DIR = FIXTURES / "convert"
SEED = 4000


def _f32_bits(bits: list[int]) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32)


def _all_finite_positive(dtype: torch.dtype) -> torch.Tensor:
    """Every finite, strictly positive value of a narrow float format, ascending (as f64)."""
    n = 256 if dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else 65536
    if n == 256:
        codes = torch.arange(n, dtype=torch.int64).to(torch.uint8).view(dtype)
    else:
        codes = torch.arange(n, dtype=torch.int64).to(torch.int16).view(dtype)
    v = codes.to(torch.float64)
    v = v[torch.isfinite(v) & (v > 0)]
    return torch.unique(v)  # sorted


def _next_up(x: torch.Tensor) -> torch.Tensor:
    return torch.nextafter(x, torch.full_like(x, float("inf")))


def _next_down(x: torch.Tensor) -> torch.Tensor:
    return torch.nextafter(x, torch.full_like(x, float("-inf")))


def _ties_around(vals: torch.Tensor, idx: list[int], neg_every: int = 3) -> torch.Tensor:
    """For chosen indices i: the value vals[i], the tie (vals[i]+vals[i+1])/2
    (exactly representable in f32 for all formats here) and the two f32
    neighbours of the tie. Every `neg_every`-th index is also added negated."""
    pos, neg = [], []
    for j, i in enumerate(idx):
        pts = [vals[i].item()]
        if i + 1 < len(vals):
            pts.append(((vals[i] + vals[i + 1]) / 2).item())
        t = torch.tensor(pts, dtype=torch.float64).to(torch.float32)
        assert torch.equal(t.double(), torch.tensor(pts, dtype=torch.float64)), "tie not exact in f32"
        block = t if len(pts) == 1 else torch.cat([t, _next_up(t[1:]), _next_down(t[1:])])
        pos.append(block)
        if j % neg_every == 0:
            neg.append(-block)
    return torch.cat(pos + neg)


def build_input() -> tuple[torch.Tensor, dict]:
    groups: dict[str, torch.Tensor] = {}

    # --- float8 e4m3fn: every positive finite value, every tie, +-1 f32 ulp -----
    e4 = _all_finite_positive(torch.float8_e4m3fn)
    assert len(e4) == 126 and e4[-1] == 448.0 and e4[0] == 2.0 ** -9
    groups["e4m3_grid"] = _ties_around(e4, list(range(len(e4))))
    groups["e4m3_edges"] = torch.tensor([
        2.0 ** -10, 2.0 ** -11, 3 * 2.0 ** -11, 2.0 ** -6, 2.0 ** -6 - 2.0 ** -10,  # tiny / min normal
        448.0, 449.0, 455.0, 456.0, 457.0, 460.0, 463.0, 463.99997, 464.0, 464.00003, 465.0,
        470.0, 472.0, 479.0, 480.0, 481.0, 496.0, 511.0, 512.0, 1000.0, 1e6, 3.0e38,
    ], dtype=torch.float32)

    # --- float8 e5m2 -------------------------------------------------------------
    e5 = _all_finite_positive(torch.float8_e5m2)
    assert len(e5) == 123 and e5[-1] == 57344.0 and e5[0] == 2.0 ** -16
    groups["e5m2_grid"] = _ties_around(e5, list(range(len(e5))))
    groups["e5m2_edges"] = torch.tensor([
        2.0 ** -17, 2.0 ** -18, 3 * 2.0 ** -18, 2.0 ** -14,
        57344.0, 57345.0, 59392.0, 61439.0, 61439.996, 61440.0, 61440.004, 61441.0, 63488.0,
        65535.0, 65536.0, 65537.0, 1e5, 1e6, 3.0e38,
    ], dtype=torch.float32)

    # --- float16: subnormals, min normal, integer ties, near max ----------------
    f16 = _all_finite_positive(torch.float16)
    assert len(f16) == 31743 and f16[-1] == 65504.0 and f16[0] == 2.0 ** -24
    pick = set(range(0, 12)) | set(range(1015, 1030))  # smallest subnormals, subnormal->normal
    pick |= {int(torch.searchsorted(f16, torch.tensor(v, dtype=torch.float64)).item())
             for v in [1.0, 2.0, 0.5, 1.5, 1024.0, 2048.0, 3.14159, 1000.0, 4096.0]}
    pick |= set(range(len(f16) - 6, len(f16)))
    groups["f16_grid"] = _ties_around(f16, sorted(pick))
    groups["f16_edges"] = torch.tensor([
        2.0 ** -25, 2.0 ** -26, 3 * 2.0 ** -25, 2.0 ** -14,
        2049.0, 2051.0, 2050.0, 4097.0, 4099.0,
        65504.0, 65505.0, 65519.0, 65519.996, 65520.0, 65520.004, 65521.0, 65535.0, 65536.0, 1e5, 3.0e38,
    ], dtype=torch.float32)

    # --- bfloat16: ties are f32 values with low 16 bits == 0x8000 ---------------
    bf_bits = []
    for hi in [0x3F80, 0x3F81, 0x3F82, 0x3F83, 0x4049, 0xBF80, 0xBF81, 0x4000, 0x3E9A, 0xC2C8,
               0x0000, 0x0001, 0x0002, 0x007F, 0x0080, 0x0081,  # f32 subnormals / min normal
               0x7F7E, 0x7F7F, 0xFF7F]:                          # near bf16 max
        for lo in [0x0000, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x4000, 0xC000]:
            bf_bits.append((hi << 16) | lo)
    groups["bf16_bits"] = _f32_bits(bf_bits)
    groups["bf16_edges"] = torch.tensor([
        3.3895314e38, 3.3961775e38, 3.4028235e38, 1.1754944e-38, 9.18355e-41, 1e-45,
    ], dtype=torch.float32)

    # --- specials ------------------------------------------------------------------
    groups["specials"] = torch.cat([
        torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan")], dtype=torch.float32),
        # -NaN, a signalling NaN and a NaN with payload (quiet), as raw f32 bits
        _f32_bits([0xFFC00000, 0x7F800001, 0x7FA00000, 0x7FC00001]),
        _f32_bits([0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF]),
    ])

    # --- random normals at several scales ------------------------------------------
    rnd = []
    for j, scale in enumerate([1e-6, 1e-3, 0.05, 1.0, 30.0, 300.0, 1e4, 1e5]):
        rnd.append(randn((30,), SEED + j, std=scale))
    groups["random"] = torch.cat(rnd)

    parts = []
    layout = {}
    offset = 0
    for name, g in groups.items():
        g = g.to(torch.float32)
        both = g if name.endswith("_grid") or name in ("specials", "random", "bf16_bits") else torch.cat([g, -g])
        parts.append(both)
        layout[name] = [offset, offset + both.numel()]
        offset += both.numel()
    x = torch.cat(parts).contiguous()
    return x, layout


def run(versions: dict) -> list[str]:
    t0 = time.time()
    reset_dir(OUT_DIR)
    x, layout = build_input()
    out = {
        "input": x,
        "bf16": x.to(torch.bfloat16),
        "f16": x.to(torch.float16),
        "f8e4m3": x.to(torch.float8_e4m3fn),
        "f8e5m2": x.to(torch.float8_e5m2),
        "f8e4m3_saturated": x.clamp(-448.0, 448.0).to(torch.float8_e4m3fn),
    }
    assert torch.isnan(x.clamp(-448.0, 448.0)).equal(torch.isnan(x))
    # The vectorised conversion must agree with the scalar one element by element.
    for k, dt in (("bf16", torch.bfloat16), ("f16", torch.float16),
                  ("f8e4m3", torch.float8_e4m3fn), ("f8e5m2", torch.float8_e5m2)):
        single = torch.stack([x[i:i + 1].to(dt)[0] for i in range(x.numel())])
        w = torch.uint8 if single.element_size() == 1 else torch.int16
        assert torch.equal(single.view(w), out[k].view(w)), k
    save_tensors(OUT_DIR / "convert.safetensors", out,
                 metadata={"producer": "scripts/goldens/make_goldens.py (convert_goldens.py)"})

    # Observed behaviour worth writing down (read back from the results).
    def conv(v, dt):
        return torch.tensor([v], dtype=torch.float32).to(dt).float().item()

    observed = {
        "e4m3fn(447.99997)": conv(447.99997, torch.float8_e4m3fn),
        "e4m3fn(463.99997)": conv(463.99997, torch.float8_e4m3fn),
        "e4m3fn(464)": conv(464.0, torch.float8_e4m3fn),
        "e4m3fn(inf)": conv(float("inf"), torch.float8_e4m3fn),
        "e4m3fn(1e6)": conv(1e6, torch.float8_e4m3fn),
        "e5m2(61439.996)": conv(61439.996, torch.float8_e5m2),
        "e5m2(61440)": conv(61440.0, torch.float8_e5m2),
        "f16(65519.996)": conv(65519.996, torch.float16),
        "f16(65520)": conv(65520.0, torch.float16),
        "bf16(0x7F7F8000)": _f32_bits([0x7F7F8000]).to(torch.bfloat16).float().item(),
        "bf16(0x7F7F7FFF)": _f32_bits([0x7F7F7FFF]).to(torch.bfloat16).float().item(),
    }
    nan_bits = {
        k: sorted({int(b) for b in out[k][torch.isnan(x)].view(torch.uint8 if out[k].element_size() == 1 else torch.int16)
                   .to(torch.int64).bitwise_and(0xFF if out[k].element_size() == 1 else 0xFFFF).tolist()})
        for k in ("bf16", "f16", "f8e4m3", "f8e5m2", "f8e4m3_saturated")
    }
    write_json(OUT_DIR / "convert.json", {
        "producer": "scripts/goldens/make_goldens.py (convert_goldens.py)",
        "versions": versions,
        "seed": SEED,
        "file": "convert.safetensors",
        "tensors": {k: {"dtype": dtype_name(v), "shape": shape_of(v), "torch": expr} for (k, v), expr in zip(out.items(), [
            "f32 edge-case values (see groups)",
            "input.to(torch.bfloat16)",
            "input.to(torch.float16)",
            "input.to(torch.float8_e4m3fn)",
            "input.to(torch.float8_e5m2)",
            "input.clamp(-448, 448).to(torch.float8_e4m3fn)  (NaN stays NaN)",
        ])},
        "groups": {k: {"range": v, "description": d} for (k, v), d in zip(layout.items(), [
            "every positive finite e4m3fn value v_i, the tie (v_i+v_{i+1})/2 and the tie's two f32 neighbours (nextafter up/down); every 3rd block is repeated negated at the end of the group",
            "e4m3fn edge values: half/1.5x the min subnormal, min normal, 448..512 incl. the 464 midpoint, beyond range; then negated",
            "every positive finite e5m2 value, ties and the ties' f32 neighbours; every 3rd block repeated negated",
            "e5m2 edges: subnormal ties, max 57344, 61440 midpoint to 65536, beyond range; then negated",
            "float16 values near 0 (subnormals), the subnormal/normal boundary, a few mid-range values and the top of the range, with ties and the ties' f32 neighbours; every 3rd block repeated negated",
            "float16 edges: subnormal ties, integer ties above 2048, 65504..65536 incl. the 65520 midpoint; then negated",
            "f32 bit patterns hi<<16|lo for several hi (incl. f32 subnormals and bf16 max) and lo in {0, 0x7FFF, 0x8000 (tie), 0x8001, 0xFFFF, 0x4000, 0xC000}",
            "bf16 edges: near f32/bf16 max, f32 min normal, subnormals; then negated",
            "+0, -0, +inf, -inf, NaN, -NaN (0xFFC00000), sNaN 0x7F800001, 0x7FA00000, 0x7FC00001, and f32 extreme finite bit patterns",
            "30 normals each at std 1e-6, 1e-3, 0.05, 1, 30, 300, 1e4, 1e5",
        ])},
        "observed": observed,
        "nan_output_bit_patterns": nan_bits,
        "notes": [
            "torch converts with round-to-nearest-even.",
            "NaN inputs: tests should require the output to be a NaN of the target format; the stored bit patterns are torch's choice (listed in nan_output_bit_patterns).",
            "float8_e4m3fn has no infinity. torch 2.15's fp8e4m3fn_from_fp32_value SATURATES: finite values >= 480 and +-inf "
            "give +-448 (0x7E/0xFE), and a rounding carry into the NaN pattern 0x7F (inputs in [464, 480)) is also clamped to 448; "
            "only NaN inputs give NaN (0x7F/0xFF). Hence f8e4m3 == f8e4m3_saturated bit for bit here. Older torch versions "
            "produced NaN for these inputs.",
            "float8_e5m2 overflows to +-inf: inputs >= 61440 (the midpoint between max 57344 and 65536) become +-inf.",
            "f16 overflows to +-inf from 65520 (midpoint above 65504); bf16 from 0x7F7F8000.",
        ],
    })
    return [f"convert: {x.numel()} values, {time.time() - t0:.1f}s -> {rel(OUT_DIR)}"]
