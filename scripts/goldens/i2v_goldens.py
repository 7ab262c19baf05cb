"""End-to-end image-to-video (I2V) and first-last-frame-to-video (FLF2V) goldens: tiny diffusers
`WanImageToVideoPipeline`s (umT5 + tokenizer + Wan VAE of the T2V pipeline golden, a tiny CLIP vision
encoder + CLIPImageProcessor, a tiny 36-channel Wan DiT with an image branch; the FLF2V DiT adds the
`pos_embed` over 2 x image tokens), seeded random weights, run on CPU in float32 with fixed initial
latents, from a small PNG and a small JPEG.

Writes Tests/Fixtures/wan_i2v/:
  inputs/          first.png, last.jpg (the pipeline's inputs, decoded with PIL as diffusers' load_image)
  i2v/             WanImageToVideoPipeline.save_pretrained layout of the I2V model; text_encoder/,
                   tokenizer/ and vae/ are symlinks to ../../wan_pipeline/diffusers/ (identical weights,
                   asserted), so only the new parts take space
  flf2v/           the same for the FLF2V model (its own transformer/)
  wan_i2v/         the I2V model in the original Wan layout (config.json + diffusion_pytorch_model.safetensors,
                   the CLIP tower as models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth), T5 / VAE /
                   tokenizer symlinked from ../wan_pipeline/wan/
  io.safetensors   per case: decoded + resized images, VAE-preprocessed images, CLIP pixel values and
                   image embeddings, the `condition` (mask + image latents), per-step latents and model
                   outputs, final latents, decoded video
  resize.json      Wan's target-size rule (diffusers example and original Wan2.1) for a table of sizes
  cases.json       every case's settings and every tensor with its meaning

Out of scope: Wan2.2 (`expand_timesteps`, `boundary_ratio` / transformer_2).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

import dit_goldens
import pipeline_goldens
from _common import FIXTURES, dtype_name, randn, rel, reset_dir, save_tensors, shape_of, write_json

OUT_DIR = FIXTURES / "wan_i2v"
T2V_DIR = FIXTURES / "wan_pipeline"
WEIGHT_SEED = 7001
LATENT_SEED = 7101
IMAGE_SEED = 7201
TEXT_LEN = pipeline_goldens.TEXT_LEN

# Tiny CLIP ViT: 56 px, 14 px patches -> 16 patches + class token = 17 tokens (ViT-H/14 at 224: 257).
CLIP_IMAGE = 56
CLIP_CONFIG = dict(hidden_size=40, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                   image_size=CLIP_IMAGE, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5,
                   projection_dim=24)
CLIP_TOKENS = (CLIP_IMAGE // 14) ** 2 + 1

# The T2V pipeline golden's DiT with the I2V input (16 noise + 4 mask + 16 image latents) and the image
# branch, narrowed to 4 heads of 8 (RoPE split t/h/w = 4/2/2) and ffn 64 to fit the size budget; the FLF2V
# DiT also learns a position embedding over the two images' tokens.
I2V_DIT = dict(pipeline_goldens.DIT_CONFIG, attention_head_dim=8, ffn_dim=64, in_channels=36,
               image_dim=CLIP_CONFIG["hidden_size"], added_kv_proj_dim=4 * 8)
FLF2V_DIT = dict(I2V_DIT, pos_embed_seq_len=2 * CLIP_TOKENS)

CASES = {
    # I2V from a PNG whose aspect ratio is not the target's: resized with Wan's rule (diffusers' example:
    # keep the aspect ratio at max_area = 32 x 48, multiples of 16, PIL bicubic), CFG, UniPC.
    "i2v": dict(model="i2v", image="first.png", last_image=None, prompt="a red ball rolls to the left",
                negative_prompt="static, blurry", guidance_scale=5.0, steps=3, max_area=32 * 48, frames=9,
                sampler="unipc"),
    # FLF2V: JPEG first frame, PNG last frame, CFG, Euler.
    "flf2v": dict(model="flf2v", image="last.jpg", last_image="first.png", prompt="a cat turns its head",
                  negative_prompt=None, guidance_scale=3.0, steps=2, max_area=32 * 32, frames=5,
                  sampler="euler"),
}

# Image sizes (w, h) and areas for the resize-rule table.
RESIZE_TABLE = [(50, 34, 32 * 48), (34, 50, 32 * 48), (1280, 720, 480 * 832), (720, 1280, 480 * 832),
                (1024, 1024, 480 * 832), (1920, 1080, 720 * 1280), (640, 480, 480 * 832), (333, 777, 480 * 832),
                (3000, 200, 480 * 832), (47, 47, 32 * 32), (4032, 3024, 720 * 1280), (500, 281, 480 * 832)]


# Extra Pillow resize targets (w, h) for the resampler test: upscale, downscale, one axis each way.
RESIZE_PIL_SIZES = [(77, 61), (23, 19), (64, 17), (13, 40)]


def diffusers_target_size(w: int, h: int, max_area: int, mod: int = 16) -> tuple[int, int]:
    """WanImageToVideoPipeline's docstring example (the Wan2.1-I2V model cards use the same lines)."""
    aspect_ratio = h / w
    height = round(np.sqrt(max_area * aspect_ratio)) // mod * mod
    width = round(np.sqrt(max_area / aspect_ratio)) // mod * mod
    return int(width), int(height)


def wan_target_size(w: int, h: int, max_area: int, stride: int = 8, patch: int = 2) -> tuple[int, int]:
    """Wan2.1 wan/image2video.py (WanI2V.generate): floor to latent multiples of the patch size."""
    aspect_ratio = h / w
    lat_h = round(np.sqrt(max_area * aspect_ratio) // stride // patch * patch)
    lat_w = round(np.sqrt(max_area / aspect_ratio) // stride // patch * patch)
    return int(lat_w * stride), int(lat_h * stride)


def make_images(inputs: Path) -> None:
    """A smooth 50x34 RGB PNG and a 34x50 4:4:4 JPEG (different aspect ratios)."""
    from PIL import Image

    rng = np.random.default_rng(IMAGE_SEED)

    def smooth(h, w):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        chans = []
        for c in range(3):
            a, b, p = rng.uniform(0.05, 0.3, 3)
            chans.append(127.5 + 100 * np.sin(a * x + p * 7) * np.cos(b * y + c) + rng.normal(0, 12, (h, w)))
        return np.clip(np.stack(chans, -1), 0, 255).round().astype(np.uint8)

    inputs.mkdir(parents=True)
    Image.fromarray(smooth(34, 50)).save(inputs / "first.png", optimize=False)
    Image.fromarray(smooth(50, 34)).save(inputs / "last.jpg", quality=90, subsampling=0)


def load_image(path: Path):
    from diffusers.utils import load_image as dl

    return dl(str(path))


def build_clip():
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(WEIGHT_SEED)
    enc = CLIPVisionModel(CLIPVisionConfig(**CLIP_CONFIG)).eval()
    rules = dit_goldens.reinit_weights(enc, WEIGHT_SEED + 3)
    # Same preprocessing settings as Wan2.1-I2V-14B-480P-Diffusers/image_processor at the tiny size.
    proc = CLIPImageProcessor(size={"shortest_edge": CLIP_IMAGE}, crop_size={"height": CLIP_IMAGE, "width": CLIP_IMAGE},
                              resample=3, do_center_crop=True, do_normalize=True, do_rescale=True, do_resize=True,
                              do_convert_rgb=True)
    return enc, proc, sorted(set(rules.values()))


def build_dit(cfg: dict, seed: int):
    from diffusers import WanTransformer3DModel

    dit = WanTransformer3DModel(**cfg).eval()
    rules = dit_goldens.reinit_weights(dit, seed)
    return dit, sorted(set(rules.values()))


def bf16_exact(*modules) -> None:
    with torch.no_grad():
        for m in modules:
            for n, p in m.named_parameters():
                p.copy_(p.bfloat16().float())
                assert torch.count_nonzero(p) == p.numel(), n


def _patch_prompt_clean() -> None:
    """pipeline_wan_i2v.basic_clean calls ftfy.fix_text unconditionally (NameError without ftfy, which the
    reference env lacks); pipeline_wan's copy skips it when ftfy is missing. Use that one, so both pipelines
    clean prompts identically (ftfy not applied, as in the T2V golden)."""
    import diffusers.pipelines.wan.pipeline_wan as t2v
    import diffusers.pipelines.wan.pipeline_wan_i2v as i2v

    assert not t2v.is_ftfy_available()
    i2v.prompt_clean = t2v.prompt_clean


def make_pipe(tok, te, vae, enc, proc, dit, sampler: str):
    from diffusers import WanImageToVideoPipeline

    _patch_prompt_clean()

    pipe = WanImageToVideoPipeline(tokenizer=tok, text_encoder=te, vae=vae, scheduler=pipeline_goldens.make_scheduler(sampler),
                                   image_processor=proc, image_encoder=enc, transformer=dit)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_folder(pipe, folder: Path, share_image_encoder: Path | None = None) -> None:
    """save_pretrained, BF16 weight files, and the T2V golden's text encoder / tokenizer / VAE as symlinks."""
    pipe.save_pretrained(str(folder), safe_serialization=True)
    pipeline_goldens._store_bf16(folder / "transformer" / "diffusion_pytorch_model.safetensors")
    pipeline_goldens._store_bf16(folder / "image_encoder" / "model.safetensors")
    from safetensors.torch import load_file

    for sub, fname in (("text_encoder", "model.safetensors"), ("vae", "diffusion_pytorch_model.safetensors")):
        mine = load_file(str(folder / sub / fname))
        theirs = load_file(str(T2V_DIR / "diffusers" / sub / fname))
        assert set(mine) == set(theirs) and all(torch.equal(mine[k].float(), theirs[k].float()) for k in mine), sub
    for sub in ("text_encoder", "tokenizer", "vae"):
        shutil.rmtree(folder / sub)
        os.symlink(f"../../wan_pipeline/diffusers/{sub}", folder / sub)
    if share_image_encoder is not None:
        # The FLF2V pipeline uses the I2V pipeline's CLIP: link instead of a second copy.
        for sub in ("image_encoder", "image_processor"):
            for f in sorted((folder / sub).iterdir()):
                assert f.read_bytes() == (share_image_encoder / sub / f.name).read_bytes(), f
            shutil.rmtree(folder / sub)
            os.symlink(f"../{share_image_encoder.name}/{sub}", folder / sub)


def run_case(pipe, name: str, case: dict, images: dict, latents_in: torch.Tensor) -> tuple[dict, dict]:
    from PIL import Image

    io: dict[str, torch.Tensor] = {}
    first = images[case["image"]]
    width, height = diffusers_target_size(first.width, first.height, case["max_area"])
    first_resized = first.resize((width, height))  # PIL's default filter: bicubic
    io[f"{name}.image_decoded"] = torch.from_numpy(np.asarray(first).copy())
    io[f"{name}.image_resized"] = torch.from_numpy(np.asarray(first_resized).copy())
    last_resized = None
    if case["last_image"]:
        last = images[case["last_image"]]
        # The last frame is resized like the first, to the first frame's video size (aspect ratio not kept), so
        # the pipeline itself resizes nothing. (diffusers' docs example and Wan's first_last_frame2video.py
        # center-crop a differently shaped last frame first; Kinema does not, see ImageConditioning.)
        last_resized = last.resize((width, height))
        io[f"{name}.last_image_decoded"] = torch.from_numpy(np.asarray(last).copy())
        io[f"{name}.last_image_resized"] = torch.from_numpy(np.asarray(last_resized).copy())

    # CLIP: the processor's pixel values and hidden_states[-2], as encode_image computes them.
    clip_in = [first_resized] if last_resized is None else [first_resized, last_resized]
    pixel_values = pipe.image_processor(images=clip_in, return_tensors="pt").pixel_values
    io[f"{name}.clip_pixel_values"] = pixel_values
    with torch.no_grad():
        io[f"{name}.image_embeds"] = pipe.encode_image(clip_in if len(clip_in) > 1 else clip_in[0], torch.device("cpu"))

    captured = {}
    orig_prepare = pipe.prepare_latents
    orig_pre = pipe.video_processor.preprocess

    def prepare(*a, **k):
        out = orig_prepare(*a, **k)
        captured["condition"] = out[1].detach().clone()
        return out

    def preprocess(*a, **k):
        out = orig_pre(*a, **k)
        captured.setdefault("vae_images", []).append(out.detach().clone())
        return out

    pipe.prepare_latents = prepare
    pipe.video_processor.preprocess = preprocess
    steps, preds = [], []

    def on_step(p, i, t, kwargs):
        steps.append(kwargs["latents"].detach().clone())
        return kwargs

    hook = pipe.transformer.register_forward_hook(lambda m, a, o: preds.append(o[0].detach().clone()))
    kw = dict(image=first_resized, last_image=last_resized, prompt=case["prompt"], negative_prompt=case["negative_prompt"],
              height=height, width=width, num_frames=case["frames"], num_inference_steps=case["steps"],
              guidance_scale=case["guidance_scale"], max_sequence_length=TEXT_LEN)
    try:
        with torch.no_grad():
            out = pipe(**kw, latents=latents_in.clone(), output_type="latent", callback_on_step_end=on_step).frames
            pe, ne = pipe.encode_prompt(prompt=case["prompt"], negative_prompt=case["negative_prompt"],
                                        do_classifier_free_guidance=case["guidance_scale"] > 1.0,
                                        max_sequence_length=TEXT_LEN, device=torch.device("cpu"))
    finally:
        hook.remove()
        del pipe.prepare_latents
        del pipe.video_processor.preprocess

    cfg = case["guidance_scale"] > 1.0
    per_step = 2 if cfg else 1
    assert len(steps) == case["steps"] and len(preds) == per_step * case["steps"] and torch.equal(steps[-1], out)
    io[f"{name}.vae_image"] = captured["vae_images"][0]
    if last_resized is not None:
        io[f"{name}.vae_last_image"] = captured["vae_images"][1]
    # The VAE-side preprocessing of an already-resized image is x / 255 * 2 - 1.
    ref = torch.from_numpy(np.asarray(first_resized).astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2.0 - 1.0
    assert torch.equal(ref, io.pop(f"{name}.vae_image"))
    if last_resized is not None:
        ref = torch.from_numpy(np.asarray(last_resized).astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2.0 - 1.0
        assert torch.equal(ref, io.pop(f"{name}.vae_last_image"))
    io[f"{name}.condition"] = captured["condition"]
    # Only the rows of real tokens are stored; the other rows of the 512 are exact zeros (asserted).
    for key, emb in (("prompt_embeds", pe), ("negative_prompt_embeds", ne if cfg else None)):
        if emb is None:
            continue
        rows = int((emb[0].abs().sum(-1) != 0).sum())
        assert torch.count_nonzero(emb[0, rows:]) == 0 and shape_of(emb) == [1, TEXT_LEN, emb.shape[2]]
        io[f"{name}.{key}_rows"] = emb[:, :rows].clone()
    io[f"{name}.latents_in"] = latents_in
    io[f"{name}.timesteps"] = pipe.scheduler.timesteps.clone()
    pipeline_goldens.record_steps(io, name, steps, preds, cfg, out)

    vae = pipe.vae
    with torch.no_grad():
        video = vae.decode(pipeline_goldens.denormalized(vae, out), return_dict=False)[0]
        np_run = pipe(**kw, latents=latents_in.clone(), output_type="np").frames
    assert np.array_equal(np_run, pipe.video_processor.postprocess_video(video, output_type="np"))
    io[f"{name}.video"] = video

    # Cross-check the condition against the original Wan2.1 construction (image2video.py / first_last_frame2video.py):
    # mask over pixel frames (first = 1, FLF2V also last), first frame repeated 4x, folded to 4 channels per
    # latent frame; y = VAE latents of [image, zeros..., (last)] normalized.
    F, T = case["frames"], latents_in.shape[2]
    h, w = latents_in.shape[3], latents_in.shape[4]
    msk = torch.ones(1, F, h, w)
    msk[:, 1:-1 if last_resized is not None else None] = 0
    msk = torch.cat([torch.repeat_interleave(msk[:, 0:1], repeats=4, dim=1), msk[:, 1:]], dim=1)
    msk = msk.view(1, msk.shape[1] // 4, 4, h, w).transpose(1, 2)
    assert torch.equal(msk, captured["condition"][:, :4]), f"{name}: mask differs from Wan's"
    assert captured["condition"].shape == (1, 4 + vae.config.z_dim, T, h, w)

    stats = {"height": height, "width": width, "video_std": float(video.std()),
             "clipped_fraction": float((video.abs() >= 1.0).float().mean()), "latents_out_std": float(out.std())}
    return io, stats


def clip_to_wan(sd: dict) -> "collections.OrderedDict[str, torch.Tensor]":
    """transformers CLIPVisionModel names -> the `visual.` tower of Wan's CLIP .pth (wan/modules/clip.py:
    fused q|k|v `attn.to_qkv`, `cls_embedding` [1, 1, W], `pos_embedding` [1, L, W], mlp.0 / mlp.2). The
    real file also holds the XLM-RoBERTa text tower and `visual.head`, which image-to-video never uses."""
    width = CLIP_CONFIG["hidden_size"]
    out = collections.OrderedDict()
    used = set()

    def take(key):
        used.add(key)
        return sd[key]

    out["visual.patch_embedding.weight"] = take("embeddings.patch_embedding.weight")
    out["visual.cls_embedding"] = take("embeddings.class_embedding").view(1, 1, width)
    out["visual.pos_embedding"] = take("embeddings.position_embedding.weight")[None]
    for part in ("weight", "bias"):
        out[f"visual.pre_norm.{part}"] = take(f"pre_layrnorm.{part}")
    for n in range(CLIP_CONFIG["num_hidden_layers"]):
        src, dst = f"encoder.layers.{n}.", f"visual.transformer.{n}."
        for part in ("weight", "bias"):
            out[dst + f"norm1.{part}"] = take(src + f"layer_norm1.{part}")
            out[dst + f"attn.to_qkv.{part}"] = torch.cat([take(src + f"self_attn.{x}_proj.{part}") for x in "qkv"], 0)
            out[dst + f"attn.proj.{part}"] = take(src + f"self_attn.out_proj.{part}")
            out[dst + f"norm2.{part}"] = take(src + f"layer_norm2.{part}")
            out[dst + f"mlp.0.{part}"] = take(src + f"mlp.fc1.{part}")
            out[dst + f"mlp.2.{part}"] = take(src + f"mlp.fc2.{part}")
    for part in ("weight", "bias"):
        out[f"visual.post_norm.{part}"] = take(f"post_layernorm.{part}")
    assert used == set(sd), sorted(set(sd) - used)
    return collections.OrderedDict((k, v.detach().clone().contiguous()) for k, v in out.items())


def wan_folder(out: Path, dit, clip) -> dict:
    wdir = out / "wan_i2v"
    wdir.mkdir(parents=True)
    sd = {k: v.detach().clone().contiguous() for k, v in dit.state_dict().items()}
    w = pipeline_goldens._bf16(dit_goldens.diffusers_to_wan_state_dict(sd))
    save_tensors(wdir / "diffusion_pytorch_model.safetensors", w, metadata={"format": "pt"})
    wcfg = dit_goldens.wan_config({"model": I2V_DIT, "text_tokens": TEXT_LEN}, "i2v")
    write_json(wdir / "config.json", wcfg)
    clip_sd = {k: v for k, v in clip.state_dict().items() if not k.endswith("position_ids")}
    torch.save(pipeline_goldens._bf16(clip_to_wan(clip_sd)), wdir / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
    for name in ("models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth", "google"):
        os.symlink(f"../../wan_pipeline/wan/{name}", wdir / name)
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    back = convert_wan_transformer_to_diffusers({k: v.float().clone() for k, v in w.items()})
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    return wcfg


def run(versions: dict) -> list[str]:
    import diffusers
    import transformers

    assert (T2V_DIR / "io.safetensors").exists(), "run --only pipeline first (the I2V golden reuses its components)"
    reset_dir(OUT_DIR)
    tmp = Path(tempfile.mkdtemp(prefix="kinema_i2v_tok_"))
    try:
        tok = pipeline_goldens.build_tokenizer(tmp)
        te, _, vae, _ = pipeline_goldens.build_components(tok)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    enc, proc, clip_rules = build_clip()
    dits = {}
    dit_rules = {}
    for i, (kind, cfg) in enumerate((("i2v", I2V_DIT), ("flf2v", FLF2V_DIT))):
        dits[kind], dit_rules[kind] = build_dit(cfg, WEIGHT_SEED + 10 + i)
    bf16_exact(enc, *dits.values())

    make_images(OUT_DIR / "inputs")
    images = {n: load_image(OUT_DIR / "inputs" / n) for n in ("first.png", "last.jpg")}
    for kind in dits:
        write_folder(make_pipe(tok, te, vae, enc, proc, dits[kind], "unipc"), OUT_DIR / kind,
                     None if kind == "i2v" else OUT_DIR / "i2v")
    wcfg = wan_folder(OUT_DIR, dits["i2v"], enc)

    io: dict[str, torch.Tensor] = {}
    stats, cases_json = {}, {}
    for ci, (name, case) in enumerate(CASES.items()):
        pipe = make_pipe(tok, te, vae, enc, proc, dits[case["model"]], case["sampler"])
        first = images[case["image"]]
        w, h = diffusers_target_size(first.width, first.height, case["max_area"])
        lat = randn((1, 16, (case["frames"] - 1) // 4 + 1, h // 8, w // 8), LATENT_SEED + ci)
        case_io, stats[name] = run_case(pipe, name, case, images, lat)
        io.update(case_io)
        cases_json[name] = dict(case, height=h, width=w, shift=pipeline_goldens.SHIFT, negative_prompt_used=(case["negative_prompt"] or "")
                                if case["guidance_scale"] > 1.0 else None,
                                scheduler_config={k: v for k, v in dict(pipeline_goldens.make_scheduler(case["sampler"]).config).items()
                                                  if not k.startswith("_")},
                                tensors={k: {"shape": shape_of(v), "dtype": dtype_name(v)} for k, v in case_io.items()},
                                stats=stats[name])

    # Pillow resizes beyond the pipeline cases: up and down, both filters Kinema implements.
    from PIL import Image

    for fname, key in (("first.png", "png"), ("last.jpg", "jpg")):
        src = images[fname]
        io[f"resize.{key}.decoded"] = torch.from_numpy(np.asarray(src).copy())
        for filt_name, filt in (("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)):
            for w, h in RESIZE_PIL_SIZES:
                io[f"resize.{key}.{filt_name}.{w}x{h}"] = torch.from_numpy(np.asarray(src.resize((w, h), filt)).copy())
    save_tensors(OUT_DIR / "io.safetensors", io, metadata={"producer": "scripts/goldens/make_goldens.py (wan_i2v)"})
    write_json(OUT_DIR / "resize.json", {
        "mod": 16,
        "rows": [{"width": w, "height": h, "max_area": a, "diffusers": list(diffusers_target_size(w, h, a)),
                  "wan": list(wan_target_size(w, h, a))} for w, h, a in RESIZE_TABLE],
        "diffusers_rule": "h = round(sqrt(area * H/W)) // 16 * 16, w = round(sqrt(area * W/H)) // 16 * 16 "
                          "(WanImageToVideoPipeline example; round half to even)",
        "wan_rule": "lat = sqrt(area * ratio) // 8 // 2 * 2, size = lat * 8 (wan/image2video.py)",
    })
    tensor_docs = {
        "<c>.image_decoded / last_image_decoded": "the input file decoded by diffusers.utils.load_image (PIL, RGB) [H, W, 3] U8",
        "<c>.image_resized / last_image_resized": "PIL Image.resize((w, h)) with the default bicubic filter to the target "
                                                  "size of the first image (resize.json diffusers rule) [h, w, 3] U8",
        "<c>.clip_pixel_values": "CLIPImageProcessor(images=[resized first(, resized last)]).pixel_values [N, 3, 56, 56]",
        "<c>.image_embeds": "encode_image: CLIPVisionModel hidden_states[-2] [N, 17, 40] (N = 2 for FLF2V)",
        "(not stored) vae_image": "video_processor.preprocess(resized image) == x / 255 * 2 - 1 [1, 3, h, w] (asserted)",
        "<c>.condition": "prepare_latents' second output: concat(mask [1, 4, T, h/8, w/8], (vae.encode(video).mode - "
                         "mean) * (1 / std) [1, 16, T, ...]) where video = [image, zeros, (last image)] over the frames",
        "<c>.prompt_embeds_rows / negative_prompt_embeds_rows": "encode_prompt's [1, 512, 32] embeddings, the rows of real "
                                                                "tokens only (the rest are exact zeros)",
        "<c>.latents_in": "fixed initial noise passed as latents=",
        "<c>.timesteps": "scheduler.timesteps",
        "<c>.step<i>.noise_cond / noise_uncond": "transformer outputs at step i on cat([latents, condition], dim=1) "
                                                  "(image_embeds in both)",
        "<c>.step<i>.latents": "latents after scheduler.step at step i",
        "<c>.latents_out": "final latents (output_type='latent')",
        "resize.<png|jpg>.decoded / .<bicubic|lanczos>.<w>x<h>": "an input image as PIL decodes it, and PIL "
                                                                  "Image.resize((w, h), BICUBIC | LANCZOS) of it [h, w, 3] U8",
        "<c>.video": "vae.decode(latents_out / (1 / std) + mean) [1, 3, F, h, w] in [-1, 1]",
    }
    write_json(OUT_DIR / "cases.json", {
        "producer": "scripts/goldens/make_goldens.py (i2v_goldens.py)",
        "versions": dict(versions, transformers=transformers.__version__, diffusers=diffusers.__version__),
        "reference": "diffusers.WanImageToVideoPipeline, float32, CPU, one thread, deterministic algorithms",
        "weight_storage": "BF16 files holding bf16-representable values; the reference ran float32 on those values",
        "seeds": {"weights": WEIGHT_SEED, "latents": LATENT_SEED, "images": IMAGE_SEED},
        "weight_init": {"clip": clip_rules, "dit": dit_rules},
        "clip_config": CLIP_CONFIG,
        "dit_configs": {"i2v": I2V_DIT, "flf2v": FLF2V_DIT},
        "wan_i2v_config": wcfg,
        "out_of_scope": "Wan2.2 paths of WanImageToVideoPipeline (expand_timesteps, boundary_ratio / transformer_2)",
        "tensors": tensor_docs,
        "cases": cases_json,
    })

    files = sorted(p for p in OUT_DIR.rglob("*") if p.is_file() and not p.is_symlink()
                   and not any(q.is_symlink() for q in p.relative_to(OUT_DIR).parents if str(q) != "." and (OUT_DIR / q).is_symlink()))
    own = [p for p in files if not any((OUT_DIR / q).is_symlink() for q in p.relative_to(OUT_DIR).parents if str(q) != ".")]
    total = sum(p.stat().st_size for p in own)
    lines = [f"{rel(OUT_DIR)}: {len(own)} files, {total / 1e6:.2f} MB (symlinked T2V components not counted)"]
    for n, s in stats.items():
        lines.append(f"  case {n}: {s}")
    h = hashlib.sha256()
    for p in own:
        h.update(str(p.relative_to(OUT_DIR)).encode() + p.read_bytes())
    lines.append(f"  content sha256: {h.hexdigest()}")
    return lines
