"""Scores the base model's sampling settings on the evaluation cases (analyse.test_cases), on any device.

    python guidance_sweep.py --work .demo-ckpt --guidance 4,2.5,2,1.5 [--steps 20] [--shift 3] [--device cpu]

Uses the checkpoints in --work (dit.pt's EMA weights, vae.pt) and the `evaluate` stage's exact sampling path
(train.sample_base: diffusers UniPC + CFG; the same noise, seed 9000), so its pass rates are comparable with
the training log's `evaluate base` lines. This is how the export's guidance (2) was chosen on 2026-11-27: on the
CPU, 48 cases, guidance 4 / 2.5 / 2 / 1.5 → 39 / 42 / 45 / 43 passing (this script; 4 and 2 re-run after it was written); colour and direction were right
throughout, and a lower guidance drew squares with sharper corners.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import analyse
import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(".demo-ckpt"))
    parser.add_argument("--guidance", default="4,2", help="comma-separated CFG scales")
    parser.add_argument("--steps", type=int, default=None, help="UniPC steps (default: the config's base_steps)")
    parser.add_argument("--shift", type=float, default=None, help="flow shift (default: the config's)")
    parser.add_argument("--cases", type=int, default=48)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    cfg = dict(train.FULL)
    device = torch.device(args.device)
    steps = args.steps or cfg["base_steps"]
    shift = args.shift or cfg["flow_shift"]
    vae = train.load_vae(args.work, cfg, device)
    text = train.Text(device)
    encoder, base, step = train.load_base(args.work, cfg, device, text)
    cases = analyse.test_cases(args.cases)
    gen = torch.Generator(device=device).manual_seed(9000)
    noise = torch.randn(train.latent_shape(cfg, len(cases)), device=device, generator=gen)
    with torch.no_grad(), train.autocast(device):
        cond = text.embed(encoder, [c["prompt"] for c in cases])
        uncond = text.embed(encoder, [""]).expand(len(cases), -1, -1)
    mean = torch.tensor(vae.config.latents_mean, device=device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=device).view(1, -1, 1, 1, 1)
    print(f"base at step {step}, {len(cases)} cases, {steps} UniPC steps, shift {shift}, {device}")
    for guidance in [float(g) for g in args.guidance.split(",")]:
        started = time.time()
        latents = train.sample_base(base, cond, uncond, noise, steps, guidance, shift, device)
        with torch.no_grad(), train.autocast(device):
            video = torch.cat([vae.decode(latents[k:k + 16] * std + mean).sample.float() for k in range(0, len(cases), 16)])
        results = [analyse.check(v, c) for v, c in zip(video.cpu(), cases)]
        count = {key: sum(r[key] for r in results) for key in ["pass", "colour_ok", "direction_ok", "shape_ok"]}
        print(f"guidance {guidance}: {count['pass']}/{len(cases)} pass; colour {count['colour_ok']}, direction "
              f"{count['direction_ok']}, shape {count['shape_ok']} ({time.time() - started:.0f} s)")
        for r, c in zip(results, cases):
            if not r["pass"]:
                print(f"  fail {c['prompt']!r}: fill {r.get('fill', float('nan')):.3f}, direction {r['direction']}, shape {r['shape']}")


if __name__ == "__main__":
    main()
