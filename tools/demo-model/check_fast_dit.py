"""Checks that train.py's fast DiT path (fast_dit.py) computes the function WanPipeline computes, and times both.

    python check_fast_dit.py [--ckpt .demo-ckpt/dit.pt] [--batch 4] [--device cpu] [--time-steps 3]

Reference: diffusers' WanTransformer3DModel as loaded (float64 RoPE, diffusers' processors) on the umT5
output zero-padded to 512 tokens, exactly as train.py's Text.embed / WanPipeline build it. Fast: the same
weights through fast_dit.prepare_dit + TextToNoise (compact context with its pad bias, fp32 RMSNorm input,
fp32 RoPE, prompts as token rows). Compares the prediction and the gradients of an MSE loss in fp32 (expect
~1e-6 relative: only summation order differs) and, on CUDA, under bf16 autocast against the fp32 reference
(both paths should show the same bf16-level error). Then times a training step (forward + backward) of each.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fast_dit  # noqa: E402
import train  # noqa: E402
import world  # noqa: E402


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="a dit.pt (default: random weights)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--time-steps", type=int, default=3, help="timed training steps per path (0: skip)")
    parser.add_argument("--smoke", action="store_true", help="train.py's smoke sizes")
    parser.add_argument("--float64", action="store_true", help="compare in float64 (rounding out of the picture)")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = train.SMOKE if args.smoke else train.FULL
    torch.manual_seed(0)
    text = train.Text(device)
    encoder = train.make_text_encoder(cfg, text.tok.get_vocab_size())
    dit = train.make_dit(cfg)
    if args.ckpt:
        state = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        encoder.load_state_dict(state["encoder"])
        dit.load_state_dict(state["dit"])
    dtype = torch.float64 if args.float64 else torch.float32
    encoder, dit = encoder.to(device, dtype).train(), dit.to(device, dtype).train()

    rng = random.Random(1)
    prompts = [world.prompt_for(world.sample_spec(rng), rng) for _ in range(args.batch - 1)] + [""]
    frames, size = cfg["frames"], cfg["size"]
    x = torch.randn(args.batch, 16, (frames - 1) // 4 + 1, size // 8, size // 8, device=device, dtype=dtype)
    target = torch.randn_like(x)
    t = torch.rand(args.batch, device=device, dtype=dtype) * 1000

    def plain(autocast: bool):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            context = text.embed(encoder, prompts)  # [B, 512, D]
            return dit(hidden_states=x, timestep=t, encoder_hidden_states=context, return_dict=False)[0]

    fast_dit_model = None
    rows = fast_dit.TokenRows(text.tok, prompts, device)
    table_width = fast_dit.PromptTable(text.tok, device).max_tokens
    ids = torch.nn.functional.pad(rows.ids, (0, table_width - rows.ids.shape[1]))  # as the table pads them

    def fast(autocast: bool):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            return fast_dit_model(x, t, ids, rows.lengths)

    def run(fn, autocast: bool):
        for p in list(dit.parameters()) + list(encoder.parameters()):
            p.grad = None
        out = fn(autocast)
        torch.nn.functional.mse_loss(out.float(), target).backward()
        grads = {n: p.grad.detach().clone() for n, p in list(dit.named_parameters()) + list(encoder.named_parameters())
                 if p.grad is not None}
        return out.detach().float(), grads

    ref_out, ref_grads = run(plain, False)
    fast_dit.prepare_dit(dit, rope_fp32=not args.float64)
    fast_dit_model = fast_dit.TextToNoise(dit, encoder, compact=True)
    out, grads = run(fast, False)
    worst, worst_name = max((relative(grads[n], ref_grads[n]), n) for n in ref_grads)
    print(f"{dtype}: prediction rel. diff {relative(out, ref_out):.2e}, worst parameter-gradient rel. diff {worst:.2e} ({worst_name}) "
          f"({len(grads)}/{len(ref_grads)} gradients); compact context {fast_dit.compact_width(table_width)} slots for "
          f"prompts of ≤ {table_width} tokens")
    if device.type == "cuda":
        # bf16 autocast: both against the fp32 reference (the plain path needs the unprepared model).
        fast_bf16, _ = run(fast, True)
        dit_plain = train.make_dit(cfg).to(device)
        dit_plain.load_state_dict(dit.state_dict())
        dit_fast = dit
        dit = dit_plain.train()
        plain_bf16, _ = run(plain, True)
        dit = dit_fast
        print(f"bf16 autocast vs fp32 reference: plain {relative(plain_bf16, ref_out):.2e}, fast {relative(fast_bf16, ref_out):.2e}")

    if args.time_steps:
        # Alternating plain / fast steps, min and median of each (shared CPUs are noisy).
        plain_dit = train.make_dit(cfg).to(device)
        plain_dit.load_state_dict(dit.state_dict())
        fast_inner = dit
        autocast = device.type == "cuda"
        times = {"plain": [], "fast": []}
        for repeat in range(args.time_steps + 1):
            for name, fn in (("plain", plain), ("fast", fast)):
                dit = plain_dit.train() if name == "plain" else fast_inner
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                run(fn, autocast)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if repeat:  # the first round warms up
                    times[name].append(time.perf_counter() - start)
        for name, values in times.items():
            values.sort()
            print(f"{name}: forward + backward at batch {args.batch} on {device}: min {values[0] * 1000:.0f} ms, "
                  f"median {values[len(values) // 2] * 1000:.0f} ms ({len(values)} steps)")


if __name__ == "__main__":
    main()
