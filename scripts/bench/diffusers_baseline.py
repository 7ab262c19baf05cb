#!/usr/bin/env python3
"""The diffusers baseline for `kinema bench`: WanTransformer3DModel and AutoencoderKLWan with random weights
of the real Wan2.1 shapes, bf16, on one GPU; CUDA-event timing, warm-up first, median of N.

    python3 scripts/bench/diffusers_baseline.py --shape 1.3b --frames 21 --height 60 --width 104 --json out.json
    python3 scripts/bench/diffusers_baseline.py --vae-only --frames 21 --height 60 --width 104   # VAE decode only

Sizes are latent sizes (81 frames at 480×832 = 21×60×104). Inputs are random, never zeros.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

CONFIGS = {
    "1.3b": dict(num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16, text_dim=4096,
                 freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                 eps=1e-6),
    "14b": dict(num_attention_heads=40, attention_head_dim=128, in_channels=16, out_channels=16, text_dim=4096,
                freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                eps=1e-6),
}


def time_cuda(fn, warmup: int, iterations: int) -> list[float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="1.3b", choices=sorted(CONFIGS))
    ap.add_argument("--frames", type=int, default=21)
    ap.add_argument("--height", type=int, default=60)
    ap.add_argument("--width", type=int, default=104)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--vae", action="store_true", help="also time the VAE decode of the same latents")
    ap.add_argument("--vae-only", action="store_true", help="time only the VAE decode (no DiT)")
    ap.add_argument("--json")
    args = ap.parse_args()

    import diffusers
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    torch.manual_seed(0)
    device = torch.device("cuda")
    latents = torch.randn(1, 16, args.frames, args.height, args.width, device=device, dtype=torch.bfloat16)
    result = {"diffusers": diffusers.__version__, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
              "shape": args.shape, "latent_shape": list(latents.shape)}
    if not args.vae_only:
        t0 = time.time()
        # Built directly in bf16: an f32 14B model (56 GB) and its bf16 copy would not fit an 80 GB card together.
        torch.set_default_dtype(torch.bfloat16)
        with torch.device(device):
            model = WanTransformer3DModel(**CONFIGS[args.shape]).eval()
        torch.set_default_dtype(torch.float32)
        for p in model.parameters():
            p.data.normal_(0, 0.02)
        build = time.time() - t0
        # The peak is counted over the forwards (weights included), as Kinema's bench counts it.
        resident = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        text = torch.randn(1, args.text_tokens, 4096, device=device, dtype=torch.bfloat16)
        timestep = torch.tensor([937.5], device=device)
        with torch.no_grad():
            times = time_cuda(lambda: model(latents, timestep, text, return_dict=False), args.warmup, args.iterations)
        tokens = args.frames * (args.height // 2) * (args.width // 2)
        result.update({"tokens": tokens, "build_s": build, "dit_forward_s": times,
                       "dit_forward_median_s": statistics.median(times),
                       "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                       "resident_gib": resident / 2**30})
        del model
        torch.cuda.empty_cache()
    if args.vae or args.vae_only:
        with torch.device(device):
            vae = AutoencoderKLWan().to(torch.bfloat16).eval()
        for p in vae.parameters():
            p.data.normal_(0, 0.02)
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            vtimes = time_cuda(lambda: vae.decode(latents, return_dict=False), 1, 3)
        result.update({"vae_decode_s": vtimes, "vae_decode_median_s": statistics.median(vtimes),
                       "vae_peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30})
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
