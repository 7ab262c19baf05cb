#!/usr/bin/env bash
# The GPU machine's one script: doctor (every CUDA op against the CPU reference, then the diffusers model
# goldens on the GPU) and a smoke benchmark of the Wan DiT at real 1.3B shapes. Logs go to $OUT; a short
# table is printed last.
#
#   ../shared/tools/gpu-bundle            # here: builds .device/kinema
#   run: bash scripts/device/check.sh     # there, with carry [".device"]
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
export KINEMA_KERNEL_CACHE="$OUT/../kernel-cache"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

./.device/kinema doctor --fixtures Tests/Fixtures > "$OUT/doctor.log" 2>&1
doctor_rc=$?

./.device/kinema bench --shape 1.3b --frames 4 --height 32 --width 32 --device cuda --precision bf16 \
    --warmup 1 --iterations 3 --json "$OUT/bench-1.3b-cuda.json" > "$OUT/bench.log" 2>&1
bench_rc=$?

echo "== doctor (rc $doctor_rc)"
grep -E "^(GPU|CUDA|NVRTC|kernel)" "$OUT/doctor.log"
grep -E "FAIL|passed, " "$OUT/doctor.log"
echo "== bench (rc $bench_rc)"
tail -4 "$OUT/bench.log"
