"""Video post-processing goldens: how diffusers turns a decoded Wan video in
[-1, 1] into 8-bit frames.

Writes Tests/Fixtures/video/video.safetensors and video.json:

  input      F32 [1, 3, T, H, W]   a VAE-output-like video, with exact edge values
                                   (-1, 1, 0, ties at .5/255 steps, out-of-range values)
  nearest    U8  [T, H, W, 3]      VideoProcessor.postprocess_video(output_type="pil"),
                                   i.e. round((x*0.5+0.5).clamp(0,1)*255), as np.array
  truncate   U8  [T, H, W, 3]      export_to_video's conversion of output_type="np" frames:
                                   (frame * 255).astype(np.uint8)

The encoders themselves (PNG/APNG/GIF/Y4M) have no reference implementation to
compare bytes with; the Swift tests decode their output independently.
"""

from __future__ import annotations

import numpy as np
import torch

from _common import FIXTURES, randn, rel, reset_dir, save_tensors, write_json

OUT_DIR = FIXTURES / "video"
SEED = 5000
T, H, W = 3, 4, 5


def run(versions: dict) -> list[str]:
    from diffusers.video_processor import VideoProcessor

    reset_dir(OUT_DIR)
    video = randn([1, 3, T, H, W], SEED, std=0.7)
    flat = video.view(-1)
    # Edge values: the extremes, out-of-range values that must clamp, zero (a .5 tie after *255),
    # and values whose x*0.5+0.5 lands exactly on k/255 or (k+0.5)/255.
    edges = [-1.0, 1.0, 0.0, -1.5, 1.5, -7.0, 3.0]
    edges += [2 * (k / 255.0) - 1 for k in (0, 1, 17, 128, 254, 255)]
    edges += [2 * ((k + 0.5) / 255.0) - 1 for k in (0, 1, 2, 3, 100, 101, 253, 254)]
    flat[: len(edges)] = torch.tensor(edges, dtype=torch.float32)

    processor = VideoProcessor(vae_scale_factor=8)
    frames_pil = processor.postprocess_video(video, output_type="pil")[0]
    nearest = np.stack([np.array(frame) for frame in frames_pil])  # [T, H, W, 3] uint8
    frames_np = processor.postprocess_video(video, output_type="np")[0]  # [T, H, W, 3] float32 in [0, 1]
    truncate = np.stack([(frame * 255).astype(np.uint8) for frame in frames_np])

    save_tensors(OUT_DIR / "video.safetensors", {
        "input": video,
        "nearest": torch.from_numpy(nearest.copy()),
        "truncate": torch.from_numpy(truncate.copy()),
    }, metadata={"producer": "video_goldens.py"})
    write_json(OUT_DIR / "video.json", {
        "versions": versions,
        "input": "[1, 3, T, H, W] float32, N(0, 0.7) with edge values in the first elements",
        "nearest": "np.array of VideoProcessor.postprocess_video(input, output_type='pil') frames, [T, H, W, 3] uint8",
        "truncate": "(frame * 255).astype(np.uint8) of postprocess_video(input, output_type='np'), as export_to_video does",
        "edges": edges,
    })
    size = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    return [f"video: postprocess references -> {rel(OUT_DIR)} ({size / 1e3:.1f} kB)"]
