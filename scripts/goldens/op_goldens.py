"""Single-op goldens: PyTorch (CPU) reference outputs for the ops Kinema's
backends implement, in float32 and (for a subset) bfloat16.

Writes Tests/Fixtures/ops/ops.safetensors and Tests/Fixtures/ops/ops.json.
Tensor names are "<entry>.<role>"; ops.json lists, per entry, the op, its
parameters, which tensors are inputs (by role) and which is the output.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from _common import FIXTURES, dtype_name, randn, rel, reset_dir, save_tensors, shape_of, write_json

OUT_DIR = FIXTURES / "ops"
SEED = 3000


class OpSet:
    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.entries: list[dict] = []

    def add(self, name: str, op: str, inputs: dict[str, torch.Tensor], out: torch.Tensor,
            params: dict | None = None, torch_call: str = "", note: str | None = None,
            input_tensor_names: dict[str, str] | None = None) -> None:
        """Register one entry. `input_tensor_names` lets an entry reuse tensors
        already stored by another entry instead of storing a copy."""
        assert not any(e["name"] == name for e in self.entries), name
        in_names = {}
        for role, t in inputs.items():
            if input_tensor_names and role in input_tensor_names:
                tn = input_tensor_names[role]
                assert torch.equal(self.tensors[tn], t), (name, role)
            else:
                tn = f"{name}.{role}"
                self.put(tn, t)
            in_names[role] = tn
        out_name = f"{name}.out"
        self.put(out_name, out)
        entry = {
            "name": name,
            "op": op,
            "dtype": dtype_name(out),
            "params": params or {},
            "inputs": in_names,
            "input_shapes": {r: shape_of(self.tensors[n]) for r, n in in_names.items()},
            "output": out_name,
            "output_shape": shape_of(out),
            "torch": torch_call,
        }
        if note:
            entry["note"] = note
        self.entries.append(entry)

    def put(self, name: str, t: torch.Tensor) -> None:
        assert name not in self.tensors, name
        self.tensors[name] = t.detach().clone().contiguous()


def _bf(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16)


def norm_rows(seed: int, width: int = 37) -> torch.Tensor:
    """Rows that stress normalisation: plain, shifted+scaled, large offset with
    small spread, an exactly-constant row (0.5, exact mean), large scale, and a
    tiny scale where the variance is comparable to eps=1e-6."""
    rows = [
        randn((width,), seed + 0),
        randn((width,), seed + 1, std=3.0, mean=2.0),
        randn((width,), seed + 2, std=0.1, mean=100.0),
        torch.full((width,), 0.5),
        randn((width,), seed + 3, std=1e3),
        randn((width,), seed + 4, std=1e-3),
    ]
    return torch.stack(rows)


def activation_inputs(seed: int) -> torch.Tensor:
    parts = [
        torch.linspace(-10.0, 10.0, 401),
        torch.tensor([-100.0, -50.0, -30.0, -20.0, -15.0, 15.0, 20.0, 30.0, 50.0, 100.0, 0.0, -0.0,
                      1e-7, -1e-7, 1e-30, -1e-30]),
        randn((111,), seed, std=2.0),
    ]
    return torch.cat(parts)


def softmax_rows(seed: int, width: int = 29) -> torch.Tensor:
    rows = [
        randn((width,), seed + 0),
        randn((width,), seed + 1, std=10.0),
        randn((width,), seed + 2, std=1e4),
        randn((width,), seed + 3) + 1e4,
        randn((width,), seed + 4) - 1e4,
        torch.linspace(-3.0, 3.0, width),
    ]
    x = torch.stack(rows)
    masked = randn((width,), seed + 5)
    masked[::3] = float("-inf")
    x = torch.cat([x, masked[None]], dim=0)
    return x


def rope_diffusers_formula(x: torch.Tensor, cos_half: torch.Tensor, sin_half: torch.Tensor) -> torch.Tensor:
    """x [B, L, H, D]; cos/sin [L, D/2]. Pairs (2i, 2i+1) rotate by angle_i:
    out[2i] = x[2i]*cos_i - x[2i+1]*sin_i ; out[2i+1] = x[2i]*sin_i + x[2i+1]*cos_i."""
    x1 = x[..., 0::2]
    x2 = x[..., 1::2]
    c = cos_half[None, :, None, :]
    s = sin_half[None, :, None, :]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out


def build() -> OpSet:
    ops = OpSet()
    s = SEED

    # ---- layer_norm / rms_norm -------------------------------------------
    x = norm_rows(s + 10)
    w = randn((37,), s + 11, std=0.1, mean=1.0)
    b = randn((37,), s + 12, std=0.1)
    ops.add("layer_norm_affine", "layer_norm", {"x": x, "weight": w, "bias": b},
            F.layer_norm(x, (37,), w, b, eps=1e-6),
            {"eps": 1e-6, "normalized_shape": [37], "axis": -1},
            "F.layer_norm(x, (37,), weight, bias, eps=1e-6)",
            "row 3 is exactly constant (output == bias); row 5 has variance ~1e-6 so eps matters")
    ops.add("layer_norm_plain", "layer_norm", {"x": x}, F.layer_norm(x, (37,), None, None, eps=1e-6),
            {"eps": 1e-6, "normalized_shape": [37], "axis": -1, "affine": False},
            "F.layer_norm(x, (37,), None, None, eps=1e-6)",
            input_tensor_names={"x": "layer_norm_affine.x"})
    # torch's f32 CPU layer_norm itself is off by ~3e-5 (relative) on row 2 (mean 100, spread 0.1): its f32
    # mean/variance lose digits there. These entries give torch's float64 result rounded to f32, the
    # reference that an f32 kernel accumulating in f64 should match.
    xd, wd, bd = x.double(), w.double(), b.double()
    ops.add("layer_norm_affine_f64ref", "layer_norm", {"x": x, "weight": w, "bias": b},
            F.layer_norm(xd, (37,), wd, bd, eps=1e-6).float(),
            {"eps": 1e-6, "normalized_shape": [37], "axis": -1},
            "F.layer_norm(x.double(), (37,), weight.double(), bias.double(), eps=1e-6).float()",
            input_tensor_names={"x": "layer_norm_affine.x", "weight": "layer_norm_affine.weight",
                                "bias": "layer_norm_affine.bias"})
    ops.add("layer_norm_plain_f64ref", "layer_norm", {"x": x}, F.layer_norm(xd, (37,), None, None, eps=1e-6).float(),
            {"eps": 1e-6, "normalized_shape": [37], "axis": -1, "affine": False},
            "F.layer_norm(x.double(), (37,), None, None, eps=1e-6).float()",
            input_tensor_names={"x": "layer_norm_affine.x"})
    ops.add("rms_norm", "rms_norm", {"x": x, "weight": w}, F.rms_norm(x, (37,), w, eps=1e-6),
            {"eps": 1e-6, "normalized_shape": [37], "axis": -1},
            "F.rms_norm(x, (37,), weight, eps=1e-6)  # x * rsqrt(mean(x^2) + eps) * weight",
            input_tensor_names={"x": "layer_norm_affine.x", "weight": "layer_norm_affine.weight"})

    # ---- activations ------------------------------------------------------
    a = activation_inputs(s + 20)
    ops.add("gelu_tanh", "gelu", {"x": a}, F.gelu(a, approximate="tanh"), {"approximate": "tanh"},
            "F.gelu(x, approximate='tanh')")
    ops.add("gelu_exact", "gelu", {"x": a}, F.gelu(a), {"approximate": "none"}, "F.gelu(x)  # x*Phi(x), erf",
            input_tensor_names={"x": "gelu_tanh.x"})
    ops.add("silu", "silu", {"x": a}, F.silu(a), {}, "F.silu(x)", input_tensor_names={"x": "gelu_tanh.x"})

    # ---- softmax ----------------------------------------------------------
    sm = softmax_rows(s + 30)
    ops.add("softmax", "softmax", {"x": sm}, torch.softmax(sm, dim=-1), {"axis": -1},
            "torch.softmax(x, dim=-1)",
            "rows: N(0,1), 10*N, 1e4*N, 1e4+N, -1e4+N, linspace, and a row with -inf at every 3rd entry")

    # ---- scaled dot product attention ------------------------------------
    q = randn((2, 3, 19, 16), s + 40)
    k = randn((2, 3, 23, 16), s + 41)
    v = randn((2, 3, 23, 16), s + 42)
    ops.add("sdpa", "scaled_dot_product_attention", {"q": q, "k": k, "v": v},
            F.scaled_dot_product_attention(q, k, v),
            {"layout": "[B, H, L, D]", "scale": 1.0 / math.sqrt(16), "mask": None, "causal": False},
            "F.scaled_dot_product_attention(q, k, v)")
    qs = randn((1, 4, 48, 16), s + 43)
    ks = randn((1, 4, 48, 16), s + 44)
    vs = randn((1, 4, 48, 16), s + 45)
    ops.add("sdpa_self", "scaled_dot_product_attention", {"q": qs, "k": ks, "v": vs},
            F.scaled_dot_product_attention(qs, ks, vs),
            {"layout": "[B, H, L, D]", "scale": 0.25, "mask": None, "causal": False},
            "F.scaled_dot_product_attention(q, k, v)")
    qc = randn((1, 4, 48, 16), s + 46, std=2.5)  # peakier logits
    kc = randn((1, 4, 12, 16), s + 47, std=2.5)
    vc = randn((1, 4, 12, 16), s + 48)
    ops.add("sdpa_cross", "scaled_dot_product_attention", {"q": qc, "k": kc, "v": vc},
            F.scaled_dot_product_attention(qc, kc, vc),
            {"layout": "[B, H, L, D]", "scale": 0.25, "mask": None, "causal": False},
            "F.scaled_dot_product_attention(q, k, v)  # cross-attention shape: 48 queries, 12 keys")

    # ---- rope ---------------------------------------------------------------
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    rope = WanRotaryPosEmbed(16, (1, 2, 2), 1024)
    cos_full, sin_full = rope(torch.zeros(1, 1, 2, 12, 8))  # F=2, H=12, W=8 -> 2*6*4 = 48 tokens
    cos_half = cos_full[0, :, 0, 0::2].contiguous()
    sin_half = sin_full[0, :, 0, 1::2].contiguous()
    assert torch.equal(cos_full[0, :, 0, 0::2], cos_full[0, :, 0, 1::2])
    xr = randn((2, 48, 3, 16), s + 50)
    out_r = rope_diffusers_formula(xr, cos_half, sin_half)
    ang = torch.atan2(sin_half.double(), cos_half.double())
    ref_c = torch.view_as_real(
        torch.view_as_complex(xr.double().reshape(2, 48, 3, 8, 2)) * torch.polar(torch.ones_like(ang), ang)[None, :, None, :]
    ).reshape(2, 48, 3, 16)
    assert (ref_c.float() - out_r).abs().max().item() < 1e-5
    ops.add("rope", "rope_interleaved", {"x": xr, "cos": cos_half, "sin": sin_half}, out_r,
            {"layout": "x [B, L, H, D]; cos/sin [L, D/2]", "pairs": "(x[2i], x[2i+1]) rotated by angle i",
             "source_of_cos_sin": "diffusers WanRotaryPosEmbed(head_dim=16, patch (1,2,2)) on a latent F=2,H=12,W=8 "
                                  "(tokens (f,h,w) row-major, 2x6x4); cos = out[0][0,:,0,0::2], sin = out[1][0,:,0,1::2]"},
            "out[...,0::2] = x1*cos - x2*sin; out[...,1::2] = x1*sin + x2*cos  (x1 = x[...,0::2], x2 = x[...,1::2]); "
            "the same elementwise formula as diffusers' WanAttnProcessor.apply_rotary_emb")

    # The real-size RoPE table (head_dim 128, as in Wan2.1 1.3B/14B) at a few
    # positions, exactly as diffusers computes it (float64 angles -> float32).
    big = WanRotaryPosEmbed(128, (1, 2, 2), 1024)
    pos = torch.tensor([0, 1, 2, 3, 7, 20, 31, 59, 63, 104, 127, 255, 511, 777, 1000, 1023], dtype=torch.int64)
    ops.put("rope_table_hd128.positions", pos)
    ops.put("rope_table_hd128.cos", big.freqs_cos[pos].float())
    ops.put("rope_table_hd128.sin", big.freqs_sin[pos].float())
    ops.entries.append({
        "name": "rope_table_hd128",
        "op": "rope_table",
        "dtype": "F32",
        "params": {"head_dim": 128, "theta": 10000.0, "axis_dims_t_h_w": [44, 42, 42], "max_seq_len": 1024},
        "inputs": {"positions": "rope_table_hd128.positions"},
        "input_shapes": {"positions": shape_of(pos)},
        "outputs": {"cos": "rope_table_hd128.cos", "sin": "rope_table_hd128.sin"},
        "output_shape": shape_of(ops.tensors["rope_table_hd128.cos"]),
        "torch": "WanRotaryPosEmbed(128, (1,2,2), 1024).freqs_{cos,sin}[positions]",
        "note": "row r: columns [0,44) use the t ladder 1/1e4^(arange(0,44,2)/44), [44,86) and [86,128) the h/w ladder "
                "1/1e4^(arange(0,42,2)/42), each angle (position*freq, computed in float64) repeated twice "
                "(repeat_interleave), then cast to float32. Every column block uses the same position r.",
    })

    # ---- conv3d -------------------------------------------------------------
    xc = randn((1, 5, 3, 6, 8), s + 60)
    wc = randn((7, 5, 1, 2, 2), s + 61, std=0.3)
    bc = randn((7,), s + 62, std=0.1)
    ops.add("conv3d_patch", "conv3d", {"x": xc, "weight": wc, "bias": bc},
            F.conv3d(xc, wc, bc, stride=(1, 2, 2)),
            {"stride": [1, 2, 2], "padding": [0, 0, 0], "dilation": [1, 1, 1], "groups": 1,
             "layout": "x [N, C, D, H, W], weight [O, C, kD, kH, kW]"},
            "F.conv3d(x, weight, bias, stride=(1,2,2))")
    wk = randn((4, 5, 3, 3, 3), s + 63, std=0.15)
    bk = randn((4,), s + 64, std=0.1)
    ops.add("conv3d_k3", "conv3d", {"x": xc, "weight": wk, "bias": bk},
            F.conv3d(xc, wk, bk, stride=1, padding=1),
            {"stride": [1, 1, 1], "padding": [1, 1, 1], "dilation": [1, 1, 1], "groups": 1,
             "layout": "x [N, C, D, H, W], weight [O, C, kD, kH, kW]", "padding_mode": "zeros"},
            "F.conv3d(x, weight, bias, stride=1, padding=1)",
            input_tensor_names={"x": "conv3d_patch.x"})

    # ---- matmul / linear ----------------------------------------------------
    ma = randn((2, 1, 5, 7), s + 70)
    mb = randn((3, 7, 4), s + 71)
    ops.add("matmul_broadcast", "matmul", {"a": ma, "b": mb}, torch.matmul(ma, mb),
            {"broadcast": "[2,1,5,7] @ [3,7,4] -> [2,3,5,4]"}, "torch.matmul(a, b)")
    lx = randn((3, 5, 24), s + 72)
    lw = randn((17, 24), s + 73, std=0.2)
    lb = randn((17,), s + 74, std=0.1)
    ops.add("linear", "linear", {"x": lx, "weight": lw, "bias": lb}, F.linear(lx, lw, lb),
            {"weight_layout": "[out, in]"}, "F.linear(x, weight, bias)  # x @ weight.T + bias")

    # ---- reductions -----------------------------------------------------------
    rx = randn((3, 4, 5), s + 80)
    ops.add("sum_axis1", "sum", {"x": rx}, rx.sum(dim=1), {"axes": [1], "keepdim": False}, "x.sum(dim=1)")
    ops.add("mean_axes02", "mean", {"x": rx}, rx.mean(dim=(0, 2)), {"axes": [0, 2], "keepdim": False},
            "x.mean(dim=(0, 2))", input_tensor_names={"x": "sum_axis1.x"})
    ops.add("mean_last_keepdim", "mean", {"x": rx}, rx.mean(dim=-1, keepdim=True), {"axes": [-1], "keepdim": True},
            "x.mean(dim=-1, keepdim=True)", input_tensor_names={"x": "sum_axis1.x"})
    ops.add("sum_all", "sum", {"x": rx}, rx.sum(), {"axes": "all", "keepdim": False},
            "x.sum()  # 0-d tensor", input_tensor_names={"x": "sum_axis1.x"})

    # ---- concat -----------------------------------------------------------------
    ca = randn((2, 3, 4), s + 90)
    cb = randn((2, 5, 4), s + 91)
    ops.add("concat_axis1", "concat", {"a": ca, "b": cb}, torch.cat([ca, cb], dim=1), {"axis": 1},
            "torch.cat([a, b], dim=1)")
    cc = randn((2, 3, 6), s + 92)
    ops.add("concat_last", "concat", {"a": ca, "b": cc}, torch.cat([ca, cc], dim=-1), {"axis": -1},
            "torch.cat([a, b], dim=-1)", input_tensor_names={"a": "concat_axis1.a"})

    # ---- bf16 variants (inputs cast to bf16, op run by torch in bf16 on CPU) ----
    def bf16_entry(src: str, name: str, fn, extra_note: str = ""):
        e = next(e for e in ops.entries if e["name"] == src)
        ins = {r: _bf(ops.tensors[n]) for r, n in e["inputs"].items()}
        out = fn(**ins)
        assert out.dtype == torch.bfloat16
        ops.add(name, e["op"], ins, out, dict(e["params"]), e["torch"] + "  # all tensors bf16",
                ("inputs are the f32 inputs of '" + src + "' cast with .to(torch.bfloat16); output computed by torch "
                 "CPU in bf16 (torch may accumulate internally in f32) " + extra_note).strip())

    bf16_entry("layer_norm_affine", "layer_norm_affine_bf16",
               lambda x, weight, bias: F.layer_norm(x, (37,), weight, bias, eps=1e-6))
    bf16_entry("rms_norm", "rms_norm_bf16", lambda x, weight: F.rms_norm(x, (37,), weight, eps=1e-6))
    bf16_entry("gelu_tanh", "gelu_tanh_bf16", lambda x: F.gelu(x, approximate="tanh"))
    bf16_entry("silu", "silu_bf16", lambda x: F.silu(x))
    bf16_entry("softmax", "softmax_bf16", lambda x: torch.softmax(x, dim=-1))
    bf16_entry("sdpa", "sdpa_bf16", lambda q, k, v: F.scaled_dot_product_attention(q, k, v))
    bf16_entry("linear", "linear_bf16", lambda x, weight, bias: F.linear(x, weight, bias))
    bf16_entry("matmul_broadcast", "matmul_broadcast_bf16", lambda a, b: torch.matmul(a, b))
    return ops


def run(versions: dict) -> list[str]:
    t0 = time.time()
    reset_dir(OUT_DIR)
    ops = build()
    for e in ops.entries:
        for n in list(e["inputs"].values()) + [e.get("output")] + list(e.get("outputs", {}).values()):
            if n is not None:
                assert n in ops.tensors, n
    save_tensors(OUT_DIR / "ops.safetensors", ops.tensors,
                 metadata={"producer": "scripts/goldens/make_goldens.py (op_goldens.py)"})
    write_json(OUT_DIR / "ops.json", {
        "producer": "scripts/goldens/make_goldens.py (op_goldens.py)",
        "versions": versions,
        "seed": SEED,
        "file": "ops.safetensors",
        "naming": "tensors are '<entry>.<role>'; an entry may reference another entry's input tensor by name",
        "entries": ops.entries,
    })
    return [f"ops: {len(ops.entries)} entries, {len(ops.tensors)} tensors, {time.time() - t0:.1f}s -> {rel(OUT_DIR)}"]
