"""Writes the reference safetensors fixture for KinemaIOTests.

Output (tiny, checked in):
  Tests/Fixtures/safetensors/reference_all_dtypes.safetensors  -- written by the reference `safetensors`
      library (safetensors.torch.save_file), one or more tensors of every dtype Kinema reads, plus metadata
  Tests/Fixtures/safetensors/reference_all_dtypes.json         -- the expected values as JSON numbers
      (floats as the exact value the dtype holds; "inf", "-inf", "nan" as strings; integers exact)

Every value is exactly representable in its dtype, so the Swift test compares for equality.
Run: /opt/refenv/bin/python scripts/goldens/make_safetensors_fixture.py
Pinned versions used to produce the checked-in files: torch 2.15.0, safetensors 0.8.0.
"""
import json
import math
import os

import safetensors
import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "safetensors")

DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I8": torch.int8,
    "U8": torch.uint8,
    "I32": torch.int32,
    "I64": torch.int64,
    "BOOL": torch.bool,
}

# name -> (dtype tag, shape, values in row-major order)
CASES = {
    "f32.matrix": ("F32", [2, 3], [-2.5, -1.0, 0.0, 0.25, 1.5, 1024.0]),
    "f32.special": ("F32", [6], [math.inf, -math.inf, math.nan, -0.0, 3.4028234663852886e38, 2.0 ** -149]),
    "f32.scalar": ("F32", [], [42.0]),
    "f32.empty": ("F32", [2, 0], []),
    "f16.values": ("F16", [7], [-65504.0, -1.5, 0.0, 0.5, 2048.0, 2.0 ** -14, 2.0 ** -24]),
    "bf16.cube": ("BF16", [2, 2, 2], [-3.3895313892515355e38, -2.0, 0.0, 0.5, 1.5, 256.0, 2.0 ** -7, 2.0 ** -133]),
    "f8e4m3.values": ("F8_E4M3", [9], [-448.0, -1.5, 0.0, 2.0 ** -6, 0.5, 1.0, 3.0, 448.0, 2.0 ** -9]),
    "f8e5m2.values": ("F8_E5M2", [8], [-57344.0, -1.5, 0.0, 0.5, 1.0, 3.0, 57344.0, 2.0 ** -16]),
    "i8.values": ("I8", [5], [-128, -1, 0, 1, 127]),
    "u8.values": ("U8", [2, 2], [0, 1, 128, 255]),
    "i32.values": ("I32", [5], [-2147483648, -1, 0, 1, 2147483647]),
    "i64.values": ("I64", [6], [-9223372036854775808, -1, 0, 1, 2 ** 40 + 1, 9223372036854775807]),
    "bool.values": ("BOOL", [3], [True, False, True]),
}

METADATA = {"format": "pt", "producer": "kinema make_safetensors_fixture.py", "note": "ünïcode ✓"}


def encode(value):
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors, expected = {}, {}
    for name, (tag, shape, values) in CASES.items():
        dtype = DTYPES[tag]
        if dtype.is_floating_point and dtype not in (torch.float32, torch.float64):
            # Build in f64 then cast: every value is exact in the target, so the cast cannot round.
            tensor = torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)
        else:
            tensor = torch.tensor(values, dtype=dtype).reshape(shape)
        round_trip = tensor.to(torch.float64).flatten().tolist() if values else []
        for want, got in zip(values, round_trip):
            assert (math.isnan(want) and math.isnan(got)) or float(want) == got, (name, want, got)
        tensors[name] = tensor
        expected[name] = {"dtype": tag, "shape": shape, "values": [encode(v) for v in values]}

    path = os.path.join(OUT, "reference_all_dtypes.safetensors")
    save_file(tensors, path, metadata=METADATA)
    with open(os.path.join(OUT, "reference_all_dtypes.json"), "w", encoding="utf-8") as handle:
        json.dump({"metadata": METADATA, "tensors": expected,
                   "versions": {"torch": torch.__version__, "safetensors": safetensors.__version__}},
                  handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
