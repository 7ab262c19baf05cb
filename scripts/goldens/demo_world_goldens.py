"""Demo-world fixtures (Tests/Fixtures/demo_world/): clips rendered by tools/demo-model/world.py with known
colour / shape / direction, what tools/demo-model/analyse.py reads back from them, and the demo tokenizer
with the ids `tokenizers` gives for prompts and odd strings.

  clips.safetensors   "clips" U8 [N, 3, 9, 64, 64] (RGB 0…255; value/127.5 − 1 is the [-1, 1] video)
  cases.json          per clip: prompt, truth (colour, shape, direction), python analysis of the U8 clip
  tokenizer/tokenizer.json, tokenizer/cases.json (strings and their ids)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import torch

from _common import FIXTURES, REPO_ROOT, rel, reset_dir, save_tensors, write_json

sys.path.insert(0, str(REPO_ROOT / "tools" / "demo-model"))
import analyse  # noqa: E402
import tokenizer as demo_tokenizer  # noqa: E402
import world  # noqa: E402

OUT = FIXTURES / "demo_world"
FRAMES, SIZE = 9, 64


def clips():
    rng = random.Random(11)
    picks = [("red", "circle", "right", "slow", "black"), ("blue", "square", "up", "fast", "white"),
             ("yellow", "triangle", "left", "fast", "gray"), ("cyan", "circle", "down", "slow", "dark blue"),
             ("magenta", "square", "left", "slow", "gray"), ("orange", "triangle", "up", "slow", "black"),
             ("white", "circle", "left", "fast", "dark blue"), ("green", "triangle", "down", "fast", "white"),
             ("white", "square", "right", "slow", "black")]
    specs = [world.sample_spec(rng, colour=c, shape=s, direction=d, speed=q, background=b) for c, s, d, q, b in picks]
    video, _ = world.render(specs, FRAMES, SIZE)
    return specs, ((video + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def run(versions: dict) -> list[str]:
    reset_dir(OUT)
    specs, u8 = clips()
    save_tensors(OUT / "clips.safetensors", {"clips": u8})
    cases = []
    for spec, clip in zip(specs, u8):
        found = analyse.analyse(clip.float() / 127.5 - 1)
        truth = dict(colour=spec.colour, shape=spec.shape, direction=spec.direction)
        prompt = world.canonical_prompt(spec.colour, spec.shape, spec.direction, spec.speed, spec.background)
        assert found["colour"] == spec.colour and found["shape"] == spec.shape and found["direction"] == spec.direction, (spec, found)
        cases.append(dict(prompt=prompt, truth=truth, python=dict(
            colour=found["colour"], shape=found["shape"], direction=found["direction"], dx=found["dx"], dy=found["dy"],
            fill=found["fill"], area=found["area"], background=found["background"])))
    write_json(OUT / "cases.json", dict(versions=versions, frames=FRAMES, size=SIZE, cases=cases))
    tok_dir = OUT / "tokenizer"
    tok = demo_tokenizer.write(tok_dir)
    strings = demo_tokenizer.check_cases()
    write_json(tok_dir / "cases.json", dict(strings=strings, ids=[tok.encode(s).ids for s in strings]))
    return [f"{rel(OUT)}: {len(cases)} clips, tokenizer with {tok.get_vocab_size()} pieces and {len(strings)} cases"]


if __name__ == "__main__":
    from _common import check_versions

    for line in run(check_versions()):
        print(line)
