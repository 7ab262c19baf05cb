"""Trains Kinema's bundled demo text-to-video model (Wan architecture, tiny) on the synthetic world.

Stages (run in order, each resumable, each bounded by --budget-seconds):
  vae              AutoencoderKLWan (4×8×8 compression, 16 latent channels), then per-channel latent stats
  dit              WanTransformer3DModel + UMT5EncoderModel trained jointly with flow matching (EMA kept)
  teacher_samples  (noise, x0) pairs from the base model with UniPC + CFG
  distill          4-step student for Kinema's / LightX2V's step-distill sampler, initialised from the base
  export           diffusers layout (model_index.json …) + the student in distill/ + configs
  evaluate         generates test prompts with both models and scores them with analyse.py (meaning check)

    python train.py --work DIR --stages vae,dit --budget-seconds 540 [--smoke]

All state lives under --work: vae.pt, dit.pt, teacher.pt, distill.pt (resume points), export/ (the model).
--smoke uses tiny sizes so every stage runs on a CPU in seconds (it checks the code path, not quality).

Several GPUs of one host: `python -m torch.distributed.run --standalone --nproc_per_node=K train.py …`
(parallel.py): dit and distill run data-parallel, global batch = dit_batch (distill_batch) × K per step.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import world  # noqa: E402
import tokenizer as demo_tokenizer  # noqa: E402
import fast_dit  # noqa: E402
import parallel  # noqa: E402
from fast_dit import TEXT_LEN  # noqa: E402
STEP_LIST = [1000, 750, 500, 250]  # the step-distill sampler's denoising_step_list

FULL = dict(
    frames=17, size=128, vae_frames=17, vae_image_share=0.5, vae_image_batch=96, vae_eval_every=250, vae_temporal_init=1,
    vae_object_weight=32, vae_edge_weight=0.0,
    vae=dict(base_dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
             temperal_downsample=[False, True, True], dropout=0.0),
    text=dict(d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4, relative_attention_num_buckets=32,
              relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
              dropout_rate=0.0, is_encoder_decoder=False, use_cache=False, tie_word_embeddings=True),
    dit=dict(patch_size=[1, 2, 2], num_attention_heads=3, attention_head_dim=64, in_channels=16, out_channels=16,
             freq_dim=256, ffn_dim=576, num_layers=6, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
             eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024, pos_embed_seq_len=None),
    flow_shift=3.0, vae_batch=16, vae_lr=5e-4, vae_clip_lr=2e-4, dit_batch=128, dit_lr=3e-4, dit_decay=1.0, bank=8192, bank_refresh=64, refresh_every=32,
    # CFG 2 for the base and its teacher pairs: at 4 the squares' corners round off (guidance_sweep.py: 39 → 45/48).
    teacher_pairs=8192, teacher_steps=25, teacher_guidance=2.0, teacher_batch=512,
    distill_batch=64, distill_lr=5e-5, base_steps=20, base_guidance=2.0, stats_clips=512, fps=8,
    # Speed (fast_dit.py, parallel.py): dit_compact 1 trains on the compact text context (the same function as
    # the 512-token padding; 0: the padded context itself), dit_compile 1 wraps the training module in
    # torch.compile (compile time counts against the call), dit_profile N logs the top ops of N profiled steps.
    dit_compact=1, dit_compile=0, dit_profile=0,
)
SMOKE = dict(
    FULL, frames=5, size=32, vae_frames=5,
    vae=dict(FULL["vae"], base_dim=4),
    text=dict(FULL["text"], d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2),
    dit=dict(FULL["dit"], num_attention_heads=2, attention_head_dim=12, ffn_dim=32, num_layers=1),
    vae_edge_weight=1.0, dit_decay=0.5,  # so --smoke runs the outline weight and the decayed schedule too
    vae_batch=2, dit_batch=4, bank=16, bank_refresh=2, refresh_every=1, teacher_pairs=8, teacher_steps=3, teacher_batch=4,
    distill_batch=4, base_steps=3, stats_clips=4,
)


def log(*parts):
    if parallel.is_main():
        print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


class Budget:
    def __init__(self, seconds: float):
        self.end = time.time() + seconds

    def left(self) -> float:
        return self.end - time.time()


RUN_STARTED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def autocast(device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def save(path: Path, payload: dict):
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


# Settings each stage's record keeps (the export writes every checkpoint's records into training.json).
STAGE_SETTINGS = dict(vae=("vae_",), vae_decoder=("vae_",), dit=("dit_", "flow_shift"),
                      distill=("distill_", "teacher_", "base_", "flow_shift"))


def history(state, stage: str, cfg: dict, from_step: int, to_step: int) -> list:
    """The checkpoint's per-call records with this call's appended: which stage ran from which step to which,
    when, with which settings — the recipe of the weights, call by call."""
    earlier = list((state or {}).get("history", []))
    settings = {k: v for k, v in cfg.items() if k.startswith(STAGE_SETTINGS[stage])}
    return earlier + [dict(stage=stage, from_step=from_step, to_step=to_step, run_started=RUN_STARTED, settings=settings)]


def compact(state: dict) -> dict:
    """bf16 copy of a state dict: checkpoints travel between GPU calls under a size limit. Weights are
    rounded once per call (not per step), which training shrugs off."""
    return {k: v.detach().to("cpu", torch.bfloat16) if v.is_floating_point() else v.detach().cpu() for k, v in state.items()}


def load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def warmup_lr(step: int, base: float, warmup: int = 300) -> float:
    return base * min(1.0, (step + 1) / warmup)


def cosine_decay(done: float, floor: float) -> float:
    """1 at done = 0, `floor` at done ≥ 1, a half cosine between (the factor on a stage's learning rate)."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, done))))


def object_edges(mask: torch.Tensor) -> torch.Tensor:
    """The object's outline in a coverage mask [B, 1, T, H, W]: dilated minus eroded by a 3×3 window per frame
    (1 on the band of pixels that decides the mask's outline, where corners are; 0 elsewhere)."""
    dilated = F.max_pool3d(mask, (1, 3, 3), stride=1, padding=(0, 1, 1))
    eroded = -F.max_pool3d(-mask, (1, 3, 3), stride=1, padding=(0, 1, 1))
    return dilated - eroded


# ----------------------------------------------------------------------------------------------- models


def make_vae(cfg, stats=None):
    from diffusers import AutoencoderKLWan

    kwargs = dict(cfg["vae"])
    if stats is not None:
        kwargs.update(latents_mean=stats[0], latents_std=stats[1])
    else:  # placeholders, replaced once the VAE is trained
        kwargs.update(latents_mean=[0.0] * kwargs["z_dim"], latents_std=[1.0] * kwargs["z_dim"])
    return AutoencoderKLWan(**kwargs)


def init_temporal_passthrough(vae):
    """Starts every temporal path of the causal VAE as a per-frame pass-through (weights only; the
    architecture is diffusers' AutoencoderKLWan unchanged):
    - each causal 3D conv (kernel 3 in time, padded by two past frames) keeps only its current-frame tap:
      the two past taps [:, :, :2] start at zero;
    - each temporal resample conv (`time_conv`, kernel (3, 1, 1)) starts as the identity on the current
      frame: the encoder's downsample keeps the newest of the frames it merges, the decoder's upsample
      (dim → 2·dim channels, read as two output frames) copies the frame into both.
    Why: the single-frame phase runs the first-chunk path only, where the past taps see zero padding and the
    time_convs are skipped, so none of them get a gradient there. Left at their random init they add noise of
    the same size as the signal to every later frame once clips start, and the appearance learned on frames
    does not carry over (the clip phase measured 4 dB on the object, its loss rising). With this init a VAE
    trained on single frames codes each latent frame like frame 0, and the clip phase only has to learn the
    motion within each group of 4 frames. Zero-initialised taps still receive gradients on clips."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample

    with torch.no_grad():
        time_convs = set()
        for module in vae.modules():
            if isinstance(module, WanResample) and hasattr(module, "time_conv"):
                conv = module.time_conv  # weight [out, in, 3, 1, 1]; out = in (down) or 2·in (up)
                conv.weight.zero_()
                conv.bias.zero_()
                channels = conv.weight.shape[1]
                for part in range(conv.weight.shape[0] // channels):
                    conv.weight[part * channels:(part + 1) * channels, :, -1, 0, 0] = torch.eye(channels)
                time_convs.add(conv)
        for module in vae.modules():
            if isinstance(module, WanCausalConv3d) and module not in time_convs and module.weight.shape[2] > 1:
                module.weight[:, :, :-1].zero_()  # taps t−2, t−1 (the causal padding sits in front)


def make_text_encoder(cfg, vocab_size: int):
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(vocab_size=vocab_size, **cfg["text"]))


def make_dit(cfg):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(text_dim=cfg["text"]["d_model"], **cfg["dit"])


def load_vae(work: Path, cfg, device):
    state = load(work / "vae.pt")
    if state is None or "latents_mean" not in state:
        raise SystemExit("the vae stage has not finished (no latent statistics in vae.pt); run --stages vae first")
    vae = make_vae(cfg, (state["latents_mean"], state["latents_std"]))
    vae.load_state_dict(state["model"])
    return vae.to(device).eval().requires_grad_(False)


class Text:
    """Tokenizes and encodes prompts exactly as WanPipeline does: ids + mask, encoder output trimmed to the
    real length and zero-padded to TEXT_LEN tokens. The encoder runs on the batch's longest prompt only,
    which gives the same outputs for the real tokens (padding is masked out of its attention)."""

    def __init__(self, device):
        self.tok = demo_tokenizer.build()
        self.device = device

    def ids(self, prompts: list[str]):
        enc = self.tok.encode_batch(prompts)
        length = min(max(len(e.ids) for e in enc), TEXT_LEN)
        ids = torch.zeros(len(prompts), length, dtype=torch.long)
        mask = torch.zeros(len(prompts), length, dtype=torch.long)
        for i, e in enumerate(enc):
            n = min(len(e.ids), TEXT_LEN)
            ids[i, :n] = torch.tensor(e.ids[:n])
            mask[i, :n] = 1
        return ids.to(self.device), mask.to(self.device)

    def embed(self, encoder, prompts: list[str]) -> torch.Tensor:
        ids, mask = self.ids(prompts)
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, L, D]
        hidden = hidden * mask.unsqueeze(-1).to(hidden.dtype)
        return F.pad(hidden, (0, 0, 0, TEXT_LEN - hidden.shape[1]))  # [B, 512, D]


def shifted(sigma, shift: float):
    return shift * sigma / (1 + (shift - 1) * sigma)


# ----------------------------------------------------------------------------------------------- vae


def decode_unclamped(vae, z):
    """AutoencoderKLWan's frame-by-frame decode without its final clamp to [-1, 1]: a clamped pixel passes
    no gradient, and early in training the object's pixels sit beyond the clamp (a -1 background pulls the
    whole frame below it), so with the clamp the decoder never learns the object."""
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    frames = []
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        frames.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0))
    vae.clear_cache()
    return torch.cat(frames, 2)


@torch.no_grad()
def vae_recon_psnr(vae, cfg, device, clips: int = 16, seed: int = 77) -> dict:
    """PSNR in dB on fixed full-length clips, through the inference path exactly (AutoencoderKLWan.encode →
    posterior mean → AutoencoderKLWan.decode, clamped, as the pipeline runs it): `all` (every pixel),
    `object` (pixels on the object), `object_first` / `object_later` (on the object, frame 0 — the causal
    first-chunk path — and frames 1… — the temporal path)."""
    was_training = vae.training
    vae.eval()
    video, fgmask, _, _ = world.sample_batch(random.Random(seed), clips, device, cfg["frames"], cfg["size"])
    recon = []
    for k in range(0, clips, 8):
        with autocast(device):
            recon.append(vae.decode(vae.encode(video[k:k + 8]).latent_dist.mean).sample.float())
    err = ((torch.cat(recon) - video) / 2).square()
    on_object = (fgmask > 0.5).expand_as(err)
    vae.train(was_training)

    def db(e):
        return -10 * math.log10(max(e.mean().item(), 1e-10))

    return dict(all=db(err), object=db(err[on_object]), object_first=db(err[:, :, :1][on_object[:, :, :1]]),
                object_later=db(err[:, :, 1:][on_object[:, :, 1:]]))


def stage_vae(args, cfg, device, budget: Budget):
    path = args.work / "vae.pt"
    state = load(path) or {}
    if "latents_mean" in state and not args.force:
        log("vae: already trained (vae.pt has latent statistics); --force retrains")
        return
    vae = make_vae(cfg).to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg["vae_lr"], betas=(0.9, 0.99), weight_decay=0.0)
    step = 0
    if "model" in state:
        vae.load_state_dict(state["model"])
        step = state["step"]
        if "opt" in state:
            opt.load_state_dict(state["opt"])
        log(f"vae: resumed at step {step}")
    elif cfg.get("vae_temporal_init", 1):
        init_temporal_passthrough(vae)
    vae_resumed_at = step
    rng = random.Random(1000 + step)
    stats_reserve = 20 if not args.smoke else 1
    max_steps = args.max_steps or 10**9
    last_save, t0, seen, losses = time.time(), time.time(), 0, []
    # Two phases. First single frames (the causal first-chunk path alone, ~17× cheaper per sample), where
    # the decoder learns the objects' colours and edges; then whole clips of the inference length, because
    # a decoder trained on shorter clips drifts on the later latent frames (seen with 9-frame training:
    # frame 17 fell apart). What the frames teach carries over to clips only through the pass-through init
    # of the temporal taps (init_temporal_passthrough). Half the time each: on the CPU, 20 % or 45 % of
    # the time in frames ended equal; the clip phase is where the motion within each 4-frame group is learnt.
    image_until = budget.left() - cfg["vae_image_share"] * (budget.left() - stats_reserve)
    clip_start = None  # (step, seconds left) when the clip phase began
    vae.train()
    while budget.left() > stats_reserve and step < max_steps:
        # With --max-steps the phases split by steps (reproducible comparisons on a shared CPU), else by time.
        images = step < cfg["vae_image_share"] * args.max_steps if args.max_steps else budget.left() > image_until
        if images:
            lr = warmup_lr(step, cfg["vae_lr"], 200)
        else:
            # The clip phase restarts its learning rate: the temporal taps get their first gradients here
            # (Adam moves every one of them by ~lr per step at first), and its batches are small (16 clips).
            # At 1e-3 the loss rose through the whole clip phase (l1w 0.19 → 0.35 on the H100; on the CPU,
            # 16-sample batches at 1e-3 collapse and never learn the object, at 3e-4 they learn it steadily).
            # Warm-up, then cosine decay to a tenth by the end of the budget, which the final quality needs.
            if clip_start is None:
                clip_start = (step, budget.left())
            if args.max_steps:
                done = (step - clip_start[0]) / max(1, args.max_steps - clip_start[0])
            else:
                done = (clip_start[1] - budget.left()) / max(1e-6, clip_start[1] - stats_reserve)
            decay = cosine_decay(done, 0.1)
            lr = warmup_lr(step - clip_start[0], cfg["vae_clip_lr"], 100) * decay
        for group in opt.param_groups:
            group["lr"] = lr
        batch, frames = (cfg["vae_image_batch"], 1) if images else (cfg["vae_batch"], cfg["vae_frames"])
        video, mask, _, _ = world.sample_batch(rng, batch, device, frames, cfg["size"])
        with autocast(device):
            posterior = vae.encode(video).latent_dist
            # Deterministic: the DiT is trained on posterior means, and sampling with the initial unit
            # variance drowns the signal for the first thousands of steps.
            z = posterior.mean
            recon = decode_unclamped(vae, z)
        recon = recon.float()
        # The object is a small part of each frame (2–5 % of the pixels): weight its pixels up so its colour
        # and edges are exact. At 1 + 32·coverage the object carries about half of the loss; at 1 + 8·coverage
        # (a fifth) the small CPU runs needed twice the steps to reach the same error on the object.
        weight = 1 + cfg["vae_object_weight"] * mask
        err = recon - video
        l1 = (weight * err.abs()).mean()
        l2 = (weight * err.square()).mean()
        # Only the means are used, so the KL term reduces to keeping their scale bounded.
        kl = 0.5 * posterior.mean.float().square().mean()
        loss = l1 + l2 + 1e-5 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        seen += video.shape[0]
        losses.append((l1.item(), l2.item(), kl.item()))
        if step % 50 == 0 or args.smoke:
            m = [sum(v) / len(losses) for v in zip(*losses)]
            log(f"vae step {step} ({'frames' if images else 'clips'}) l1w {m[0]:.4f} l2w {m[1]:.5f} kl {m[2]:.2f} lr {lr:.1e} | {seen / (time.time() - t0):.1f} samples/s"
                + (f" | gpu mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else ""))
            losses = []
        if cfg.get("vae_eval_every") and step % cfg["vae_eval_every"] == 0:
            q = vae_recon_psnr(vae, cfg, device)
            log(f"vae step {step} eval (full-length clips): recon PSNR {q['all']:.1f} dB, on the object {q['object']:.1f} dB "
                f"(frame 0: {q['object_first']:.1f} dB, later frames: {q['object_later']:.1f} dB)")
        if time.time() - last_save > 120:
            save(path, dict(model=compact(vae.state_dict()), step=step, history=history(state, "vae", cfg, vae_resumed_at, step)))
            last_save = time.time()
    # Latent statistics over full-length clips (posterior means), written into the config as diffusers'
    # Wan VAE config carries them (latents_mean / latents_std).
    vae.eval()
    sums, sq, count = 0, 0, 0
    srng = random.Random(77)
    with torch.no_grad():
        for _ in range(max(1, cfg["stats_clips"] // cfg["vae_batch"])):
            video, _, _, _ = world.sample_batch(srng, cfg["vae_batch"], device, cfg["frames"], cfg["size"])
            with autocast(device):
                mu = vae.encode(video).latent_dist.mean.float()  # [B, 16, t, h, w]
            sums = sums + mu.sum(dim=(0, 2, 3, 4))
            sq = sq + mu.square().sum(dim=(0, 2, 3, 4))
            count += mu.numel() // mu.shape[1]
        mean = sums / count
        std = (sq / count - mean.square()).clamp(min=1e-8).sqrt()
    q = vae_recon_psnr(vae, cfg, device)
    log(f"vae done at step {step}: recon PSNR {q['all']:.1f} dB, on the object {q['object']:.1f} dB (frame 0: "
        f"{q['object_first']:.1f} dB, later frames: {q['object_later']:.1f} dB; full-length clips); latent mean {mean.tolist()}")
    log(f"latent std {std.tolist()}")
    save(path, dict(model=compact(vae.state_dict()), step=step, latents_mean=mean.tolist(), latents_std=std.tolist(),
                    history=history(state, "vae", cfg, vae_resumed_at, step)))


def stage_vae_decoder(args, cfg, device, budget: Budget):
    """More training for the decoder alone. The encoder (and so every latent the DiT was trained on, and
    the latent statistics) stays fixed, so this can run after the DiT without invalidating it."""
    path = args.work / "vae.pt"
    state = load(path)
    if not state or "latents_mean" not in state:
        raise SystemExit("vae_decoder: no finished vae.pt; run --stages vae first")
    vae = make_vae(cfg).to(device)
    vae.load_state_dict(state["model"])
    vae.requires_grad_(False)
    trainable = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=cfg["vae_clip_lr"], betas=(0.9, 0.99), weight_decay=0.0)
    step = state.get("decoder_step", 0)
    rng = random.Random(30000 + step)
    t0, seen, losses, start = time.time(), 0, [], step
    seconds = max(1e-6, budget.left() - 15)
    vae.train()
    while budget.left() > 15:
        # Clips of 16: see stage_vae. Cosine decay to a tenth over the stage: the outline sharpens late.
        lr = warmup_lr(step - start, cfg["vae_clip_lr"], 50) * cosine_decay(1 - (budget.left() - 15) / seconds, 0.1)
        for group in opt.param_groups:
            group["lr"] = lr
        video, mask, _, _ = world.sample_batch(rng, cfg["vae_batch"], device, cfg["vae_frames"], cfg["size"])
        with torch.no_grad(), autocast(device):
            z = vae.encode(video).latent_dist.mean
        with autocast(device):
            recon = decode_unclamped(vae, z)
        err = recon.float() - video
        # The outline band weighs extra (vae_edge_weight): blurred corners turn squares into circles for
        # the frame analyser (a square's mask fills 1 of its box, a rounded one 0.85) though they cost little L2.
        weight = 1 + cfg["vae_object_weight"] * mask + cfg["vae_edge_weight"] * object_edges(mask)
        loss = (weight * err.abs()).mean() + (weight * err.square()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        seen += video.shape[0]
        losses.append(loss.item())
        if step % 50 == 0:
            log(f"vae_decoder step {step} loss {sum(losses) / len(losses):.4f} lr {lr:.2e} | {seen / (time.time() - t0):.1f} clips/s")
            losses = []
    q = vae_recon_psnr(vae, cfg, device)
    log(f"vae_decoder done at step {step}: recon PSNR {q['all']:.1f} dB, on the object {q['object']:.1f} dB "
        f"(frame 0: {q['object_first']:.1f} dB, later frames: {q['object_later']:.1f} dB)")
    state.update(model=compact(vae.state_dict()), decoder_step=step, history=history(state, "vae_decoder", cfg, start, step))
    save(path, state)


# ----------------------------------------------------------------------------------------------- dit


class LatentBank:
    """Encoded training clips kept on the device (VAE encoding costs more than a DiT step); a few entries
    are replaced by fresh clips every `refresh_every` steps so the model keeps seeing new positions and
    sizes. Each entry keeps its attribute combination (index into the PromptTable), so a batch and its
    prompts are drawn on the device: latents [size, 16, T, h, w] bf16, combos [size] long."""

    def __init__(self, vae, cfg, device, seed: int, size: int, prompts: fast_dit.PromptTable):
        self.vae, self.cfg, self.device, self.size, self.prompts = vae, cfg, device, size, prompts
        self.rng = random.Random(seed)
        self.mean = torch.tensor(vae.config.latents_mean, device=device).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(vae.config.latents_std, device=device).view(1, -1, 1, 1, 1)
        t0 = time.time()
        chunk = 64 if device.type == "cuda" else 2
        latents, combos = [], []
        while sum(z.shape[0] for z in latents) < size:
            z, c = self.encode(min(chunk, size - sum(z.shape[0] for z in latents)))
            latents.append(z)
            combos.append(c)
        self.latents, self.combos = torch.cat(latents), torch.cat(combos)
        log(f"latent bank: {size} clips in {time.time() - t0:.1f} s, latents {list(self.latents.shape[1:])}")

    @torch.no_grad()
    def encode(self, n: int):
        specs = [world.sample_spec(self.rng) for _ in range(n)]
        video, _ = world.render(specs, self.cfg["frames"], self.cfg["size"], self.device)
        with autocast(self.device):
            mu = self.vae.encode(video).latent_dist.mean.float()
        combos = torch.tensor([self.prompts.combo_of(s) for s in specs], device=self.device)
        return ((mu - self.mean) / self.std).to(torch.bfloat16), combos  # normalized as WanPipeline expects

    def refresh(self, n: int):
        if n <= 0:
            return
        z, combos = self.encode(n)
        idx = torch.tensor(self.rng.sample(range(self.size), n), device=self.device)
        self.latents[idx] = z
        self.combos[idx] = combos

    def batch(self, n: int, gen: torch.Generator):
        """(x0 [n, 16, T, h, w] fp32, attribute combos [n]), drawn on the device."""
        idx = torch.randint(self.size, (n,), device=self.device, generator=gen)
        return self.latents[idx].float(), self.combos[idx]


class StepProfiler:
    """`--set dit_profile=N`: the stage's first steps run under torch.profiler (1 step skipped, 2 warm-up,
    N recorded) and the top 20 ops by device time and by host time go to the log (rank 0 only)."""

    def __init__(self, steps: int, device, name: str):
        self.prof, self.name, self.device = None, name, device
        if steps <= 0 or not parallel.is_main():
            return
        from torch.profiler import ProfilerActivity, profile, schedule

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        self.left = 3 + steps
        self.steps = steps
        self.prof = profile(activities=activities, schedule=schedule(wait=1, warmup=2, active=steps),
                            on_trace_ready=self.report)
        self.prof.__enter__()
        log(f"{name}: profiling steps 4–{3 + steps}")

    def step(self):
        if self.prof is None:
            return
        self.prof.step()
        self.left -= 1
        if self.left <= 0:
            self.prof.__exit__(None, None, None)
            self.prof = None

    def report(self, prof):
        averages = prof.key_averages()
        sorts = ["self_cpu_time_total"]
        if self.device.type == "cuda":
            sorts.insert(0, "self_device_time_total" if hasattr(averages[0], "self_device_time_total") else "self_cuda_time_total")
        for key in sorts:
            log(f"{self.name} profile ({self.steps} steps), top 20 by {key}:\n" + averages.table(sort_by=key, row_limit=20))


def stage_dit(args, cfg, device, budget: Budget):
    path = args.work / "dit.pt"
    vae = load_vae(args.work, cfg, device)
    text = Text(device)
    encoder = make_text_encoder(cfg, text.tok.get_vocab_size()).to(device)
    dit = make_dit(cfg).to(device)
    state = load(path)
    step = 0
    if state:
        encoder.load_state_dict(state["encoder"])
        dit.load_state_dict(state["dit"])
        step = state["step"]
        log(f"dit: resumed at step {step}")
    ema_dit, ema_enc = copy.deepcopy(dit).float().requires_grad_(False), copy.deepcopy(encoder).float().requires_grad_(False)
    if state:
        ema_dit.load_state_dict(state["ema_dit"])
        ema_enc.load_state_dict(state["ema_encoder"])
    params = list(dit.parameters()) + list(encoder.parameters())
    ema_params = list(ema_dit.parameters()) + list(ema_enc.parameters())
    log(f"dit params {sum(p.numel() for p in dit.parameters()) / 1e6:.2f} M, text encoder "
        f"{sum(p.numel() for p in encoder.parameters()) / 1e6:.2f} M")
    fast_dit.prepare_dit(dit)  # after the EMA copies: those stay plain diffusers modules
    model = parallel.wrap(fast_dit.TextToNoise(dit, encoder, compact=bool(cfg["dit_compact"])), device)
    if cfg["dit_compile"]:
        model = torch.compile(model)
    opt = torch.optim.AdamW(params, lr=cfg["dit_lr"], betas=(0.9, 0.99), weight_decay=0.01, fused=device.type == "cuda")
    resumed_at = step
    prompts = fast_dit.PromptTable(text.tok, device)
    # Every rank its own clips and random streams (the same on one GPU as before DDP existed: rank 0).
    seed = step + 7919 * parallel.RANK
    bank = LatentBank(vae, cfg, device, seed=2000 + seed, size=cfg["bank"], prompts=prompts)
    gen = torch.Generator(device=device).manual_seed(4000 + seed)
    shift = cfg["flow_shift"]
    max_steps = args.max_steps or 10**9
    log(f"dit: batch {cfg['dit_batch']} per rank × {parallel.WORLD} rank(s) = {cfg['dit_batch'] * parallel.WORLD} clips per step; "
        f"text context {'compact (' + str(fast_dit.compact_width(prompts.max_tokens)) + ' slots)' if cfg['dit_compact'] else str(TEXT_LEN) + ' tokens'}"
        f"{', torch.compile' if cfg['dit_compile'] else ''}")
    last_save, t0 = time.time(), time.time()
    loss_sum, loss_count = torch.zeros((), device=device), 0  # read at log time only: .item() syncs
    profiler = StepProfiler(cfg["dit_profile"], device, "dit")
    stage_seconds = max(1e-6, parallel.min_seconds_left(budget.left(), device) - 15)  # the same on every rank
    dit.train()
    encoder.train()

    def checkpoint():
        if parallel.is_main():
            save(path, dict(dit=compact(dit.state_dict()), encoder=compact(encoder.state_dict()),
                            ema_dit=compact(ema_dit.state_dict()), ema_encoder=compact(ema_enc.state_dict()), step=step,
                            config=cfg, history=history(state, "dit", cfg, resumed_at, step)))

    left = stage_seconds + 15
    while step < max_steps:
        # One rank: the budget every step (host only). Several: they agree every 10 steps (an all-reduce), and the
        # agreed time left also drives the decay below, so every replica uses the same learning rate.
        if not parallel.active() or (step - resumed_at) % 10 == 0:
            left = parallel.min_seconds_left(budget.left(), device)
            if left <= 15:
                break
        # Re-warm after every resume: the optimizer state is not carried between calls (size). With dit_decay < 1
        # the rate falls by a half cosine to dit_decay × dit_lr over this stage's budget (a last stretch that
        # settles the fine detail); 1 keeps it flat for runs that continue in a later call.
        lr = warmup_lr(step - resumed_at, cfg["dit_lr"], 300 if resumed_at == 0 else 100)
        if cfg["dit_decay"] < 1:
            lr *= cosine_decay(1 - (left - 15) / stage_seconds, cfg["dit_decay"])
        for group in opt.param_groups:
            group["lr"] = lr
        if step % cfg["refresh_every"] == 0:
            bank.refresh(cfg["bank_refresh"])
        x0, combos = bank.batch(cfg["dit_batch"], gen)
        ids, lengths = prompts.sample(combos, gen, drop=0.1)  # 10% "" (unconditional, for CFG)
        b = x0.shape[0]
        noise = torch.randn(x0.shape, device=device, generator=gen)
        # σ spread like the sampler's steps: uniform, then the same flow shift as inference.
        sigma = shifted(torch.rand(b, device=device, generator=gen), shift)
        s = sigma.view(b, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * noise
        with autocast(device):
            pred = model(xt, sigma * 1000, ids, lengths)
        loss = F.mse_loss(pred.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        fast_dit.ema_update(ema_params, params, min(0.999, (1 + step) / (10 + step)))
        loss_sum += loss.detach()
        loss_count += 1
        profiler.step()
        if step % 100 == 0 or args.smoke:
            mean_loss = parallel.mean(loss_sum / loss_count).item()
            elapsed = time.time() - t0
            log(f"dit step {step} loss {mean_loss:.4f} lr {lr:.2e} | "
                f"{(step - resumed_at) / elapsed:.1f} steps/s ({(step - resumed_at) * b * parallel.WORLD / elapsed:.0f} clips/s)"
                + (f" | gpu mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else ""))
            loss_sum.zero_()
            loss_count = 0
        if time.time() - last_save > 120:
            checkpoint()
            last_save = time.time()
    checkpoint()
    elapsed = time.time() - t0
    log(f"dit: saved at step {step} ({step - resumed_at} steps in {elapsed:.1f} s, "
        f"{(step - resumed_at) / max(elapsed, 1e-9):.2f} steps/s)")


def load_base(work: Path, cfg, device, text: Text):
    state = load(work / "dit.pt")
    if state is None:
        raise SystemExit("no dit.pt; run --stages dit first")
    encoder = make_text_encoder(cfg, text.tok.get_vocab_size())
    encoder.load_state_dict(state["ema_encoder"])
    dit = make_dit(cfg)
    dit.load_state_dict(state["ema_dit"])
    return encoder.to(device).eval().requires_grad_(False), dit.to(device).eval().requires_grad_(False), state["step"]


def latent_shape(cfg, n: int):
    return (n, 16, (cfg["frames"] - 1) // 4 + 1, cfg["size"] // 8, cfg["size"] // 8)


@torch.no_grad()
def sample_base(dit, cond, uncond, noise, steps: int, guidance: float, shift: float, device, cond_bias=None, uncond_bias=None):
    """WanPipeline's loop: diffusers UniPC (flow sigmas), CFG noise_uncond + g·(noise_cond − noise_uncond).
    With biases the contexts are compact (fast_dit.context_from; the DiT through fast_dit.prepare_dit)."""
    from diffusers import UniPCMultistepScheduler

    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                    flow_shift=shift)
    sched.set_timesteps(steps, device=device)
    x = noise.clone()
    for t in sched.timesteps:
        ts = t.expand(x.shape[0]).float()
        with autocast(device):
            c = fast_dit.dit_forward(dit, x, ts, cond, cond_bias).float()
            if guidance > 1:
                u = fast_dit.dit_forward(dit, x, ts, uncond, uncond_bias).float()
                c = u + guidance * (c - u)
        x = sched.step(c, t, x, return_dict=False)[0]
    return x


def step_distill_sigmas(shift: float, steps=STEP_LIST) -> list[float]:
    """Kinema's StepDistillSampler / LightX2V: grid index 1000 − t on linspace(1, 0, 1001), shifted."""
    grid = torch.linspace(1, 0, 1001, dtype=torch.float32)[:-1]
    return [float(shifted(grid[1000 - t], shift)) for t in steps]


@torch.no_grad()
def sample_student(dit, cond, noise, shift: float, device, upto: int | None = None, bias=None):
    """The step-distill sampler (x0 = x − σ_n·v; x ← x0 + σ_{n+1}·v; last step returns x0). With `upto`,
    returns the sample fed to step `upto` instead of the final x0. `bias`: cond is compact (fast_dit)."""
    sigmas = step_distill_sigmas(shift) + [0.0]
    x = noise.clone()
    n_steps = len(STEP_LIST) if upto is None else upto
    x0 = x
    for i in range(n_steps):
        ts = torch.full((x.shape[0],), sigmas[i] * 1000, device=device)
        with autocast(device):
            v = fast_dit.dit_forward(dit, x, ts, cond, bias).float()
        x0 = x - sigmas[i] * v
        x = x0 + sigmas[i + 1] * v
    return x0 if upto is None else x


# ----------------------------------------------------------------------------------------------- teacher


def stage_teacher_samples(args, cfg, device, budget: Budget):
    path = args.work / "teacher.pt"
    text = Text(device)
    encoder, dit, base_step = load_base(args.work, cfg, device, text)
    state = load(path) or dict(noise=[], x0=[], prompts=[], base_step=base_step)
    if state["base_step"] != base_step:
        log(f"teacher: base changed (step {state['base_step']} → {base_step}); starting over")
        state = dict(noise=[], x0=[], prompts=[], base_step=base_step)
    have = sum(n.shape[0] for n in state["noise"])
    rng = random.Random(5000 + have)
    gen = torch.Generator(device=device).manual_seed(6000 + have)
    t0 = time.time()
    compact_context = bool(cfg["dit_compact"])
    if compact_context:
        fast_dit.prepare_dit(dit)

    def embed(prompts):
        rows = fast_dit.TokenRows(text.tok, prompts, device)
        with torch.no_grad(), autocast(device):
            return fast_dit.context_from(fast_dit.encode_text(encoder, rows.ids, rows.lengths), rows.lengths, compact_context)

    uncond_one, uncond_bias = embed([""])
    while have < cfg["teacher_pairs"] and budget.left() > 10:
        n = min(cfg["teacher_batch"], cfg["teacher_pairs"] - have)
        prompts = [world.prompt_for(world.sample_spec(rng), rng) for _ in range(n)]
        noise = torch.randn(latent_shape(cfg, n), device=device, generator=gen)
        cond, cond_bias = embed(prompts)
        x0 = sample_base(dit, cond, uncond_one.expand(n, -1, -1), noise, cfg["teacher_steps"], cfg["teacher_guidance"],
                         cfg["flow_shift"], device, cond_bias,
                         None if uncond_bias is None else uncond_bias.expand(n, -1, -1, -1))
        state["noise"].append(noise.to(torch.bfloat16).cpu())
        state["x0"].append(x0.to(torch.bfloat16).cpu())
        state["prompts"] += prompts
        have += n
        log(f"teacher: {have}/{cfg['teacher_pairs']} pairs, {have / (time.time() - t0):.1f} pairs/s "
            f"(x0 std {x0.std().item():.3f})")
        save(path, state)
    log(f"teacher: {have} pairs")


# ----------------------------------------------------------------------------------------------- distill


def stage_distill(args, cfg, device, budget: Budget):
    path = args.work / "distill.pt"
    text = Text(device)
    encoder, base, base_step = load_base(args.work, cfg, device, text)
    pairs = load(args.work / "teacher.pt")
    if pairs is None or not pairs["noise"]:
        raise SystemExit("no teacher.pt; run --stages teacher_samples first")
    noise_all = torch.cat(pairs["noise"]).to(device)
    x0_all = torch.cat(pairs["x0"]).to(device)
    # The pairs' prompts tokenized once; a batch's rows are gathered on the device.
    prompt_rows = fast_dit.TokenRows(text.tok, sorted(set(pairs["prompts"])), device)
    pair_rows = torch.tensor([prompt_rows.row[p] for p in pairs["prompts"]], device=device)
    student = copy.deepcopy(base).float().train().requires_grad_(True)
    state = load(path)
    step = 0
    if state and state.get("base_step") == base_step:
        student.load_state_dict(state["ema"])  # only the EMA is kept (size); training resumes from it
        step = state["step"]
        log(f"distill: resumed at step {step}")
    ema = copy.deepcopy(student).requires_grad_(False)
    if state and state.get("base_step") == base_step:
        ema.load_state_dict(state["ema"])
    params, ema_params = list(student.parameters()), list(ema.parameters())
    fast_dit.prepare_dit(student)
    model = parallel.wrap(fast_dit.Student(student), device)
    if cfg["dit_compile"]:
        model = torch.compile(model)
    compact_context = bool(cfg["dit_compact"])
    opt = torch.optim.AdamW(params, lr=cfg["distill_lr"], betas=(0.9, 0.99), weight_decay=0.0, fused=device.type == "cuda")
    sigmas = step_distill_sigmas(cfg["flow_shift"])
    log(f"distill: {noise_all.shape[0]} pairs, step σ {[round(s, 4) for s in sigmas]}, batch {cfg['distill_batch']} "
        f"per rank × {parallel.WORLD} rank(s)")
    seed = step + 7919 * parallel.RANK
    rng = random.Random(7000 + seed)
    gen = torch.Generator(device=device).manual_seed(8000 + seed)
    resumed_at, t0 = step, time.time()
    loss_sums, loss_counts = torch.zeros(len(sigmas), device=device), [0] * len(sigmas)  # per σ; read at log time
    max_steps = args.max_steps or 10**9
    last_save = time.time()
    profiler = StepProfiler(cfg["dit_profile"], device, "distill")

    def checkpoint():
        if parallel.is_main():
            save(path, dict(ema=compact(ema.state_dict()), step=step, base_step=base_step,
                            history=history(state if state and state.get("base_step") == base_step else None,
                                            "distill", cfg, resumed_at, step)))

    while step < max_steps:
        if (not parallel.active() or (step - resumed_at) % 10 == 0) and \
                not parallel.all_agree_to_continue(budget.left(), 10, device):
            break
        for group in opt.param_groups:
            group["lr"] = warmup_lr(step - resumed_at, cfg["distill_lr"], 100)
        b = cfg["distill_batch"]
        idx = torch.randint(noise_all.shape[0], (b,), device=device, generator=gen)
        eps, x0 = noise_all[idx].float(), x0_all[idx].float()
        ids, lengths = prompt_rows.take(pair_rows[idx])
        with torch.no_grad(), autocast(device):
            cond, bias = fast_dit.context_from(fast_dit.encode_text(encoder, ids, lengths), lengths, compact_context)
        i = rng.randrange(len(sigmas))
        s = sigmas[i]
        if i == 0:
            x = eps  # σ_0 = 1: the sampler starts from the pair's noise
        else:
            # What the sampler feeds step i: after perfect earlier steps, (1 − σ_i)·x0 + σ_i·ε with the pair's
            # own ε (x0 − σv and x0 + σ'v reuse the predicted ε); half of the batch instead comes from the
            # student's own rollout (exactly the sampler's input, with its current errors); a quarter of the
            # rest uses fresh noise for robustness.
            x = (1 - s) * x0 + s * eps
            half = b // 2
            if half:
                x[:half] = sample_student(student, cond[:half], eps[:half], cfg["flow_shift"], device, upto=i,
                                          bias=None if bias is None else bias[:half])
            quarter = (b - half) // 2
            if quarter:
                fresh = torch.randn(x[half:half + quarter].shape, device=device, generator=gen)
                x[half:half + quarter] = (1 - s) * x0[half:half + quarter] + s * fresh
        ts = torch.full((b,), s * 1000, device=device)
        with autocast(device):
            v = model(x, ts, cond, bias).float()
        pred_x0 = x - s * v
        loss = F.mse_loss(pred_x0, x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        fast_dit.ema_update(ema_params, params, min(0.995, (1 + step) / (10 + step)))
        loss_sums[i] += loss.detach()
        loss_counts[i] += 1
        profiler.step()
        if step % 100 == 0 or args.smoke:
            rate = (step - resumed_at) / (time.time() - t0)
            sums = parallel.total(loss_sums).tolist()  # each σ's losses and counts over all ranks
            counts = parallel.total(torch.tensor(loss_counts, device=device)).tolist()
            per = " ".join(f"σ{k}:{sums[k] / n:.4f}" for k, n in enumerate(counts) if n)
            log(f"distill step {step} x0 mse {per} | {rate:.1f} steps/s")
            loss_sums.zero_()
            loss_counts = [0] * len(sigmas)
        if time.time() - last_save > 120:
            checkpoint()
            last_save = time.time()
    checkpoint()
    log(f"distill: saved at step {step}")


# ----------------------------------------------------------------------------------------------- export


def stage_export(args, cfg, device, budget: Budget):
    from diffusers import UniPCMultistepScheduler, WanPipeline
    from transformers import PreTrainedTokenizerFast

    out = args.work / "export"
    if out.exists():
        shutil.rmtree(out)
    text = Text(torch.device("cpu"))
    encoder, base, base_step = load_base(args.work, cfg, torch.device("cpu"), text)
    vae = load_vae(args.work, cfg, torch.device("cpu"))
    distill = load(args.work / "distill.pt")
    tok = PreTrainedTokenizerFast(tokenizer_object=text.tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                  model_max_length=TEXT_LEN)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                        flow_shift=cfg["flow_shift"])
    pipe = WanPipeline(tokenizer=tok, text_encoder=encoder.to(torch.bfloat16), transformer=base.to(torch.bfloat16),
                       vae=vae.to(torch.bfloat16), scheduler=scheduler)
    pipe.save_pretrained(str(out), safe_serialization=True)
    common = dict(target_video_length=cfg["frames"], target_height=cfg["size"], target_width=cfg["size"], fps=cfg["fps"],
                  sample_shift=cfg["flow_shift"], negative_prompt="")
    # The base model's sampling defaults (UniPC + CFG), read by Kinema from the folder (see README).
    (out / "kinema_defaults.json").write_text(json.dumps(dict(
        common, infer_steps=cfg["base_steps"], sample_guide_scale=cfg["base_guidance"]), indent=2) + "\n")
    if distill is not None:
        student = make_dit(cfg)
        student.load_state_dict(distill["ema"])
        student.to(torch.bfloat16).save_pretrained(str(out / "distill"), safe_serialization=True)
        (out / "distill" / "lightx2v_config.json").write_text(json.dumps(dict(
            common, infer_steps=len(STEP_LIST), denoising_step_list=STEP_LIST, sample_guide_scale=1.0, enable_cfg=False),
            indent=2) + "\n")
    # Each checkpoint's per-call records (`history`): the recipe of these weights stage by stage; `config` is only
    # the export call's settings. Checkpoints from before the records existed have none.
    vae_state, dit_state = load(args.work / "vae.pt") or {}, load(args.work / "dit.pt") or {}
    stages = dict(vae=vae_state.get("history", []), dit=dit_state.get("history", []),
                  distill=distill.get("history", []) if distill else [])
    (out / "training.json").write_text(json.dumps(dict(
        base_steps_trained=base_step, distill_steps_trained=distill["step"] if distill else None, config=cfg,
        step_list=STEP_LIST, stages=stages), indent=2) + "\n")
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            log(f"export: {p.relative_to(out)} {p.stat().st_size / 1e6:.2f} MB")
    log(f"export: {total / 1e6:.2f} MB in {out}")
    # The folder must load with diffusers as it is.
    try:
        import accelerate  # noqa: F401  (diffusers cannot load the fp32-kept DiT modules without it)
    except ImportError:
        log("export: accelerate missing, WanPipeline.from_pretrained check skipped")
        return
    try:
        WanPipeline.from_pretrained(str(out))
        log("export: WanPipeline.from_pretrained ok")
    except Exception as error:  # a loading problem must not lose the export itself
        log(f"export: WanPipeline.from_pretrained FAILED: {error}")


def stage_evaluate(args, cfg, device, budget: Budget):
    """Generates the meaning-test prompts with both models on this device and scores them (analyse.py)."""
    import analyse

    text = Text(device)
    encoder, base, _ = load_base(args.work, cfg, device, text)
    vae = load_vae(args.work, cfg, device)
    distill = load(args.work / "distill.pt")
    cases = analyse.test_cases(args.eval_cases)
    prompts = [c["prompt"] for c in cases]
    gen = torch.Generator(device=device).manual_seed(9000)
    noise = torch.randn(latent_shape(cfg, len(cases)), device=device, generator=gen)
    with torch.no_grad(), autocast(device):
        cond = text.embed(encoder, prompts)
        uncond = text.embed(encoder, [""]).expand(len(cases), -1, -1)
    mean = torch.tensor(vae.config.latents_mean, device=device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=device).view(1, -1, 1, 1, 1)
    models = {"base": lambda: sample_base(base, cond, uncond, noise, cfg["base_steps"], cfg["base_guidance"],
                                          cfg["flow_shift"], device)}
    if distill is not None:
        student = make_dit(cfg)
        student.load_state_dict(distill["ema"])
        student = student.to(device).eval()
        models["4-step"] = lambda: sample_student(student, cond, noise, cfg["flow_shift"], device)
    for name, run in models.items():
        latents = run()
        with torch.no_grad(), autocast(device):
            video = torch.cat([vae.decode(latents[k:k + 16] * std + mean).sample.float()
                               for k in range(0, len(cases), 16)])
        results = [analyse.check(v, c) for v, c in zip(video.cpu(), cases)]
        passed = sum(r["pass"] for r in results)
        log(f"evaluate {name}: {passed}/{len(cases)} pass ({100 * passed / len(cases):.0f}%)")
        for part in ("colour", "direction", "shape"):
            log(f"  {part} ok: {sum(r[part + '_ok'] for r in results)}/{len(cases)}")
        for r, c in zip(results, cases):
            if not r["pass"]:
                log(f"  fail: {c['prompt']!r}: {r}")


# Under torchrun these run on every rank (DDP); the others on rank 0 alone.
PARALLEL_STAGES = ("dit", "distill")
STAGES = dict(vae=stage_vae, vae_decoder=stage_vae_decoder, dit=stage_dit, teacher_samples=stage_teacher_samples, distill=stage_distill,
              export=stage_export, evaluate=stage_evaluate)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(".demo-ckpt"))
    parser.add_argument("--stages", required=True, help="comma-separated: " + ",".join(STAGES))
    parser.add_argument("--budget-seconds", type=float, default=540, help="wall-clock budget for all the stages given")
    parser.add_argument("--stage-seconds", default="", help="per-stage budgets, e.g. vae=150,dit=380 (rest: share of what is left)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop a training stage after this many steps (0: budget only)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks every code path on a CPU in seconds")
    parser.add_argument("--force", action="store_true", help="retrain the VAE even if finished")
    parser.add_argument("--eval-cases", type=int, default=48)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="under torchrun each rank takes cuda:LOCAL_RANK (parallel.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a numeric training setting, e.g. --set dit_batch=256 --set bank=4096")
    args = parser.parse_args()
    cfg = dict(SMOKE if args.smoke else FULL)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg or isinstance(cfg[key], (dict, list)):
            raise SystemExit(f"--set {item}: not a numeric setting (known: {sorted(k for k, v in cfg.items() if not isinstance(v, (dict, list)))})")
        cfg[key] = type(cfg[key])(float(value)) if isinstance(cfg[key], int) else float(value)
    device = parallel.init(args.device)
    args.work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; known: {list(STAGES)}")
    fixed = {k: float(v) for k, v in (kv.split("=") for kv in args.stage_seconds.split(",") if kv)}
    overall = Budget(args.budget_seconds)
    for position, name in enumerate(stages):
        remaining = [s for s in stages[position:] if s not in fixed]
        share = overall.left() - sum(fixed.get(s, 0) for s in stages[position + 1:])
        seconds = min(fixed.get(name, share / max(1, len(remaining))), overall.left())
        log(f"== stage {name}: {seconds:.0f} s of {overall.left():.0f} s left")
        if name in PARALLEL_STAGES or parallel.is_main():
            STAGES[name](args, cfg, device, Budget(seconds))
        parallel.barrier()  # the other ranks wait out rank-0-only stages (their files are read next)
    log("done")
    parallel.finish()


if __name__ == "__main__":
    main()
