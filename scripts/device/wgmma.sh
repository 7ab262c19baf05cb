#!/usr/bin/env bash
# The Hopper wgmma attention kernel (KINEMA_ATTENTION=wgmma) on an H100: its doctor rows against the CPU
# reference, then time and max |Δ| against the mma.sync kernel at L = 32,760 (self) and 512 keys (cross),
# H = 12, d = 128. Compact text on stdout; full logs in $OUT.
#
#   ../shared/tools/gpu-bundle                        # here: builds .device/kinema
#   run: bash scripts/device/wgmma.sh                 # there, with carry [".device"]
#
# Not yet run on a GPU (written without one). What to look for:
#   - doctor "wgmma attention …" rows: all PASS (rel-L2 ≲ 1e-2 like the other bf16 attention rows). A row
#     that says "the wgmma kernel did not run" means the selection fell back (see the warning in the log).
#     A launch error (CUDA_ERROR_ILLEGAL_ADDRESS / MISALIGNED_ADDRESS) or NaN points at the descriptors,
#     swizzle or cp.async addressing; a rel-L2 ≈ 1 with finite numbers at a wrong LBO/SBO or swizzle.
#   - probe "wgmma diagnostics" line (before the timings): tile 0's S = Q·Kᵀ max|Δ| should be ~1e-6 of
#     max|S| (f32 accumulation of the same bf16 products) and the one-hot P·V max|Δ| exactly 0. A bad S
#     points at the Q/K descriptors, 32-byte k-steps or the cp.async swizzle; a good S with a bad P·V at
#     V's MN-major descriptor (LBO/SBO), the transpose flag or the register-A packing of P.
#   - probe "wgmma sdpa" lines: wgmma ms and TFLOP/s (prediction ≈ 350–450 TFLOP/s self-attention, mma.sync
#     ≈ 120) and max|Δ| vs mma.sync of bf16 size (≲ 1e-2, rel-L2 ≲ 5e-3).
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== doctor (wgmma rows)"
timeout 240 ./.device/kinema doctor > "$OUT/doctor.log" 2>&1
echo "doctor rc $?"
grep -iE "wgmma|warning" "$OUT/doctor.log" | cut -c1-220

echo "== probe"
timeout 240 ./.device/kinema cudnn-probe --wgmma-only --iterations 5 2>&1 | tee "$OUT/wgmma-probe.log"
