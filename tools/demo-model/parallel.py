"""Data-parallel training across the GPUs of one host (torchrun), and a no-op when run as one process.

    python -m torch.distributed.run --standalone --nproc_per_node=K train.py …   (scripts/device/train_demo.sh GPUS=K)

Only the dit and distill stages run on every rank (DDP: each rank its own latent bank / pair draws and
random streams, gradients averaged, so the global batch is per-rank batch × K). The other stages run on rank
0 while the rest wait at a barrier. Rank 0 alone logs and writes checkpoints. Stage budgets are wall-clock,
so the ranks agree on when to stop through an all-reduce every few steps (never per step: it syncs).
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

RANK = int(os.environ.get("RANK", "0"))
WORLD = int(os.environ.get("WORLD_SIZE", "1"))
LOCAL_RANK = int(os.environ.get("LOCAL_RANK", "0"))


def active() -> bool:
    return WORLD > 1


def is_main() -> bool:
    return RANK == 0


def init(device_name: str) -> torch.device:
    """The device of this rank; joins the process group when started by torchrun."""
    device = torch.device(device_name)
    if not active():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", LOCAL_RANK)
        torch.cuda.set_device(device)
    # Rank-0-only stages (the VAE: several minutes) keep the others at a barrier: allow for it.
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            timeout=datetime.timedelta(minutes=30),
                            **({"device_id": device} if device.type == "cuda" else {}))
    return device


def barrier():
    if active():
        dist.barrier()


def finish():
    if active():
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP around a training module (broadcasts rank 0's weights once). Buffers are constants here (RoPE
    tables), so they are not re-broadcast every forward."""
    if not active():
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # Newer torch names the per-forward buffer sync forward_sync_buffers (broadcast_buffers is deprecated).
    no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else "broadcast_buffers")
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   **{no_sync: False})


def total(value: torch.Tensor) -> torch.Tensor:
    """Sum over the ranks (for logging)."""
    if active():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def mean(value: torch.Tensor) -> torch.Tensor:
    """Average over the ranks (for logging)."""
    return total(value) / WORLD


def min_seconds_left(seconds_left: float, device: torch.device) -> float:
    """The least time any rank has left (one small all-reduce + host sync): one value every rank agrees on, for
    stopping together and for time-based learning-rate schedules that must not differ between replicas."""
    if not active():
        return seconds_left
    t = torch.tensor([seconds_left], device=device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t.item()


def all_agree_to_continue(seconds_left: float, reserve: float, device: torch.device) -> bool:
    """True while every rank has more than `reserve` seconds left."""
    return min_seconds_left(seconds_left, device) > reserve
