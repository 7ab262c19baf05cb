"""Wan2.1 VAE goldens: a tiny AutoencoderKLWan with seeded random weights, run
through diffusers on CPU in float32 (chunked encode / decode with the feature
cache, exactly as `AutoencoderKLWan.encode` / `.decode` do), with per-stage taps
captured by forward hooks and concatenated over chunks along time.

Writes under Tests/Fixtures/wan_vae/:
  diffusers/config.json, diffusers/diffusion_pytorch_model.safetensors
  wan/Wan2.1_VAE.safetensors   (original Wan key names, same tensors)
  io.safetensors               (inputs, taps, outputs)
  manifest.json

Weights are rounded to bf16-representable values and stored as BF16: the f32
model holds exactly those values, so the files are half the size and an f32
load of either file reproduces the reference model bit for bit.
"""

from __future__ import annotations

import math
import re

import torch

from _common import FIXTURES, name_seed, randn, rel, reset_dir, save_tensors, shape_of, write_json

OUT_DIR = FIXTURES / "wan_vae"

# dim_mult [1, 2, 4, 4] and num_res_blocks 2 are the real Wan2.1 structure; diffusers'
# convert_wan_vae_to_diffusers hard-codes the decoder block indices and the one decoder
# shortcut (upsamples.4) of that structure, so only the widths are shrunk.
CONFIG = dict(
    base_dim=4,
    z_dim=4,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
    latents_mean=[-0.7571, 0.1075, 0.9653, -0.2921],
    latents_std=[2.8184, 1.2196, 0.4134 + 1.0, 1.9160],
)
WEIGHT_SEED = 3001
INPUT_SEED = 4001

# (diffusers regex, Wan replacement). Each diffusers key must match exactly one rule.
# Decoder up_blocks.i.resnets.j / upsamplers.0 are flattened into upsamples.k with
# k = i*(num_res_blocks+2) + j (upsampler: j = num_res_blocks+1); see _decoder_index.
_RES = [
    (r"norm1\.gamma", "residual.0.gamma"),
    (r"conv1\.(?P<wb>weight|bias)", r"residual.2.\g<wb>"),
    (r"norm2\.gamma", "residual.3.gamma"),
    (r"conv2\.(?P<wb>weight|bias)", r"residual.6.\g<wb>"),
    (r"conv_shortcut\.(?P<wb>weight|bias)", r"shortcut.\g<wb>"),
]
KEY_RULES: list[tuple[str, str]] = (
    [
        (r"^quant_conv\.(weight|bias)$", r"conv1.\1"),
        (r"^post_quant_conv\.(weight|bias)$", r"conv2.\1"),
        (r"^(encoder|decoder)\.conv_in\.(weight|bias)$", r"\1.conv1.\2"),
        (r"^(encoder|decoder)\.norm_out\.gamma$", r"\1.head.0.gamma"),
        (r"^(encoder|decoder)\.conv_out\.(weight|bias)$", r"\1.head.2.\2"),
        (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(norm\.gamma|to_qkv\.weight|to_qkv\.bias|proj\.weight|proj\.bias)$",
         r"\1.middle.1.\2"),
        (r"^encoder\.down_blocks\.(\d+)\.(resample\.1\.(?:weight|bias)|time_conv\.(?:weight|bias))$",
         r"encoder.downsamples.\1.\2"),
        (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(resample\.1\.(?:weight|bias)|time_conv\.(?:weight|bias))$",
         r"decoder.upsamples.<UP\1>.\2"),
    ]
    + [(rf"^(encoder|decoder)\.mid_block\.resnets\.0\.{a}$", rf"\1.middle.0.{b}") for a, b in _RES]
    + [(rf"^(encoder|decoder)\.mid_block\.resnets\.1\.{a}$", rf"\1.middle.2.{b}") for a, b in _RES]
    + [(rf"^encoder\.down_blocks\.(\d+)\.{a}$", rf"encoder.downsamples.\1.{b}") for a, b in _RES]
    + [(rf"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.{a}$", rf"decoder.upsamples.<RES\1.\2>.{b}") for a, b in _RES]
)
_COMPILED = [(re.compile(p), r) for p, r in KEY_RULES]


def _decoder_index(match: re.Match, nrb: int) -> str:
    tag = match.group(1)
    if tag.startswith("UP"):
        return str(int(tag[2:]) * (nrb + 2) + nrb + 1)
    stage, res = tag[3:].split(".")
    return str(int(stage) * (nrb + 2) + int(res))


def diffusers_to_wan_key(key: str, nrb: int) -> str:
    hits = [(rx, r) for rx, r in _COMPILED if rx.match(key)]
    if len(hits) != 1:
        raise KeyError(f"{key}: matched {len(hits)} mapping rules (need exactly 1)")
    rx, r = hits[0]
    out = rx.sub(r, key)
    return re.sub(r"<([A-Z]+[\d.]+)>", lambda m: _decoder_index(m, nrb), out)


def diffusers_to_wan_state_dict(sd: dict, nrb: int) -> dict:
    out = {}
    for k, v in sd.items():
        nk = diffusers_to_wan_key(k, nrb)
        if nk in out:
            raise KeyError(f"two diffusers keys map to {nk}")
        out[nk] = v
    assert len(out) == len(sd)
    return out


def reinit_weights(model: torch.nn.Module, seed: int) -> dict:
    """Seeded noise for every parameter, rounded to bf16-representable values.

    - RMS-norm gammas: 1 + 0.1 * N(0, 1)
    - biases: 0.05 * N(0, 1)
    - other weights: N(0, s^2), s = 1.2 / sqrt(fan_in) (keeps activations O(1) through
      the RMS-normed residual stack); the decoder's conv_out gets s = 0.5 / sqrt(fan_in)
      so that few output values reach the final clamp at +-1.
    """
    rules = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            s = name_seed(seed, name)
            shape = tuple(p.shape)
            if name.endswith(".gamma"):
                new, rule = randn(shape, s, std=0.1, mean=1.0), "gamma: 1+0.1*N"
            elif name.endswith(".bias"):
                new, rule = randn(shape, s, std=0.05), "bias: 0.05*N"
            else:
                fan_in = int(math.prod(shape[1:]))
                gain = 0.5 if name == "decoder.conv_out.weight" else 1.2
                std = gain / math.sqrt(fan_in)
                new, rule = randn(shape, s, std=std), f"weight: {std:.6g}*N (fan_in {fan_in})"
            p.copy_(new.bfloat16().float())
            rules[name] = rule + ", rounded to bf16"
            assert torch.count_nonzero(p) == p.numel(), name
    return rules


TAP_DOCS = {
    "enc.conv_in": "encoder.conv_in output, chunks (1 frame, then 4-frame chunks) concatenated along time [B, base, T, H, W]",
    "enc.down_blocks": "output of the last encoder down block, chunks concatenated [B, 4*base, T_lat, h, w]",
    "enc.mid_block": "encoder.mid_block output, chunks concatenated [B, 4*base, T_lat, h, w]",
    "enc.out": "encoder output (head: norm_out, SiLU, conv_out), chunks concatenated [B, 2z, T_lat, h, w]",
    "enc.moments": "quant_conv(enc.out): [mu | logvar] [B, 2z, T_lat, h, w]",
    "enc.mu": "latent_dist.mode() = mu (what the I2V pipeline uses, sample_mode='argmax') [B, z, T_lat, h, w]",
    "latents": "normalized latents (mu - latents_mean) * (1 / latents_std), as WanImageToVideoPipeline.prepare_latents",
    "dec.latents_raw": "de-normalized latents z / (1 / latents_std) + latents_mean, as WanPipeline before vae.decode",
    "dec.conv_in": "decoder.conv_in output, one chunk per latent frame, concatenated [B, 4*base, T_lat, h, w]",
    "dec.mid_block": "decoder.mid_block output, chunks concatenated [B, 4*base, T_lat, h, w]",
    "dec.up_blocks.{i}": "decoder.up_blocks[i] output, chunks concatenated (the first chunk is never doubled in time)",
    "dec.out": "decoder output before the clamp, chunks concatenated [B, 3, 1+4(T_lat-1), 8h, 8w]",
    "sample": "AutoencoderKLWan.decode(...).sample: clamp(dec.out, -1, 1)",
}


def run_encode(vae, video, mean, inv_std):
    from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents

    taps: dict[str, list] = {}
    handles = []

    def hook(name):
        return lambda m, a, o: taps.setdefault(name, []).append(o.detach().clone())

    enc = vae.encoder
    handles.append(enc.conv_in.register_forward_hook(hook("enc.conv_in")))
    handles.append(enc.down_blocks[-1].register_forward_hook(hook("enc.down_blocks")))
    handles.append(enc.mid_block.register_forward_hook(hook("enc.mid_block")))
    handles.append(enc.register_forward_hook(hook("enc.out")))
    handles.append(vae.quant_conv.register_forward_hook(hook("enc.moments")))
    try:
        with torch.no_grad():
            mu = retrieve_latents(vae.encode(video), sample_mode="argmax")
    finally:
        for h in handles:
            h.remove()
    out = {k: torch.cat(v, dim=2) for k, v in taps.items()}
    assert len(taps["enc.moments"]) == 1
    out["enc.mu"] = mu.clone()
    assert torch.equal(mu, out["enc.moments"][:, : CONFIG["z_dim"]])
    out["latents"] = (mu - mean) * inv_std
    return out


def run_decode(vae, latents, mean, inv_std):
    taps: dict[str, list] = {}
    handles = []

    def hook(name):
        return lambda m, a, o: taps.setdefault(name, []).append(o.detach().clone())

    dec = vae.decoder
    handles.append(dec.conv_in.register_forward_hook(hook("dec.conv_in")))
    handles.append(dec.mid_block.register_forward_hook(hook("dec.mid_block")))
    for i, blk in enumerate(dec.up_blocks):
        handles.append(blk.register_forward_hook(hook(f"dec.up_blocks.{i}")))
    handles.append(dec.register_forward_hook(hook("dec.out")))
    raw = latents / inv_std + mean
    try:
        with torch.no_grad():
            sample = vae.decode(raw).sample
    finally:
        for h in handles:
            h.remove()
    assert len(taps["dec.out"]) == latents.shape[2]
    out = {k: torch.cat(v, dim=2) for k, v in taps.items()}
    out["dec.latents_raw"] = raw
    out["sample"] = sample.clone()
    assert torch.equal(sample, out["dec.out"].clamp(-1, 1))
    return out


def write_real_key_shapes() -> None:
    """Key names and shapes of the full-size Wan2.1 VAE (AutoencoderKLWan defaults) in both layouts, so the
    Swift side can check that its module tree consumes exactly the real checkpoint's tensors (no weights
    are stored: the test feeds stride-0 placeholders of these shapes)."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    with torch.device("meta"):
        real = AutoencoderKLWan()
    shapes = {k: shape_of(v) for k, v in real.state_dict().items()}
    wan = diffusers_to_wan_state_dict({k: torch.empty(0) for k in shapes}, real.config.num_res_blocks)
    to_wan = {k: diffusers_to_wan_key(k, real.config.num_res_blocks) for k in shapes}
    back = convert_wan_vae_to_diffusers({w: d for d, w in to_wan.items()})
    assert back == {d: d for d in shapes}, "diffusers' converter disagrees with the rename on the real model"
    assert len(wan) == len(shapes)
    write_json(OUT_DIR / "real_wan21_keys.json", {
        "description": "Wan2.1 VAE (AutoencoderKLWan() defaults): tensor shapes by name in both layouts",
        "diffusers": shapes,
        "wan": {to_wan[k]: v for k, v in shapes.items()},
    })


def run(versions: dict) -> list[str]:
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
    from safetensors.torch import load_file

    reset_dir(OUT_DIR)
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**CONFIG).eval()
    init_rules = reinit_weights(vae, WEIGHT_SEED)
    sd = {k: v.detach().clone().contiguous() for k, v in vae.state_dict().items()}
    assert set(sd) == {n for n, _ in vae.named_parameters()}
    bf = {k: v.bfloat16() for k, v in sd.items()}
    assert all(torch.equal(bf[k].float(), sd[k]) for k in sd), "weights must be bf16-representable"

    ddir = OUT_DIR / "diffusers"
    vae.save_config(str(ddir))
    save_tensors(ddir / "diffusion_pytorch_model.safetensors", bf, metadata={"format": "pt"})

    nrb = CONFIG["num_res_blocks"]
    wsd = diffusers_to_wan_state_dict(bf, nrb)
    save_tensors(OUT_DIR / "wan" / "Wan2.1_VAE.safetensors", wsd, metadata={"format": "pt"})

    # diffusers' own original -> diffusers converter must give back exactly our state dict.
    back = convert_wan_vae_to_diffusers({k: v.clone() for k, v in wsd.items()})
    assert set(back) == set(bf), sorted(set(back) ^ set(bf))
    for k in bf:
        assert torch.equal(back[k], bf[k]), k

    # The written diffusers folder reloads into a bit-identical model.
    reloaded = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(str(ddir))).eval()
    loaded = {k: v.float() for k, v in load_file(str(ddir / "diffusion_pytorch_model.safetensors")).items()}
    reloaded.load_state_dict(loaded, strict=True)

    z = CONFIG["z_dim"]
    mean = torch.tensor(CONFIG["latents_mean"]).view(1, z, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(CONFIG["latents_std"]).view(1, z, 1, 1, 1)

    io: dict[str, torch.Tensor] = {}
    cases = {
        # 9 frames -> 3 latent frames; 13 frames, non-square -> 4 latent frames.
        "v9": (1, 3, 9, 16, 16),
        "v13": (1, 3, 13, 16, 24),
    }
    checks = {}
    for ci, (name, shape) in enumerate(cases.items()):
        video = torch.rand(*shape, generator=torch.Generator().manual_seed(INPUT_SEED + ci)) * 2 - 1
        io[f"{name}.video"] = video
        enc = run_encode(vae, video, mean, inv_std)
        enc2 = run_encode(reloaded, video, mean, inv_std)
        assert torch.equal(enc["latents"], enc2["latents"])
        for k, v in enc.items():
            io[f"{name}.{k}"] = v
        lat_shape = (1, z, 1 + (shape[2] - 1) // 4, shape[3] // 8, shape[4] // 8)
        assert tuple(enc["latents"].shape) == lat_shape, enc["latents"].shape
        # Decode independent normal latents of the same shape (the DiT's output domain).
        zin = randn(lat_shape, INPUT_SEED + 100 + ci)
        io[f"{name}.dec.latents"] = zin
        dec = run_decode(vae, zin, mean, inv_std)
        for k, v in dec.items():
            io[f"{name}.{k}"] = v
        s = dec["sample"]
        clamped = float(((s.abs() == 1.0).sum() / s.numel()).item())
        assert clamped < 0.2, f"{name}: {clamped:.2%} of the output sits on the clamp"
        assert s.std() > 0.05
        checks[name] = {"clamped_fraction": clamped, "sample_std": float(s.std()), "latent_std": float(enc["latents"].std())}

    # Size budget: the 13-frame case keeps only its small taps and the final output.
    for k in ["v13.enc.conv_in", "v13.dec.out", "v13.dec.up_blocks.1", "v13.dec.up_blocks.2",
              "v13.dec.up_blocks.3", "v9.dec.up_blocks.3"]:
        del io[k]
    # How far diffusers' own bf16 run of this model lands from its f32 output: the yardstick for
    # Tolerances.vaeBF16RelL2 (activations rounded to bf16 after every op of a ~40-op deep stack of
    # 4-16-channel convs; the weights are already bf16-exact, so this is activation rounding only).
    vb = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(str(ddir))).eval()
    vb.load_state_dict(sd, strict=True)
    vb = vb.to(torch.bfloat16)

    def rel_l2(a, b):
        return float((a.float() - b.float()).norm() / b.float().norm())

    with torch.no_grad():
        for name in cases:
            dec_bf16 = vb.decode(io[f"{name}.dec.latents_raw"].bfloat16()).sample
            mu_bf16 = vb.encode(io[f"{name}.video"].bfloat16()).latent_dist.mode()
            checks[name]["diffusers_bf16_vs_f32_rel_l2"] = {
                "sample": rel_l2(dec_bf16, io[f"{name}.sample"]),
                "enc.mu": rel_l2(mu_bf16, io[f"{name}.enc.mu"]),
            }

    save_tensors(OUT_DIR / "io.safetensors", io, metadata={"format": "pt"})
    write_real_key_shapes()
    manifest = {
        "producer": "scripts/goldens/vae_goldens.py",
        "versions": versions,
        "config": CONFIG,
        "weight_seed": WEIGHT_SEED,
        "input_seed": INPUT_SEED,
        "weight_init": init_rules,
        "weights_dtype": "BF16 on disk; values exact in f32 (the reference model ran in f32)",
        "key_rules": KEY_RULES,
        "decoder_flat_index": "upsamples.k, k = i*(num_res_blocks+2) + j for up_blocks.i.resnets.j; "
        "k = i*(num_res_blocks+2) + num_res_blocks + 1 for up_blocks.i.upsamplers.0",
        "checks": checks,
        "cases": {k: list(v) for k, v in cases.items()},
        "tensors": [{"name": k, "shape": shape_of(v), "description": TAP_DOCS.get(re.sub(r"^v\d+\.", "", k).replace(
            "dec.up_blocks.0", "dec.up_blocks.{i}").replace("dec.up_blocks.1", "dec.up_blocks.{i}").replace(
            "dec.up_blocks.2", "dec.up_blocks.{i}").replace("dec.up_blocks.3", "dec.up_blocks.{i}"), "input")}
            for k, v in sorted(io.items())],
    }
    write_json(OUT_DIR / "manifest.json", manifest)
    size = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    return [f"{rel(OUT_DIR)}: {len(io)} io tensors, {len(sd)} weights, {size / 1e6:.2f} MB, checks {checks}"]
