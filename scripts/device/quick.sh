#!/usr/bin/env bash
# A short GPU check for a nearly spent device budget: the doctor (every CUDA op against the CPU reference,
# the model goldens on the GPU), the 1.3B DiT forward at 480×832×81 with the per-kernel profile, and the
# diffusers baseline of the same forward, each under its own time limit so that partial results come back.
#
#   ../shared/tools/gpu-bundle && gzip .device/kinema     # here
#   run: bash scripts/device/quick.sh                      # there, with carry [".device", ".whl"]
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl > "$OUT/pip.log" 2>&1) &
pip_pid=$!

timeout 150 ./.device/kinema doctor --fixtures Tests/Fixtures > "$OUT/doctor.log" 2>&1
echo "doctor rc $?" | tee -a "$OUT/summary.txt"

timeout 75 ./.device/kinema bench --shape 1.3b --frames 21 --height 60 --width 104 --device cuda --precision bf16 \
    --warmup 1 --iterations 2 --profile --json "$OUT/bench-480p.json" > "$OUT/bench-480p.log" 2>&1
echo "bench rc $?" | tee -a "$OUT/summary.txt"

wait $pip_pid
PYTHONPATH=/tmp/site timeout 45 python3 scripts/bench/diffusers_baseline.py --shape 1.3b --frames 21 --height 60 --width 104 \
    --warmup 1 --iterations 3 --json "$OUT/diffusers-480p.json" > "$OUT/diffusers.log" 2>&1
echo "diffusers rc $?" | tee -a "$OUT/summary.txt"

echo "== doctor"
grep -E "^(GPU|CUDA|NVRTC|cuBLASLt|cuDNN|kernel|selection)" "$OUT/doctor.log" | cut -c1-200
grep -E "FAIL|passed, " "$OUT/doctor.log" | cut -c1-220 | head -30
echo "== bench 480p"
grep -E "median|peak|attention|cuDNN|warning" "$OUT/bench-480p.log" | head -8
grep -A 16 "per-kernel" "$OUT/bench-480p.log"
echo "== diffusers"
grep -E '"(gpu|dit_forward_median_s|peak_memory_gib)"' "$OUT/diffusers.log" || tail -5 "$OUT/diffusers.log"
