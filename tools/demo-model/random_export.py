"""Writes a demo-model export with random weights at the real sizes (no training), for timing Kinema on
a CPU before any trained weights exist:

    python random_export.py /tmp/demo-random        # then: kinema generate --model /tmp/demo-random/export …
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

import train


def main():
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/demo-random")
    work.mkdir(parents=True, exist_ok=True)
    cfg = train.FULL
    torch.manual_seed(0)
    vae = train.make_vae(cfg)
    z = cfg["vae"]["z_dim"]
    train.save(work / "vae.pt", dict(model=train.compact(vae.state_dict()), step=0, latents_mean=[0.0] * z, latents_std=[1.0] * z))
    text = train.Text(torch.device("cpu"))
    encoder, dit = train.make_text_encoder(cfg, text.tok.get_vocab_size()), train.make_dit(cfg)
    train.save(work / "dit.pt", dict(dit=train.compact(dit.state_dict()), encoder=train.compact(encoder.state_dict()),
                                     ema_dit=train.compact(dit.state_dict()), ema_encoder=train.compact(encoder.state_dict()),
                                     step=0, config=cfg))
    train.save(work / "distill.pt", dict(ema=train.compact(dit.state_dict()), step=0, base_step=0))
    args = SimpleNamespace(work=work, smoke=False)
    train.stage_export(args, cfg, torch.device("cpu"), train.Budget(600))


if __name__ == "__main__":
    main()
