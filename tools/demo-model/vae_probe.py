"""Small CPU runs of train.py's `vae` stage, for diagnosing the VAE's training at reduced sizes.

    /opt/refenv/bin/python tools/demo-model/vae_probe.py --size 32 --frames 9 --base-dim 8 --seconds 300 \\
        --set vae_image_batch=16 --set vae_batch=4 --set vae_eval_every=50

Runs stage_vae exactly as train.py does (same loop, same loss, same phases), with the world rendered at
--size × --size and --frames frames (training clips and the evaluation clips alike) and the VAE's base width
set by --base-dim. Logs the periodic full-length-clip PSNR (whole frame and on the object).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=9, help="clip length (4k + 1) for training clips and evaluation")
    parser.add_argument("--base-dim", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = dict(train.FULL, size=args.size, frames=args.frames, vae_frames=args.frames, stats_clips=16,
               vae=dict(train.FULL["vae"], base_dim=args.base_dim))
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg or isinstance(cfg[key], (dict, list)):
            raise SystemExit(f"--set {item}: unknown numeric setting")
        cfg[key] = type(cfg[key])(float(value)) if isinstance(cfg[key], int) else float(value)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as work:
        run = argparse.Namespace(work=Path(work), force=True, smoke=False, max_steps=args.max_steps)
        train.log(f"probe: size {args.size}, frames {args.frames}, base_dim {args.base_dim}, {args.seconds:.0f} s; "
                  + ", ".join(f"{k}={cfg[k]}" for k in sorted(cfg) if k.startswith("vae_")))
        train.stage_vae(run, cfg, torch.device("cpu"), train.Budget(args.seconds))


if __name__ == "__main__":
    main()
