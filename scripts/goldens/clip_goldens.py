"""CLIP vision encoder goldens (Wan2.1 image-to-video's image encoder).

Writes Tests/Fixtures/clip/:

* `image_encoder/` — a tiny random-weight transformers `CLIPVisionModel` as a diffusers Wan I2V folder
  holds it (config.json + model.safetensors). The tensor names carry the `vision_model.` prefix that
  transformers 4.x wrote (the published Wan2.1 I2V diffusers folders have it); transformers 5 reads
  them back, and the reloaded model is checked to give identical outputs.
* `wan/models_clip.pth` — the same weights under Wan's original open-clip names (wan/modules/clip.py
  XLMRobertaCLIP: `visual.*`, with q/k/v fused into `to_qkv`), plus a random `visual.head`, a few fake
  `textual.*` tensors and `log_scale` (which the encoder must ignore), written by torch.save.
* `io.safetensors` — pixel values, stage taps and `hidden_states[-2]` (what diffusers'
  WanImageToVideoPipeline.encode_image returns), and the preprocessing cases.
* `small.png`, `large.png` — the images of the preprocessing cases; `manifest.json`.

The Wan-layout file is checked against an independent plain-torch forward that follows clip.py's
VisionTransformer.forward(x, use_31_block=True). Expected values come from transformers / Pillow / torch.
"""

from __future__ import annotations

import collections
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from _common import FIXTURES, generator, rel, reset_dir, save_tensors, write_json

CLIP_DIR = FIXTURES / "clip"
SEED = 6000

CONFIG = dict(
    image_size=56,
    patch_size=14,
    num_channels=3,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    hidden_act="gelu",  # Wan's ViT-H/14: exact GELU (transformers' default would be quick_gelu)
    layer_norm_eps=1e-5,
    attention_dropout=0.0,
)
HEAD_OUT = 24  # Wan's `visual.head` [W, out_dim] (unused for the penultimate states)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _randomize(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            noise = torch.randn(p.shape, generator=generator(SEED + 17 * i))
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                p.copy_((1 + 0.1 * noise) if name.endswith("weight") else 0.05 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            elif "class_embedding" in name or "position_embedding" in name:
                p.copy_(0.5 * noise)
            else:
                fan_in = p[0].numel()
                p.copy_(noise / math.sqrt(fan_in))


def _hf_to_wan(sd: dict, width: int) -> "collections.OrderedDict[str, torch.Tensor]":
    """transformers CLIPVisionModel state dict → Wan clip.py XLMRobertaCLIP `visual.*` names."""
    out = collections.OrderedDict()
    out["visual.patch_embedding.weight"] = sd["embeddings.patch_embedding.weight"]
    out["visual.cls_embedding"] = sd["embeddings.class_embedding"].view(1, 1, width)
    out["visual.pos_embedding"] = sd["embeddings.position_embedding.weight"].unsqueeze(0)
    for part in ("weight", "bias"):
        out[f"visual.pre_norm.{part}"] = sd[f"pre_layrnorm.{part}"]
    for n in range(CONFIG["num_hidden_layers"]):
        s, d = f"encoder.layers.{n}.", f"visual.transformer.{n}."
        for part in ("weight", "bias"):
            out[d + f"norm1.{part}"] = sd[s + f"layer_norm1.{part}"]
            # Wan's SelfAttention: to_qkv(x).view(b, s, 3, n, d) → rows q | k | v.
            out[d + f"attn.to_qkv.{part}"] = torch.cat(
                [sd[s + f"self_attn.{p}_proj.{part}"] for p in ("q", "k", "v")], dim=0)
            out[d + f"attn.proj.{part}"] = sd[s + f"self_attn.out_proj.{part}"]
            out[d + f"norm2.{part}"] = sd[s + f"layer_norm2.{part}"]
            out[d + f"mlp.0.{part}"] = sd[s + f"mlp.fc1.{part}"]
            out[d + f"mlp.2.{part}"] = sd[s + f"mlp.fc2.{part}"]
    for part in ("weight", "bias"):
        out[f"visual.post_norm.{part}"] = sd[f"post_layernorm.{part}"]
    out["visual.head"] = torch.randn(width, HEAD_OUT, generator=generator(SEED + 900)) / math.sqrt(width)
    # Stand-ins for the XLM-RoBERTa text tower and the logit scale that share Wan's file.
    g = generator(SEED + 901)
    out["textual.token_embedding.weight"] = torch.randn(11, 8, generator=g)
    out["textual.blocks.0.attn.q.weight"] = torch.randn(8, 8, generator=g)
    out["textual.head.0.weight"] = torch.randn(6, 8, generator=g)
    out["log_scale"] = torch.tensor(math.log(1 / 0.07))
    return collections.OrderedDict((k, v.detach().clone().contiguous()) for k, v in out.items())


def _wan_visual_31(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """Plain-torch forward following Wan's clip.py VisionTransformer.forward(x, use_31_block=True) on
    the `visual.*` weights: conv patch embedding (no bias), [cls; patches] + pos, pre_norm, every block but
    the last (pre-LN, fused qkv, exact GELU), no post_norm."""
    eps = CONFIG["layer_norm_eps"]
    heads = CONFIG["num_attention_heads"]
    p = CONFIG["patch_size"]
    b = x.size(0)
    x = F.conv2d(x, sd["visual.patch_embedding.weight"], stride=p).flatten(2).permute(0, 2, 1)
    x = torch.cat([sd["visual.cls_embedding"].expand(b, -1, -1), x], dim=1) + sd["visual.pos_embedding"]

    def norm(t, name):
        return F.layer_norm(t.float(), t.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], eps)

    x = norm(x, "visual.pre_norm")
    for n in range(CONFIG["num_hidden_layers"] - 1):  # transformer[:-1]
        pre = f"visual.transformer.{n}."
        h = norm(x, pre + "norm1")
        s, c = h.shape[1], h.shape[2]
        q, k, v = F.linear(h, sd[pre + "attn.to_qkv.weight"], sd[pre + "attn.to_qkv.bias"]).view(b, s, 3, heads, c // heads).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + F.linear(a.transpose(1, 2).reshape(b, s, c), sd[pre + "attn.proj.weight"], sd[pre + "attn.proj.bias"])
        h = norm(x, pre + "norm2")
        h = F.gelu(F.linear(h, sd[pre + "mlp.0.weight"], sd[pre + "mlp.0.bias"]))
        x = x + F.linear(h, sd[pre + "mlp.2.weight"], sd[pre + "mlp.2.bias"])
    return x


def _image(width: int, height: int, seed: int):
    """A smooth colour pattern with noise and a few hard edges (exercises over/undershoot clamping)."""
    from PIL import Image

    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    gch = 255 * xx / max(width - 1, 1)
    bch = np.where((xx // 9 + yy // 7) % 2 == 0, 250.0, 5.0)
    img = np.stack([r, gch, bch], axis=-1) + g.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), mode="RGB")


def _wan_preprocess(img, size: int) -> torch.Tensor:
    """Wan: TF.to_tensor(img).sub_(0.5).div_(0.5) (image2video.py), then clip.py CLIPModel.visual:
    F.interpolate bicubic to size×size, ·0.5 + 0.5, T.Normalize(mean, std)."""
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255).sub_(0.5).div_(0.5)
    t = F.interpolate(t[None], size=(size, size), mode="bicubic", align_corners=False)
    t = t.mul_(0.5).add_(0.5)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(-1, 1, 1)
    return (t - mean) / std


def run(versions: dict) -> list[str]:
    import PIL
    import transformers
    from PIL import Image
    from safetensors.torch import load_file, save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel
    from transformers import CLIPImageProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    t0 = time.time()
    reset_dir(CLIP_DIR)
    model = CLIPVisionModel(CLIPVisionConfig(**CONFIG)).eval()
    _randomize(model)
    width = CONFIG["hidden_size"]

    pixel_values = torch.randn(2, 3, CONFIG["image_size"], CONFIG["image_size"], generator=generator(SEED + 1))
    with torch.no_grad():
        out = model(pixel_values=pixel_values, output_hidden_states=True)
    hidden = out.hidden_states
    assert len(hidden) == CONFIG["num_hidden_layers"] + 1, len(hidden)
    penultimate = hidden[-2]
    # The checks below must be able to tell the penultimate states from the final ones.
    assert not torch.allclose(penultimate, hidden[-1], atol=1e-3)

    # diffusers folder: config.json + model.safetensors with transformers-4.x `vision_model.` names.
    enc_dir = CLIP_DIR / "image_encoder"
    model.save_pretrained(str(enc_dir), safe_serialization=True)
    saved = load_file(str(enc_dir / "model.safetensors"))
    assert not any(k.startswith("vision_model.") for k in saved), "transformers now writes the prefix itself?"
    save_file({"vision_model." + k: v.contiguous() for k, v in sorted(saved.items())}, str(enc_dir / "model.safetensors"),
              metadata={"format": "pt"})
    reloaded = CLIPVisionModel.from_pretrained(str(enc_dir)).eval()
    with torch.no_grad():
        again = reloaded(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-2]
    assert torch.equal(again, penultimate), "the vision_model.-prefixed file does not reload to the same model"

    # Wan layout, checked with an independent forward that follows clip.py.
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    wan_sd = _hf_to_wan(sd, width)
    (CLIP_DIR / "wan").mkdir(parents=True, exist_ok=True)
    torch.save(wan_sd, str(CLIP_DIR / "wan" / "models_clip.pth"))
    with torch.no_grad():
        wan_out = _wan_visual_31(wan_sd, pixel_values)
    wan_diff = (wan_out - penultimate).abs().max().item()
    assert wan_diff <= 1e-5 * max(1.0, penultimate.abs().max().item()), f"Wan-semantics forward differs by {wan_diff}"

    # Preprocessing. diffusers' pipeline calls `image_processor(images=image, return_tensors="pt")`; with
    # no torchvision installed transformers 5 resolves CLIPImageProcessor to the PIL backend.
    # The manifest records which class that is (image_processor_class).
    small = _image(40, 30, SEED + 2)  # upscaled (short edge 30 → 56 / 224)
    large = _image(97, 83, SEED + 3)  # downscaled (short edge 83 → 56), odd sizes: odd crop offsets
    small.save(CLIP_DIR / "small.png", optimize=False)
    large.save(CLIP_DIR / "large.png", optimize=False)
    small, large = Image.open(CLIP_DIR / "small.png"), Image.open(CLIP_DIR / "large.png")
    default_proc = CLIPImageProcessorPil()  # Wan's preprocessor_config.json: the defaults (224, bicubic, CLIP mean/std)
    proc56 = CLIPImageProcessorPil(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    pp = {
        "pp.hf224.small": default_proc(images=small, return_tensors="pt")["pixel_values"],
        "pp.hf56.small": proc56(images=small, return_tensors="pt")["pixel_values"],
        "pp.hf56.large": proc56(images=large, return_tensors="pt")["pixel_values"],
        "pp.wan56.small": _wan_preprocess(small, 56),
        "pp.wan56.large": _wan_preprocess(large, 56),
        # Pillow's bicubic resize alone (short edge → 56), H×W×3 uint8, for pinpointing resampler differences.
        "resize56.small": torch.from_numpy(np.array(small.resize((74, 56), Image.BICUBIC))),
        "resize56.large": torch.from_numpy(np.array(large.resize((65, 56), Image.BICUBIC))),
    }
    # The processor's resize size is what the Swift side computes: int(56 · long / short).
    assert int(56 * 40 / 30) == 74 and int(56 * 97 / 83) == 65

    tensors = {
        "pixel_values": pixel_values,
        "tap.embeddings": hidden[0],
        "tap.block0": hidden[1],
        "hidden_states_penultimate": penultimate,
        **pp,
    }
    save_tensors(CLIP_DIR / "io.safetensors", tensors)
    write_json(CLIP_DIR / "manifest.json", {
        "versions": {**versions, "transformers": transformers.__version__, "pillow": PIL.__version__},
        "config": CONFIG,
        "seed": SEED,
        "wan_head_out_dim": HEAD_OUT,
        "image_processor_class": f"{CLIPImageProcessor.__module__}.{CLIPImageProcessor.__name__}",
        "wan_vs_transformers_max_abs": wan_diff,
        "tensors": {
            "pixel_values": "[2, 3, 56, 56] standard normal (already 'normalized' CLIP input)",
            "tap.embeddings": "hidden_states[0]: embeddings after pre_layrnorm [2, 17, 32]",
            "tap.block0": "hidden_states[1]: after encoder layer 0 [2, 17, 32]",
            "hidden_states_penultimate": "hidden_states[-2] (after layer 2 of 4; = Wan visual(use_31_block=True)) [2, 17, 32]",
            "pp.hf224.small": "CLIPImageProcessorPil() defaults on small.png (40x30): short edge 224, crop 224",
            "pp.hf56.*": "CLIPImageProcessorPil(size={shortest_edge: 56}, crop 56) on small.png / large.png (97x83)",
            "pp.wan56.*": "Wan clip.py preprocessing (F.interpolate bicubic of the [-1,1] tensor to 56x56, CLIP normalize)",
            "resize56.*": "Pillow Image.resize(short edge 56, BICUBIC) as H x W x 3 uint8",
        },
    })
    size = sum(p.stat().st_size for p in CLIP_DIR.rglob("*") if p.is_file())
    return [f"clip: {rel(CLIP_DIR)} ({size / 1e3:.0f} kB), Wan-forward max diff {wan_diff:.2e}, took {time.time() - t0:.1f}s"]
