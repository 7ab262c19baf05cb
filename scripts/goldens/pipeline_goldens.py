"""End-to-end text-to-video goldens: a complete tiny diffusers `WanPipeline` (tokenizer, umT5
encoder, Wan DiT, Wan VAE, UniPC scheduler) with seeded random weights, saved in the diffusers
folder layout and in the original Wan layout, and run on CPU in float32 with fixed initial latents.

Writes Tests/Fixtures/wan_pipeline/:
  diffusers/      WanPipeline.save_pretrained output (model_index.json + one folder per component)
  wan/            the same weights in the original Wan2.1 folder layout
  io.safetensors  per case: inputs, prompt embeddings, per-step latents and model outputs, final
                  latents, decoded float video, uint8 frames
  cases.json      per case: prompt, sampler, sizes, and every tensor name with its meaning

The component generators' helpers are reused (weight init rules and key renames of dit_goldens,
umt5_goldens and vae_goldens; the UniPC configuration of scheduler_goldens), so the renames are the
ones already checked there; this module checks them again on the tiny pipeline.
"""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

import dit_goldens
import scheduler_goldens
import umt5_goldens
import vae_goldens
from _common import FIXTURES, dtype_name, randn, rel, reset_dir, save_tensors, shape_of, write_json

OUT_DIR = FIXTURES / "wan_pipeline"
TOKENIZER_SRC = FIXTURES / "tokenizer" / "plain"  # 9.5 kB spiece.model, vocab 700 + 2 sentinels
WEIGHT_SEED = 6001
LATENT_SEED = 6101
TEXT_LEN = 512  # WanPipeline's default max_sequence_length, and Wan's text_len

UMT5_D_MODEL = 32

# The t2v DiT of dit_goldens, its text input widened to the umT5 encoder's d_model.
DIT_CONFIG = dict(dit_goldens._BASE_MODEL, text_dim=UMT5_D_MODEL)

# The tiny VAE of vae_goldens with z_dim 16 (the DiT's channels). latents_mean / latents_std are
# left at AutoencoderKLWan's defaults, which are the real Wan2.1 values (16 entries each).
VAE_CONFIG = {k: v for k, v in vae_goldens.CONFIG.items() if k not in ("latents_mean", "latents_std")}
VAE_CONFIG["z_dim"] = 16
# base_dim 2 (widths 2/4/8/8) instead of vae_goldens' 4: a quarter of the weights, to fit the
# size budget; the depth (which diffusers' converter hard-codes) is the real one.
VAE_CONFIG["base_dim"] = 2

SHIFT = 3.0

CASES = {
    # Classifier-free guidance with an explicit negative prompt; 9 frames -> 3 latent frames.
    "a": dict(prompt="a red circle moving right", negative_prompt="static, blurry", guidance_scale=5.0,
              steps=4, height=32, width=32, frames=9, sampler="unipc"),
    # guidance 1.0: no CFG, so WanPipeline never encodes (and ignores) the negative prompt. The prompt
    # exercises prompt_clean (double html.unescape, whitespace runs collapsed, strip), accents and CJK.
    "b": dict(prompt="  une voiture rouge à tōkyō:\t東京の猫 &amp;amp; café  ", negative_prompt="static, blurry",
              guidance_scale=1.0, steps=3, height=48, width=32, frames=5, sampler="unipc"),
    # CFG with negative_prompt=None: WanPipeline encodes "" (a lone </s>), FlowMatch Euler sampler.
    "c": dict(prompt="a blue square", negative_prompt=None, guidance_scale=3.0, steps=3, height=32, width=48,
              frames=5, sampler="euler"),
}


def make_scheduler(kind: str):
    if kind == "unipc":
        # Wan2.1-T2V-1.3B-Diffusers scheduler/scheduler_config.json (flow_shift 3.0 there).
        return scheduler_goldens.make_scheduler("unipc", SHIFT)
    if kind == "euler":
        return scheduler_goldens.make_scheduler("euler", SHIFT)
    raise ValueError(kind)


def build_tokenizer(tmp: Path):
    from transformers import AutoTokenizer

    for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER_SRC / name, tmp / name)
    tok = AutoTokenizer.from_pretrained(str(tmp))
    # umT5's special ids; WanPipeline pads with pad_token_id and relies on the mask.
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1 and tok.unk_token_id == 2
    return tok


def build_components(tok):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(WEIGHT_SEED)
    cfg = dict(umt5_goldens.CONFIG)
    cfg["vocab_size"] = len(tok)
    text_encoder = UMT5EncoderModel(UMT5Config(**cfg)).eval()
    umt5_goldens._randomize(text_encoder)
    # transformers ties encoder.embed_tokens to shared; save_pretrained writes the table once.
    assert text_encoder.encoder.embed_tokens.weight.data_ptr() == text_encoder.shared.weight.data_ptr()

    transformer = WanTransformer3DModel(**DIT_CONFIG).eval()
    dit_rules = dit_goldens.reinit_weights(transformer, WEIGHT_SEED + 1)

    vae = AutoencoderKLWan(**VAE_CONFIG).eval()
    vae_rules = vae_goldens.reinit_weights(vae, WEIGHT_SEED + 2)
    assert len(vae.config.latents_mean) == 16 and len(vae.config.latents_std) == 16
    # Every weight is made bf16-representable so the files can store BF16 (half the size) while the
    # reference runs in float32 on exactly those values.
    with torch.no_grad():
        for m in (text_encoder, transformer, vae):
            for n, p in m.named_parameters():
                p.copy_(p.bfloat16().float())
                assert torch.count_nonzero(p) == p.numel(), n
    return text_encoder, transformer, vae, {"dit": sorted(set(dit_rules.values())),
                                            "vae": sorted(set(vae_rules.values()))}


def _bf16(sd: dict) -> dict:
    out = collections.OrderedDict()
    for k, v in sd.items():
        b = v.detach().to(torch.bfloat16).contiguous()
        assert torch.equal(b.float(), v.float()), f"{k} is not bf16-representable"
        out[k] = b
    return out


def _store_bf16(path: Path) -> None:
    """Rewrites a float32 safetensors file written by save_pretrained as BF16 (same values)."""
    from safetensors.torch import load_file

    save_tensors(path, _bf16(load_file(str(path))), metadata={"format": "pt"})


def make_pipe(tok, text_encoder, transformer, vae, sampler: str):
    from diffusers import WanPipeline

    pipe = WanPipeline(tokenizer=tok, text_encoder=text_encoder, transformer=transformer, vae=vae,
                       scheduler=make_scheduler(sampler))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def initial_latents(case: dict, seed: int) -> torch.Tensor:
    t = (case["frames"] - 1) // 4 + 1
    return randn((1, 16, t, case["height"] // 8, case["width"] // 8), seed)


def record_steps(io: dict, name: str, steps: list, preds: list, cfg: bool, out: torch.Tensor) -> None:
    """Per sampler step: the conditional (and with CFG the unconditional) model output and the latents after
    the step; then the final latents. `preds` holds the transformer outputs in call order."""
    per_step = 2 if cfg else 1
    for i, lat in enumerate(steps):
        io[f"{name}.step{i}.noise_cond"] = preds[per_step * i]
        if cfg:
            io[f"{name}.step{i}.noise_uncond"] = preds[per_step * i + 1]
        io[f"{name}.step{i}.latents"] = lat
    io[f"{name}.latents_out"] = out


def denormalized(vae, latents: torch.Tensor) -> torch.Tensor:
    """What Wan pipelines hand the VAE decoder: latents / (1 / std) + mean, per channel."""
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1)
    return latents / inv_std + mean


def run_case(pipe, name: str, case: dict, latents_in: torch.Tensor) -> tuple[dict, dict]:
    """Runs the pipeline three times (latent / np / pil output) and records everything."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    io: dict[str, torch.Tensor] = {}
    cfg = case["guidance_scale"] > 1.0
    kw = dict(prompt=case["prompt"], negative_prompt=case["negative_prompt"], height=case["height"],
              width=case["width"], num_frames=case["frames"], num_inference_steps=case["steps"],
              guidance_scale=case["guidance_scale"], max_sequence_length=TEXT_LEN)

    def tokenize(text):
        t = pipe.tokenizer([prompt_clean(text)], padding="max_length", max_length=TEXT_LEN, truncation=True,
                           add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        return t.input_ids.to(torch.int64), t.attention_mask.to(torch.int64)

    io[f"{name}.input_ids"], io[f"{name}.attention_mask"] = tokenize(case["prompt"])
    with torch.no_grad():
        pe, ne = pipe.encode_prompt(prompt=case["prompt"], negative_prompt=case["negative_prompt"],
                                    do_classifier_free_guidance=cfg, max_sequence_length=TEXT_LEN,
                                    device=torch.device("cpu"))
    io[f"{name}.prompt_embeds"] = pe
    if cfg:
        io[f"{name}.negative_input_ids"], io[f"{name}.negative_attention_mask"] = tokenize(case["negative_prompt"] or "")
        io[f"{name}.negative_prompt_embeds"] = ne
    else:
        assert ne is None

    runs = {}
    for output_type in ("latent", "np", "pil"):
        steps: list[torch.Tensor] = []
        preds: list[torch.Tensor] = []

        def on_step(p, i, t, kwargs):
            steps.append(kwargs["latents"].detach().clone())
            return kwargs

        hook = pipe.transformer.register_forward_hook(lambda m, a, o: preds.append(o[0].detach().clone()))
        try:
            with torch.no_grad():
                out = pipe(**kw, latents=latents_in.clone(), output_type=output_type,
                           callback_on_step_end=on_step).frames
        finally:
            hook.remove()
        runs[output_type] = (out, steps, preds, pipe.scheduler.timesteps.clone(), pipe.scheduler.sigmas.clone())

    out, steps, preds, timesteps, sigmas = runs["latent"]
    for ot in ("np", "pil"):
        assert all(torch.equal(a, b) for a, b in zip(steps, runs[ot][1])), f"{name}: {ot} run differs"
    assert len(steps) == case["steps"] and torch.equal(steps[-1], out)
    per_step = 2 if cfg else 1
    assert len(preds) == per_step * case["steps"]

    io[f"{name}.latents_in"] = latents_in
    io[f"{name}.timesteps"] = timesteps
    io[f"{name}.sigmas"] = sigmas
    record_steps(io, name, steps, preds, cfg, out)

    # Decode the way WanPipeline does after the loop (float32 VAE).
    vae = pipe.vae
    raw = denormalized(vae, out)
    with torch.no_grad():
        video = vae.decode(raw, return_dict=False)[0]
    io[f"{name}.latents_raw"] = raw
    io[f"{name}.video"] = video
    np_frames = runs["np"][0]
    again = pipe.video_processor.postprocess_video(video, output_type="np")
    assert np.array_equal(again, np_frames), f"{name}: manual decode != pipeline np output"
    # The np output is (video * 0.5 + 0.5).clamp(0, 1) permuted to [B, F, H, W, 3].
    assert np.array_equal(np_frames[0], (video[0] * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).numpy())
    pil = np.stack([np.asarray(im) for im in runs["pil"][0][0]])
    # frames_np is not stored: it is exactly clamp(video * 0.5 + 0.5, 0, 1) (asserted above).
    assert np.array_equal(pil, np.round(np_frames[0] * 255).astype(np.uint8))
    io[f"{name}.frames_uint8"] = torch.from_numpy(pil)
    F_, H_, W_ = case["frames"], case["height"], case["width"]
    assert shape_of(video) == [1, 3, F_, H_, W_] and shape_of(io[f"{name}.frames_uint8"]) == [F_, H_, W_, 3]
    clamped = float((video.abs() >= 1.0).float().mean())
    assert clamped < 0.1, f"{name}: {clamped:.1%} of the video is clipped"
    stats = {"video_std": float(video.std()), "clipped_fraction": clamped,
             "latents_out_std": float(out.std()), "prompt_tokens": int(io[f"{name}.attention_mask"].sum())}
    return io, stats


def wan_folder(out: Path, tok_dir: Path, text_encoder, transformer, vae) -> dict:
    """The original Wan2.1 layout. Returns the three renamed state dicts."""
    wdir = out / "wan"
    wdir.mkdir(parents=True)
    dit_sd = {k: v.detach().clone().contiguous() for k, v in transformer.state_dict().items()}
    dit_w = _bf16(dit_goldens.diffusers_to_wan_state_dict(dit_sd))
    save_tensors(wdir / "diffusion_pytorch_model.safetensors", dit_w, metadata={"format": "pt"})
    wcfg = dit_goldens.wan_config({"model": DIT_CONFIG, "text_tokens": TEXT_LEN}, "t2v")
    write_json(wdir / "config.json", wcfg)

    # Wan's T5 file holds the encoder only; the embedding appears once (token_embedding).
    t5_sd = text_encoder.state_dict()
    t5_w = collections.OrderedDict()
    for k, v in t5_sd.items():
        if k == "encoder.embed_tokens.weight":
            continue
        nk = umt5_goldens._hf_to_wan(k)
        assert nk not in t5_w, nk
        t5_w[nk] = v.detach().clone().contiguous()
    torch.save(_bf16(t5_w), wdir / "models_t5_umt5-xxl-enc-bf16.pth")

    vae_sd = {k: v.detach().clone().contiguous() for k, v in vae.state_dict().items()}
    vae_w = collections.OrderedDict(vae_goldens.diffusers_to_wan_state_dict(vae_sd, VAE_CONFIG["num_res_blocks"]))
    torch.save(_bf16(vae_w), wdir / "Wan2.1_VAE.pth")

    tdir = wdir / "google" / "umt5-xxl"
    tdir.mkdir(parents=True)
    for f in sorted(tok_dir.iterdir()):
        shutil.copy(f, tdir / f.name)
    return {"dit": dit_w, "t5": t5_w, "vae": vae_w, "wan_config": wcfg}


def verify_wan_files(wdir: Path, text_encoder, transformer, vae, inputs: dict) -> dict:
    """The Wan files, read back from disk, reproduce every component:
    - DiT: dit_goldens' independent plain-torch Wan forward, and diffusers' own converter back to the exact
      diffusers state dict;
    - T5: umt5_goldens' independent plain-torch Wan t5.py forward;
    - VAE: diffusers' own converter back to the exact diffusers state dict."""
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
    from diffusers.models.transformers.transformer_wan import WanTransformer3DModel  # noqa: F401
    from safetensors.torch import load_file

    checks = {}
    dit_w = {k: v.float() for k, v in load_file(str(wdir / "diffusion_pytorch_model.safetensors")).items()}
    wcfg = json.loads((wdir / "config.json").read_text())
    with torch.no_grad():
        ref = dit_goldens.wan_reference_forward(dit_w, wcfg, None, inputs["dit"])
        got = transformer(**inputs["dit"], return_dict=False)[0]
    d = (ref - got).abs().max().item()
    assert d <= 1e-4 * max(1.0, got.abs().max().item()), f"Wan DiT forward differs by {d}"
    checks["dit_independent_max_abs_diff"] = d

    try:
        from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    except ImportError:
        convert_wan_transformer_to_diffusers = None
    if convert_wan_transformer_to_diffusers is not None:
        back = convert_wan_transformer_to_diffusers({k: v.clone() for k, v in dit_w.items()})
        sd = transformer.state_dict()
        assert set(back) == set(sd), sorted(set(back) ^ set(sd))
        assert all(torch.equal(back[k], sd[k]) for k in sd)
        checks["dit_diffusers_converter_roundtrip"] = "exact"

    t5_w = {k: v.float() for k, v in torch.load(wdir / "models_t5_umt5-xxl-enc-bf16.pth", weights_only=True).items()}
    ids, mask = inputs["t5"]
    cfg = dict(umt5_goldens.CONFIG)
    with torch.no_grad():
        ref = umt5_goldens._wan_forward(t5_w, ids, mask, cfg)
        got = text_encoder(ids, mask).last_hidden_state
    valid = mask[0].bool()
    d = (ref[0, valid] - got[0, valid]).abs().max().item()
    assert d <= 1e-5 * max(1.0, got.abs().max().item()), f"Wan T5 forward differs by {d}"
    checks["t5_independent_max_abs_diff_valid_tokens"] = d

    vae_w = {k: v.float() for k, v in torch.load(wdir / "Wan2.1_VAE.pth", weights_only=True).items()}
    back = convert_wan_vae_to_diffusers({k: v.clone() for k, v in vae_w.items()})
    sd = vae.state_dict()
    assert set(back) == set(sd), sorted(set(back) ^ set(sd))
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    checks["vae_diffusers_converter_roundtrip"] = "exact"
    return checks


def reload_diffusers(ddir: Path, sampler: str):
    """Rebuilds the pipeline from the written folder by hand (from_pretrained of the DiT / VAE needs
    `accelerate` for _keep_in_fp32_modules, which the reference env lacks); strict loads."""
    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, UMT5EncoderModel

    tok = AutoTokenizer.from_pretrained(str(ddir / "tokenizer"))
    te = UMT5EncoderModel.from_pretrained(str(ddir / "text_encoder"), dtype=torch.float32).eval()
    assert all(p.dtype == torch.float32 for p in te.parameters())
    dit = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(str(ddir / "transformer"))).eval()
    dit.load_state_dict(load_file(str(ddir / "transformer" / "diffusion_pytorch_model.safetensors")), strict=True)
    vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(str(ddir / "vae"))).eval()
    vae.load_state_dict(load_file(str(ddir / "vae" / "diffusion_pytorch_model.safetensors")), strict=True)
    index = json.loads((ddir / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline", index
    from diffusers import UniPCMultistepScheduler

    sched = UniPCMultistepScheduler.from_pretrained(str(ddir / "scheduler"))
    def public(c):
        return {k: v for k, v in dict(c).items() if not k.startswith("_")}

    assert public(sched.config) == public(make_scheduler(sampler).config), (sched.config, make_scheduler(sampler).config)
    pipe = WanPipeline(tokenizer=tok, text_encoder=te, transformer=dit, vae=vae, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(versions: dict) -> list[str]:
    import diffusers
    import transformers

    reset_dir(OUT_DIR)
    tmp = Path(tempfile.mkdtemp(prefix="kinema_pipe_tok_"))
    try:
        tok = build_tokenizer(tmp)
        text_encoder, transformer, vae, init_rules = build_components(tok)

        pipe = make_pipe(tok, text_encoder, transformer, vae, "unipc")
        ddir = OUT_DIR / "diffusers"
        pipe.save_pretrained(str(ddir), safe_serialization=True)
        for f in ("transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                  "text_encoder/model.safetensors"):
            _store_bf16(ddir / f)
        tok_dir = ddir / "tokenizer"
        if not (tok_dir / "spiece.model").exists():
            shutil.copy(TOKENIZER_SRC / "spiece.model", tok_dir / "spiece.model")
        if not (tok_dir / "special_tokens_map.json").exists():
            # transformers 5 no longer writes it; the real google/umt5-xxl folder has one.
            extra = [f"<extra_id_{i}>" for i in range(json.loads((tok_dir / "tokenizer_config.json").read_text())
                                                       .get("extra_ids", 0))]
            write_json(tok_dir / "special_tokens_map.json", {"eos_token": "</s>", "pad_token": "<pad>",
                                                             "unk_token": "<unk>",
                                                             "additional_special_tokens": extra})
        wan = wan_folder(OUT_DIR, tok_dir, text_encoder, transformer, vae)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    io: dict[str, torch.Tensor] = {}
    stats = {}
    cases_json = {}
    for ci, (name, case) in enumerate(CASES.items()):
        pipe = make_pipe(tok, text_encoder, transformer, vae, case["sampler"])
        lat = initial_latents(case, LATENT_SEED + ci)
        case_io, stats[name] = run_case(pipe, name, case, lat)
        if name == "a":
            # The written diffusers folder rebuilds a pipeline that reproduces case a bit for bit.
            re_pipe = reload_diffusers(ddir, "unipc")
            re_io, _ = run_case(re_pipe, name, case, lat)
            assert set(re_io) == set(case_io)
            for k in case_io:
                assert torch.equal(re_io[k], case_io[k]), f"reloaded pipeline differs at {k}"
            verify_inputs = {
                "dit": {"hidden_states": case_io["a.latents_in"], "timestep": case_io["a.timesteps"][:1].float(),
                        "encoder_hidden_states": case_io["a.prompt_embeds"]},
                "t5": (case_io["a.input_ids"], case_io["a.attention_mask"]),
            }
            wan_checks = verify_wan_files(OUT_DIR / "wan", text_encoder, transformer, vae, verify_inputs)
        io.update(case_io)
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        cases_json[name] = {
            "prompt": case["prompt"],
            "prompt_cleaned": prompt_clean(case["prompt"]),
            "negative_prompt": case["negative_prompt"],
            "negative_prompt_used": (case["negative_prompt"] or "") if case["guidance_scale"] > 1.0 else None,
            "guidance_scale": case["guidance_scale"],
            "num_inference_steps": case["steps"],
            "sampler": case["sampler"],
            "scheduler_config": {k: v for k, v in dict(make_scheduler(case["sampler"]).config).items()
                                 if not k.startswith("_")},
            "shift": SHIFT,
            "num_frames": case["frames"],
            "height": case["height"],
            "width": case["width"],
            "latent_shape": shape_of(case_io[f"{name}.latents_in"]),
            "max_sequence_length": TEXT_LEN,
            "tensors": {k: {"shape": shape_of(v), "dtype": dtype_name(v)} for k, v in case_io.items()},
            "stats": stats[name],
        }

    save_tensors(OUT_DIR / "io.safetensors", io, metadata={"producer": "scripts/goldens/make_goldens.py (wan_pipeline)"})
    tensor_docs = {
        "<c>.input_ids / attention_mask": "tokenizer(prompt_clean(prompt), padding=max_length 512, truncation, "
                                          "add_special_tokens) [1, 512] I64; pad id 0, mask 0 on padding",
        "<c>.negative_input_ids / negative_attention_mask": "the same for the negative prompt (\"\" when None); CFG cases only",
        "<c>.prompt_embeds": "WanPipeline.encode_prompt: umT5 last_hidden_state of the masked run, rows past the "
                             "true length replaced by exact zeros [1, 512, 32]",
        "<c>.negative_prompt_embeds": "same for the negative prompt; only when guidance_scale > 1",
        "<c>.latents_in": "fixed initial noise passed as latents= [1, 16, T, H/8, W/8]",
        "<c>.timesteps": "scheduler.timesteps after set_timesteps(steps) (dtype as diffusers keeps it)",
        "<c>.sigmas": "scheduler.sigmas (steps + 1 entries, last 0)",
        "<c>.step<i>.noise_cond": "transformer output with prompt_embeds at step i",
        "<c>.step<i>.noise_uncond": "transformer output with negative_prompt_embeds at step i (CFG only); the "
                                    "guided prediction is uncond + g * (cond - uncond)",
        "<c>.step<i>.latents": "latents after scheduler.step at step i (callback_on_step_end)",
        "<c>.latents_out": "final latents (== last step) before VAE scaling; output_type='latent'",
        "<c>.latents_raw": "latents_out / (1 / latents_std) + latents_mean, the VAE decoder input",
        "<c>.video": "vae.decode(latents_raw).sample [1, 3, F, H, W], float in [-1, 1] (the decoder clamps)",
        "<c>.frames_uint8": "output_type='pil' frames as uint8 [F, H, W, 3] = round-half-even(np * 255) where "
                            "np = output_type='np' frames = clamp(video * 0.5 + 0.5, 0, 1) permuted to [F, H, W, 3] "
                            "(np frames are not stored: the script asserts that identity bit for bit)",
    }
    manifest = {
        "producer": "scripts/goldens/make_goldens.py (pipeline_goldens.py)",
        "versions": dict(versions, transformers=transformers.__version__),
        "reference": "diffusers.WanPipeline, float32, CPU, one thread, deterministic algorithms",
        "weight_storage": "every weight file stores BF16; the values are bf16-representable and the reference ran "
                          "float32 models holding exactly those values, so load weights as BF16 and upcast to F32",
        "ftfy_installed": False,
        "prompt_clean": "basic_clean (ftfy.fix_text only if ftfy is installed; it is not in the reference env) "
                        "+ html.unescape twice + strip, then whitespace runs -> one space + strip",
        "seeds": {"weights": WEIGHT_SEED, "latents": LATENT_SEED,
                  "scheme": "umT5: umt5_goldens._randomize; DiT: dit_goldens.reinit_weights(seed+1); "
                            "VAE: vae_goldens.reinit_weights(seed+2) (bf16-representable); latents of case i: "
                            "randn(seed + i)"},
        "weight_init": init_rules,
        "dit_config": DIT_CONFIG,
        "vae_config": {k: v for k, v in dict(vae.config).items() if not k.startswith("_")},
        "umt5_config": dict(umt5_goldens.CONFIG, vocab_size=len(tok)),
        "wan_config": wan["wan_config"],
        "wan_files": {
            "diffusion_pytorch_model.safetensors": "DiT, dit_goldens.KEY_RULES names",
            "models_t5_umt5-xxl-enc-bf16.pth": "torch.save(OrderedDict) of the umT5 encoder under Wan t5.py names, BF16 "
                                               "(as the real file)",
            "Wan2.1_VAE.pth": "torch.save(OrderedDict) of the VAE under Wan vae.py names, BF16 (the real file is "
                              "float32; stored BF16 here for size)",
            "google/umt5-xxl/": "the tokenizer folder (same files as diffusers/tokenizer)",
        },
        "checks": wan_checks,
        "tensors": tensor_docs,
        "cases": cases_json,
    }
    write_json(OUT_DIR / "cases.json", manifest)

    files = sorted(p for p in OUT_DIR.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    lines = [f"{rel(OUT_DIR)}: {len(files)} files, {total / 1e6:.2f} MB"]
    for n, s in stats.items():
        lines.append(f"  case {n}: {s}")
    lines.append(f"  checks: {wan_checks}")
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(OUT_DIR)).encode() + p.read_bytes())
    lines.append(f"  content sha256: {h.hexdigest()}")
    return lines
