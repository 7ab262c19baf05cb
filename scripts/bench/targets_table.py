#!/usr/bin/env python3
"""Issue 7's target table from one perf.sh output folder: Kinema (k-PART.json, `kinema bench --json`) against
diffusers (d-PART.json, scripts/bench/diffusers_*baseline.py) measured in the same call.

    python3 scripts/bench/targets_table.py OUT_DIR [--gemm-tflops R]

Rows whose files are missing print "not run". Ratios are Kinema time / diffusers time; a target is met when the
ratio is at or under it (and, for the VAE, Kinema's peak device memory is at or under diffusers'). The MFU row
needs the card's measured bf16 GEMM rate (--gemm-tflops, e.g. from `kinema cudnn-probe`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

GIB = 1 << 30


def load(folder: Path, name: str) -> dict | None:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def row(label, ours, theirs, target, unit="s", extra_ok=True, note=""):
    if ours is None or theirs is None:
        return f"| {label} | not run | | | ≤ {target} | |"
    ratio = ours / theirs
    met = "yes" if ratio <= target and extra_ok else "no"
    scale, fmt = (1e3, "{:.1f} ms") if unit == "ms" else (1, "{:.3f} s")
    return (f"| {label} | {fmt.format(ours * scale)} | {fmt.format(theirs * scale)} | {ratio:.3f} | ≤ {target}{note} | {met} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--gemm-tflops", type=float, default=None, help="the card's measured bf16 GEMM rate")
    args = parser.parse_args()
    f = args.folder

    def forward(part):
        k, d = load(f, f"k-{part}.json"), load(f, f"d-{part}.json")
        return (k or {}).get("medianSeconds"), (d or {}).get("dit_forward_median_s"), k

    lines = ["| work | Kinema | diffusers | ratio | target | met |", "|---|---|---|---|---|---|"]
    k13, d13, _ = forward("dit13")
    lines.append(row("Wan2.1 1.3B DiT forward, 480×832×81", k13, d13, 0.65))
    k14, d14, k14json = forward("dit14")
    lines.append(row("Wan2.1 14B DiT forward, 480×832×81", k14, d14, 0.70))
    k720, d720, _ = forward("dit14-720")
    lines.append(row("Wan2.1 14B DiT forward, 720×1280×81", k720, d720, 0.70))

    kv, dv = load(f, "k-vae.json"), load(f, "d-vae.json")
    if kv and dv and "medianSeconds" in kv and "vae_decode_median_s" in dv:
        # A missing peak (the JSON omits nil fields) counts as not met: the target is time and memory.
        ours_peak = kv["peakDeviceBytes"] / GIB if "peakDeviceBytes" in kv else None
        theirs_peak = dv.get("vae_peak_memory_gib")
        known = ours_peak is not None and theirs_peak is not None
        lines.append(row("Wan VAE decode, 21 → 81 frames at 480×832", kv["medianSeconds"], dv["vae_decode_median_s"], 0.50,
                         extra_ok=known and ours_peak <= theirs_peak,
                         note=f", peak {ours_peak:.2f} vs {theirs_peak:.2f} GiB" if known else ", peak not reported"))
    else:
        lines.append(row("Wan VAE decode, 21 → 81 frames at 480×832", None, None, 0.50))

    kp, dp = load(f, "k-pipe.json"), load(f, "d-pipe.json")
    lines.append(row("umT5-XXL encode, 512 tokens", (kp or {}).get("textEncodeMedianSeconds"),
                     (dp or {}).get("umt5_encode_median_s"), 0.8, unit="ms"))
    lines.append(row("4-step text-to-video, 1.3B shapes, whole pipeline", (kp or {}).get("medianSeconds"),
                     (dp or {}).get("pipeline_median_s"), 0.6))

    if k14json and "achievedGFLOPS" in k14json and args.gemm_tflops:
        achieved = k14json["achievedGFLOPS"] / 1e3
        share = achieved / args.gemm_tflops
        lines.append(f"| 14B forward MFU | {achieved:.0f} TFLOP/s | card {args.gemm_tflops:.0f} TFLOP/s | {share:.0%} | ≥ 60% | "
                     f"{'yes' if share >= 0.60 else 'no'} |")
    else:
        lines.append("| 14B forward MFU | not run (needs dit14 and --gemm-tflops) | | | ≥ 60% | |")
    gpu = next((d.get("gpu") for d in (load(f, n) for n in ["d-dit13.json", "d-vae.json", "d-pipe.json", "d-dit14.json"]) if d), None)
    print(f"Issue 7 targets, {gpu or 'GPU unknown'}, Kinema and diffusers in the same call:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
