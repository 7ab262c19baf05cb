#!/usr/bin/env python3
"""The diffusers baseline for `kinema bench --pipeline`: a whole WanPipeline (umT5-XXL encode, N denoising
steps of the Wan2.1 DiT, VAE decode) built from random weights of the real shapes, bf16, on one GPU.

    python3 scripts/bench/diffusers_pipeline_baseline.py --shape 1.3b --steps 4 --json out.json

Also times the umT5-XXL encode of one 512-token prompt alone. The tokenizer is the small test fixture's
(ids only matter through their count: Wan pads every prompt to 512 tokens). Timing: torch.cuda.synchronize
around wall-clock time for the pipeline, CUDA events for the encoder; warm-up first, median of N.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from diffusers_baseline import CONFIGS, time_cuda

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "Tests/Fixtures/wan_pipeline/diffusers/tokenizer"
PROMPT = "a red circle moving right across a white background, smooth motion, high detail"


def randomize(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.02)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="1.3b", choices=sorted(CONFIGS))
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--guidance", type=float, default=1.0, help="≤ 1: no classifier-free guidance")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()

    import diffusers
    import transformers
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    device = torch.device("cuda")
    t0 = time.time()
    t5_config = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                           relative_attention_num_buckets=32, relative_attention_max_distance=128,
                           feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_encoder_decoder=False)
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 directly (see diffusers_baseline.py)
    with torch.device(device):
        text_encoder = randomize(UMT5EncoderModel(t5_config).eval())
        transformer = randomize(WanTransformer3DModel(**CONFIGS[args.shape]).eval())
        vae = randomize(AutoencoderKLWan().eval())
    torch.set_default_dtype(torch.float32)
    build = time.time() - t0
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                        flow_shift=5.0)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)

    ids = torch.randint(3, 256000, (1, 512), device=device)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        encode_times = time_cuda(lambda: text_encoder(ids, mask).last_hidden_state, 2, 5)

    torch.cuda.reset_peak_memory_stats()

    def generate():
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            pipe(prompt=PROMPT, negative_prompt="", height=args.height, width=args.width, num_frames=args.frames,
                 num_inference_steps=args.steps, guidance_scale=args.guidance, output_type="np",
                 generator=torch.Generator(device).manual_seed(0))
        torch.cuda.synchronize()
        return time.perf_counter() - start

    first = generate()  # warm-up: the process's first generation (cuDNN / cuBLAS set-up and heuristics)
    times = [generate() for _ in range(args.iterations)]
    result = {"diffusers": diffusers.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(), "shape": args.shape, "frames": args.frames, "height": args.height,
              "width": args.width, "steps": args.steps, "guidance": args.guidance, "build_s": build,
              "umt5_encode_s": encode_times, "umt5_encode_median_s": statistics.median(encode_times),
              "first_pipeline_s": first, "pipeline_s": times, "pipeline_median_s": statistics.median(times),
              "pipeline_peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
