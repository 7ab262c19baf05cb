"""Frame analysis for the demo model's meaning check (the Python twin of Kinema's Swift DemoFrameAnalyser,
used while training to report pass rates on the GPU).

For a clip [3, T, H, W] in [-1, 1]: background = median colour of the frame border; foreground mask =
pixels farther than 0.3 (RGB in [0, 1]) from it; colour = the palette colour nearest to the mean of the
clearly-foreground pixels; direction = centroid displacement between the first and last frames (must
exceed 8% of the frame along the prompted axis and dominate the other axis); shape = mask area over its
bounding-box area (square ≈ 1, circle ≈ π/4, triangle ≈ 1/2).
"""

from __future__ import annotations

import torch

import world


def test_cases(count: int = 48) -> list[dict]:
    """A fixed, balanced list: every colour, shape and direction; both speeds; some named backgrounds."""
    colours, shapes, dirs = list(world.COLOURS), list(world.SHAPES), list(world.DIRECTIONS)
    backgrounds = [None, None, "black", "white", "gray", "dark blue"]
    cases = []
    k = 0
    while len(cases) < count:
        colour, shape, d = colours[k % 8], shapes[k % 3], dirs[(k // 2) % 4]
        speed = "fast" if k % 5 == 4 else "slow"
        bg = backgrounds[k % len(backgrounds)]
        k += 1
        if bg is not None and not world.allowed(colour, bg):
            bg = None
        cases.append(dict(prompt=world.canonical_prompt(colour, shape, d, speed, bg), colour=colour, shape=shape,
                          direction=d, seed=k))
    return cases


def analyse(video: torch.Tensor) -> dict:
    rgb = ((video.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0)  # [T, H, W, 3]
    t, h, w, _ = rgb.shape
    border = torch.cat([rgb[:, 0], rgb[:, -1], rgb[:, :, 0], rgb[:, :, -1]], dim=1).reshape(-1, 3)
    background = border.median(dim=0).values
    dist = (rgb - background).norm(dim=-1)  # [T, H, W]
    mask = dist > 0.3
    strong = dist > 0.5
    out = dict(background=background.tolist(), area=mask.float().sum(dim=(1, 2)).mean().item())
    if strong.sum() == 0 or mask.sum(dim=(1, 2)).min() == 0:
        return dict(out, colour=None, direction=None, shape=None)
    mean_colour = rgb[strong].mean(dim=0)
    names = list(world.COLOURS)
    palette = torch.tensor([world.COLOURS[n] for n in names])
    out["colour"] = names[int((palette - mean_colour).norm(dim=-1).argmin())]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    m = mask.float()
    area = m.sum(dim=(1, 2))
    cx, cy = (m * xs).sum(dim=(1, 2)) / area, (m * ys).sum(dim=(1, 2)) / area
    k = max(1, t // 6)
    dx = (cx[-k:].mean() - cx[:k].mean()).item() / w
    dy = (cy[-k:].mean() - cy[:k].mean()).item() / h
    out.update(dx=dx, dy=dy)
    direction = None
    if max(abs(dx), abs(dy)) > 0.08:
        if abs(dx) > 2 * abs(dy):
            direction = "right" if dx > 0 else "left"
        elif abs(dy) > 2 * abs(dx):
            direction = "down" if dy > 0 else "up"
    out["direction"] = direction
    fills = []
    for f in range(t):
        rows, cols = mask[f].any(dim=1).nonzero(), mask[f].any(dim=0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        fills.append(mask[f].sum().item() / box.item())
    fill = sorted(fills)[len(fills) // 2]
    out["fill"] = fill
    out["shape"] = "square" if fill > 0.89 else ("triangle" if fill < 0.64 else "circle")
    return out


def check(video: torch.Tensor, case: dict) -> dict:
    found = analyse(video)
    result = dict(found, colour_ok=found["colour"] == case["colour"], direction_ok=found["direction"] == case["direction"],
                  shape_ok=found["shape"] == case["shape"])
    result["pass"] = result["colour_ok"] and result["direction_ok"] and result["shape_ok"]
    return result


if __name__ == "__main__":
    # Ground truth: rendered clips must pass their own checks.
    import random

    cases = test_cases(96)
    rng = random.Random(0)
    specs = [world.sample_spec(rng, colour=c["colour"], shape=c["shape"], direction=c["direction"],
                               speed="fast" if "quickly" in c["prompt"] else "slow") for c in cases]
    video, _ = world.render(specs)
    results = [check(v, c) for v, c in zip(video, cases)]
    print(f"{sum(r['pass'] for r in results)}/{len(results)} rendered clips pass")
    for r, c in zip(results, cases):
        if not r["pass"]:
            print(c["prompt"], r)
