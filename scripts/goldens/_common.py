"""Shared helpers for the Kinema golden-fixture generators.

Everything here is deliberately small: version pinning, determinism switches,
and JSON / safetensors writers that produce stable, byte-reproducible files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import zlib
from pathlib import Path

import torch

PINNED_DIFFUSERS = "0.42.1"
PINNED_TORCH_MAJOR_MINOR = (2, 15)

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"


def torch_major_minor() -> tuple[int, int]:
    base = torch.__version__.split("+")[0]
    major, minor = base.split(".")[:2]
    return int(major), int(minor)


def check_versions() -> dict:
    """Refuse to run against anything but the pinned reference stack."""
    import diffusers
    import safetensors

    if diffusers.__version__ != PINNED_DIFFUSERS:
        raise SystemExit(
            f"diffusers {diffusers.__version__} found, goldens are pinned to {PINNED_DIFFUSERS}"
        )
    if torch_major_minor() != PINNED_TORCH_MAJOR_MINOR:
        raise SystemExit(
            f"torch {torch.__version__} found, goldens are pinned to "
            f"{PINNED_TORCH_MAJOR_MINOR[0]}.{PINNED_TORCH_MAJOR_MINOR[1]}.x"
        )
    return versions()


def versions() -> dict:
    import diffusers
    import safetensors

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "safetensors": safetensors.__version__,
        "device": "cpu",
    }


def set_determinism() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    # One thread: reductions are then summed in a fixed order, which keeps the
    # files byte-identical from run to run on the same machine.
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


def generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def name_seed(base_seed: int, name: str) -> int:
    """A per-name seed that does not depend on iteration order."""
    return (base_seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63 - 1)


def randn(shape, seed: int, std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
    return torch.randn(*shape, generator=generator(seed), dtype=torch.float32) * std + mean


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {}
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{k}: not a tensor")
        clean[k] = v.detach().to("cpu").contiguous().clone()
    # safetensors writes the metadata map in hash order, so more than one key
    # would make the files differ from run to run: allow a single key only.
    if metadata is not None and len(metadata) > 1:
        raise ValueError("use at most one metadata key (keeps files byte-reproducible)")
    meta = None if metadata is None else {str(k): str(v) for k, v in metadata.items()}
    save_file(clean, str(path), metadata=meta)


def reset_dir(path: Path) -> None:
    """Remove a generated fixture directory (only ever under Tests/Fixtures)."""
    path = path.resolve()
    if FIXTURES.resolve() not in path.parents:
        raise RuntimeError(f"refusing to delete {path}: not under {FIXTURES}")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def shape_of(t: torch.Tensor) -> list[int]:
    return [int(s) for s in t.shape]


def dtype_name(t: torch.Tensor) -> str:
    return {
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.float8_e4m3fn: "F8_E4M3",
        torch.float8_e5m2: "F8_E5M2",
        torch.int64: "I64",
        torch.uint8: "U8",
        torch.bool: "BOOL",
    }[t.dtype]


def rel(path: Path) -> str:
    return os.path.relpath(path, REPO_ROOT)
