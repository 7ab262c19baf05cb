#!/usr/bin/env python3
"""Generate Kinema's reference fixtures under Tests/Fixtures/.

    /opt/refenv/bin/python scripts/goldens/make_goldens.py [--only FAMILY]
    /opt/refenv/bin/python scripts/goldens/make_goldens.py [--only dit|ops|convert|schedulers|video]
    /opt/refenv/bin/python scripts/goldens/make_goldens.py [--only dit|ops|convert|tokenizer]

Expected values come from the pinned reference stack (diffusers 0.42.1,
torch 2.15.x) on CPU in float32 (plus a few bf16 op results). See README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FIXTURES, check_versions, rel, set_determinism  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["dit", "ops", "convert", "vae", "umt5", "schedulers", "video", "tokenizer", "pipeline", "image", "clip", "i2v", "demo_world", "prompts"], help="generate only one fixture family")
    args = ap.parse_args()

    versions = check_versions()
    set_determinism()

    t0 = time.time()
    lines: list[str] = []
    if args.only in (None, "dit"):
        import dit_goldens

        lines += dit_goldens.run(versions)
    if args.only in (None, "ops"):
        import op_goldens

        lines += op_goldens.run(versions)
    if args.only in (None, "convert"):
        import convert_goldens

        lines += convert_goldens.run(versions)
    if args.only in (None, "vae"):
        import vae_goldens

        lines += vae_goldens.run(versions)
    if args.only in (None, "umt5"):
        import umt5_goldens
        lines += umt5_goldens.run(versions)
    if args.only in (None, "schedulers"):
        import scheduler_goldens
        lines += scheduler_goldens.run(versions)
    if args.only in (None, "video"):
        import video_goldens
        lines += video_goldens.run(versions)
    if args.only in (None, "tokenizer"):
        import tokenizer_goldens
        lines += tokenizer_goldens.run(versions)
    if args.only in (None, "pipeline"):
        import pipeline_goldens
        lines += pipeline_goldens.run(versions)
    if args.only in (None, "image"):
        import image_goldens
        lines += image_goldens.run(versions)
    if args.only in (None, "clip"):
        import clip_goldens
        lines += clip_goldens.run(versions)
    if args.only in (None, "i2v"):
        import i2v_goldens  # after "pipeline": reuses its text encoder, tokenizer and VAE
        lines += i2v_goldens.run(versions)
    if args.only in (None, "demo_world"):
        import demo_world_goldens
        lines += demo_world_goldens.run(versions)
    if args.only in (None, "prompts"):
        import prompt_goldens
        lines += prompt_goldens.run(versions)

    import fixtures_readme

    fixtures_readme.write()
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    for line in lines:
        print(line)
    print(f"total size of {rel(FIXTURES)}: {total / 1e6:.2f} MB; took {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
