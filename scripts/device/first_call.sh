#!/usr/bin/env bash
# The first GPU call of a session: is everything still correct, and the issue 4/7 figures that are open, in
# one call under 10 minutes, each part under its own limit so partial results come back.
#   1. kinema doctor: every CUDA op (fused and vector kernels included) against the CPU reference, the cuDNN-
#      forced and wgmma rows, and the model goldens (DiT, VAE, umT5, CLIP, I2V/FLF2V) on the GPU
#   2. kinema cudnn-probe: the card's bf16 GEMM rate (issue 7's utilization row), cuDNN attention / conv (legacy, and the graph API in NCDHW and NDHWC) and
#      the wgmma kernel at Wan shapes
#   3. perf.sh dit14 vae pipe: the 14B forward (its peak memory vs diffusers: issue 4's last open figure), the
#      VAE decode and the whole 4-step pipeline with the umT5 encode, each with diffusers in the same call
# Logs are packed into $OUT/first-call.tar.gz (the device returns at most 8 files).
#
#   ../shared/tools/gpu-bundle && gzip -9 -c .device/kinema > .device/kinema.gz && rm .device/kinema   # here
#   bash scripts/device/preflight.sh                                                                  # here: the bundle on the CPU first
#   run: bash scripts/device/first_call.sh        # there, with carry [".device", ".whl"]
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
LOGS=/tmp/first-call; mkdir -p "$LOGS"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi

timeout 120 ./.device/kinema doctor --fixtures Tests/Fixtures > "$LOGS/doctor.log" 2>&1
echo "doctor rc $?"
grep -E "FAIL|passed, " "$LOGS/doctor.log" | cut -c1-220 | head -20
timeout 100 ./.device/kinema cudnn-probe --iterations 3 > "$LOGS/probe.log" 2>&1
echo "probe rc $?"
grep -E "^gemm|^sdpa|^wgmma sdpa|graph" "$LOGS/probe.log" | cut -c1-260
# The whole call must end inside the device's 600 s limit with the logs packed: perf gets what is left.
OUT=$LOGS timeout 330 bash scripts/device/perf.sh dit14 vae pipe 2>&1 | grep -v "^ *[0-9.]* ms"
tar -czf "$OUT/first-call.tar.gz" -C "$LOGS" .
