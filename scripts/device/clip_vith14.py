"""Full-size check of Kinema's CLIP vision encoder (GPU machine, or --device cpu): a random-weight ViT-H/14
(Wan2.1 I2V's image encoder shape: 224 px, patch 14, width 1280, 32 layers, 16 heads, MLP 5120, exact
GELU) built by transformers, its hidden_states[-2] computed by transformers in f32 on the same device (TF32
off), against `kinema forward --component image_encoder` in f32 and bf16.

    python3 scripts/device/clip_vith14.py --kinema .device/kinema --work /tmp/clip-vith14 --out $OUT

Prints JSON (also written to $OUT/clip-vith14.json): per precision rel L2, max abs, Kinema load / forward seconds, and the transformers
forward time (median of 5 after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinema", default=".device/kinema")
    ap.add_argument("--work", default="/tmp/clip-vith14")
    ap.add_argument("--out", default="/tmp/kinema-out")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="where both sides run")
    args = ap.parse_args()

    from safetensors.torch import load_file, save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel

    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config = CLIPVisionConfig(
        image_size=224, patch_size=14, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
        num_attention_heads=16, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=1024)
    model = CLIPVisionModel(config).eval()
    # transformers' init leaves LayerNorms at identity and biases at zero; make every tensor matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.normal_(1.0, 0.1)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.02)
    model.save_pretrained(str(work / "image_encoder"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(args.batch, 3, 224, 224, generator=g)
    save_file({"pixel_values": pixel_values}, str(work / "inputs.safetensors"))

    model = model.to(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    with torch.no_grad():
        x = pixel_values.to(args.device)
        reference = model(pixel_values=x, output_hidden_states=True).hidden_states[-2].float().cpu()
        times = []
        for _ in range(6):
            sync()
            t0 = time.perf_counter()
            model(pixel_values=x, output_hidden_states=True)
            sync()
            times.append(time.perf_counter() - t0)
    ref_seconds = float(np.median(times[1:]))
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()

    results = {"device": args.device, "transformers_f32_forward_s": ref_seconds, "shape": list(reference.shape)}
    for precision in ("f32", "bf16"):
        target = work / f"embeds-{precision}.safetensors"
        run = subprocess.run(
            [args.kinema, "forward", "--model", str(work), "--component", "image_encoder", "--inputs",
             str(work / "inputs.safetensors"), "--output", str(target), "--device", args.device, "--precision", precision],
            capture_output=True, text=True)
        (out / f"clip-forward-{precision}.log").write_text(run.stdout + run.stderr)
        if run.returncode != 0:
            results[precision] = {"error": (run.stdout + run.stderr)[-2000:]}
            continue
        actual = load_file(str(target))["image_embeds"].float()
        rel = ((actual - reference).norm() / reference.norm()).item()
        timing = re.search(r"loaded in ([0-9.]+) s, forward in ([0-9.]+) s", run.stdout + run.stderr)
        results[precision] = {
            "rel_l2": rel, "max_abs": (actual - reference).abs().max().item(),
            "load_s": float(timing.group(1)) if timing else None, "forward_s": float(timing.group(2)) if timing else None,
        }
    (out / "clip-vith14.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
