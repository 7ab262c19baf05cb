"""A synthetic video world for Kinema's demo model: one coloured shape moving on a plain background.

Clips are rendered from a small set of attributes (colour, shape, direction, speed, background, start
position, size) with anti-aliased signed-distance shapes, batched in torch on any device, fully determined
by a seed. Each clip comes with a prompt in one of a few paraphrases ("a red circle moving right",
"a blue square moving up on a white background", "a yellow triangle moving left quickly").

Tensors: video [B, 3, T, H, W] in [-1, 1] (diffusers / Kinema layout), mask [B, 1, T, H, W] in [0, 1].
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

# Object colours: corners and mid-points of the RGB cube that stay far apart (≥ 0.5 in every pair, ≥ 0.71
# from every allowed background). Values in [0, 1].
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 0.8, 0.0),
    "blue": (0.0, 0.25, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "orange": (1.0, 0.5, 0.0),
    "white": (1.0, 1.0, 1.0),
}
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.0, 0.0, 0.0),
    "white": (1.0, 1.0, 1.0),
    "gray": (0.5, 0.5, 0.5),
    "dark blue": (0.05, 0.05, 0.3),
}
SHAPES = ("circle", "square", "triangle")
# Unit direction in image coordinates (x to the right, y downwards).
DIRECTIONS: dict[str, tuple[float, float]] = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
SPEEDS = ("slow", "fast")
# Displacement over the whole clip as a fraction of the frame size.
TRAVEL = {"slow": 0.25, "fast": 0.5}
# Object "radius" range as a fraction of the frame size (the circle's radius; square and triangle are
# scaled to a similar area).
RADIUS = (0.085, 0.12)
MARGIN = 0.03

FRAMES = 17
SIZE = 128


def min_colour_background_distance() -> float:
    return min(
        math.dist(c, b) for name, c in COLOURS.items() for bname, b in BACKGROUNDS.items() if allowed(name, bname)
    )


def allowed(colour: str, background: str) -> bool:
    """Combinations that are never rendered: an object the colour of (or too close to) its background, and
    a blue object on the dark blue background (distinct pixels, but a confusing prompt)."""
    if (colour, background) == ("blue", "dark blue"):
        return False
    return math.dist(COLOURS[colour], BACKGROUNDS[background]) >= 0.6


@dataclass(frozen=True)
class ClipSpec:
    colour: str
    shape: str
    direction: str
    speed: str
    background: str
    # Centre at the first frame and radius, as fractions of the frame size.
    x0: float
    y0: float
    radius: float


def sample_spec(rng: random.Random, colour=None, shape=None, direction=None, speed=None, background=None) -> ClipSpec:
    """Draws a clip; given attributes are kept. The start is placed so the shape stays inside the frame."""
    colour = colour or rng.choice(list(COLOURS))
    shape = shape or rng.choice(SHAPES)
    direction = direction or rng.choice(list(DIRECTIONS))
    speed = speed or rng.choice(SPEEDS)
    if background is None:
        background = rng.choice([b for b in BACKGROUNDS if allowed(colour, b)])
    if not allowed(colour, background):
        raise ValueError(f"a {colour} object on a {background} background is not part of this world")
    radius = rng.uniform(*RADIUS)
    dx, dy = DIRECTIONS[direction]
    travel = TRAVEL[speed]
    extent = radius * 1.1 + MARGIN  # the triangle reaches slightly beyond `radius`

    def start(d: float) -> float:
        if d == 0:
            return rng.uniform(extent, 1 - extent)
        lo, hi = extent, 1 - extent - travel  # the span that leaves room for the whole travel
        p = rng.uniform(lo, hi)
        return p if d > 0 else 1 - p

    return ClipSpec(colour, shape, direction, speed, background, start(dx), start(dy), radius)


# Prompt paraphrases. {a} = "a"/"an", {c} colour, {s} shape, {d} direction, {q} speed adverb, {b} background.
TEMPLATES = (
    "{a} {c} {s} moving {d}{q}{b}",
    "{a} {c} {s} moving {d}{q}{b}",
    "{a} {c} {s} that moves {d}{q}{b}",
    "{c} {s} moving {d}{q}{b}",
    "{a} {c} {s} going {d}{q}{b}",
)
FAST_WORDS = (" quickly", " fast")
SLOW_WORDS = ("", "", " slowly")
BACKGROUND_FORMS = (" on a {b} background", " on a {b} background", " over a {b} background")


def prompt_for(spec: ClipSpec, rng: random.Random, mention_background: float = 0.6) -> str:
    """A paraphrase that names colour, shape, direction and (if fast) speed; the background sometimes."""
    template = rng.choice(TEMPLATES)
    q = rng.choice(FAST_WORDS if spec.speed == "fast" else SLOW_WORDS)
    b = rng.choice(BACKGROUND_FORMS).format(b=spec.background) if rng.random() < mention_background else ""
    article = "an" if spec.colour[0] in "aeiou" else "a"
    text = template.format(a=article, c=spec.colour, s=spec.shape, d=spec.direction, q=q, b=b)
    if rng.random() < 0.1:
        text = text[0].upper() + text[1:]
    return text


def prompt_choices(colour: str, shape: str, direction: str, speed: str, background: str,
                   mention_background: float = 0.6) -> dict[str, float]:
    """Every prompt prompt_for can return for these attributes, with its probability: the same draws
    (template, speed word, background form or none, capitalised first letter) enumerated instead of sampled.
    train.py samples prompts on the GPU from this table."""
    article = "an" if colour[0] in "aeiou" else "a"
    speed_words = FAST_WORDS if speed == "fast" else SLOW_WORDS
    background_parts = [(form.format(b=background), mention_background / len(BACKGROUND_FORMS)) for form in BACKGROUND_FORMS]
    background_parts.append(("", 1 - mention_background))
    out: dict[str, float] = {}
    for template in TEMPLATES:
        for q in speed_words:
            for b, p_background in background_parts:
                text = template.format(a=article, c=colour, s=shape, d=direction, q=q, b=b)
                p = p_background / (len(TEMPLATES) * len(speed_words))
                for variant, p_case in ((text, 0.9), (text[0].upper() + text[1:], 0.1)):
                    out[variant] = out.get(variant, 0.0) + p * p_case
    return out


def attribute_combos() -> list[tuple[str, str, str, str, str]]:
    """(colour, shape, direction, speed, background) of every clip kind the world renders."""
    return [(c, s, d, v, b) for c in COLOURS for s in SHAPES for d in DIRECTIONS for v in SPEEDS for b in BACKGROUNDS
            if allowed(c, b)]


def canonical_prompt(colour: str, shape: str, direction: str, speed: str = "slow", background: str | None = None) -> str:
    """The plain form used by tests and examples."""
    article = "an" if colour[0] in "aeiou" else "a"
    text = f"{article} {colour} {shape} moving {direction}" + (" quickly" if speed == "fast" else "")
    return text + (f" on a {background} background" if background else "")


def corpus_words() -> list[str]:
    """Every prompt shape the world produces (for the tokenizer), one line per combination and paraphrase."""
    lines = []
    for colour in COLOURS:
        for shape in SHAPES:
            for d in DIRECTIONS:
                article = "an" if colour[0] in "aeiou" else "a"
                for template in TEMPLATES[2:] + TEMPLATES[:1]:
                    for q in FAST_WORDS + SLOW_WORDS[2:] + ("",):
                        for b in [""] + [f.format(b=bg) for f in BACKGROUND_FORMS[1:] for bg in BACKGROUNDS]:
                            text = template.format(a=article, c=colour, s=shape, d=d, q=q, b=b)
                            lines.append(text)
                            lines.append(text[0].upper() + text[1:])
    return lines


def _sdf(shape: str, px: torch.Tensor, py: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Signed distance (in pixels, negative inside) of a shape centred at the origin.

    px, py: pixel offsets from the centre [N, T, H, W]; radius [N, 1, 1, 1] in pixels.
    """
    if shape == "circle":
        return torch.sqrt(px * px + py * py) - radius
    if shape == "square":
        half = radius * 0.886  # same area as the circle: (2h)² = πr²
        qx, qy = px.abs() - half, py.abs() - half
        outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
        return outside + torch.maximum(qx, qy).clamp(max=0)
    if shape == "triangle":
        # Equilateral, pointing up, centroid at the origin, circumradius R (area ≈ 1.3·R² ≈ 1.1·πr²·…).
        R = radius * 1.35
        # Three half-planes; the max of their signed distances is the polygon's SDF inside and a close
        # enough bound outside (anti-aliasing only uses |d| < 1 px).
        d = None
        for k in range(3):
            angle = math.pi / 2 + 2 * math.pi * k / 3 + math.pi / 3  # outward normals of the three edges
            nx, ny = math.cos(angle), -math.sin(angle)
            plane = px * nx + py * ny - R * 0.5
            d = plane if d is None else torch.maximum(d, plane)
        return d
    raise ValueError(f"unknown shape {shape}")


def render(specs: list[ClipSpec], frames: int = FRAMES, size: int = SIZE, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Renders clips: (video [B, 3, T, H, W] in [-1, 1], mask [B, 1, T, H, W] coverage in [0, 1])."""
    n = len(specs)
    dev = torch.device(device)
    t = torch.linspace(0, 1, frames, device=dev).view(1, frames, 1, 1)
    coords = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    gy, gx = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)

    def column(values):
        return torch.tensor(values, device=dev, dtype=torch.float32).view(n, 1, 1, 1)

    x0 = column([s.x0 for s in specs]) * size
    y0 = column([s.y0 for s in specs]) * size
    dx = column([DIRECTIONS[s.direction][0] * TRAVEL[s.speed] for s in specs]) * size
    dy = column([DIRECTIONS[s.direction][1] * TRAVEL[s.speed] for s in specs]) * size
    radius = column([s.radius for s in specs]) * size
    px = gx - (x0 + dx * t)  # [N, T, 1, W] → broadcast below
    py = gy - (y0 + dy * t)
    px, py = torch.broadcast_tensors(px, py)
    sdf = torch.empty(n, frames, size, size, device=dev)
    for shape in SHAPES:
        idx = [i for i, s in enumerate(specs) if s.shape == shape]
        if idx:
            sel = torch.tensor(idx, device=dev)
            sdf[sel] = _sdf(shape, px[sel], py[sel], radius[sel])
    coverage = (0.5 - sdf).clamp(0, 1).unsqueeze(1)  # [N, 1, T, H, W]
    fg = torch.tensor([COLOURS[s.colour] for s in specs], device=dev).view(n, 3, 1, 1, 1)
    bg = torch.tensor([BACKGROUNDS[s.background] for s in specs], device=dev).view(n, 3, 1, 1, 1)
    video = bg + (fg - bg) * coverage
    return video * 2 - 1, coverage


def sample_batch(rng: random.Random, n: int, device="cpu", frames: int = FRAMES, size: int = SIZE):
    """n random clips: (video, mask, specs, prompts)."""
    specs = [sample_spec(rng) for _ in range(n)]
    video, mask = render(specs, frames, size, device)
    return video, mask, specs, [prompt_for(s, rng) for s in specs]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Render a few clips of the demo world as GIFs (needs Pillow).")
    parser.add_argument("--out", default="/tmp/demo-world")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from pathlib import Path

    from PIL import Image

    Path(args.out).mkdir(parents=True, exist_ok=True)
    video, _, specs, prompts = sample_batch(random.Random(args.seed), args.count)
    frames = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()
    for i, prompt in enumerate(prompts):
        images = [Image.fromarray(f) for f in frames[i]]
        path = Path(args.out) / f"{i:02d}.gif"
        images[0].save(path, save_all=True, append_images=images[1:], duration=125, loop=0)
        print(path, "|", prompt, "|", specs[i])
    print("closest object/background colour pair:", round(min_colour_background_distance(), 3))
