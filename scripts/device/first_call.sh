#!/usr/bin/env bash
# The first GPU call after the 2026-11-27 work, which was all written without a GPU: everything that tells
# whether it works, in one call under 10 minutes, each part under its own limit so partial results come back.
#   1. kinema doctor: every CUDA op (fused kernels included) against the CPU reference, the attention and conv
#      rows again with cuDNN forced, the wgmma rows (sm_90), and the model goldens (DiT, VAE, umT5, CLIP, I2V)
#   2. kinema cudnn-probe: cuDNN attention / conv and the wgmma kernel at Wan shapes (time, TFLOP/s, |Δ|)
#   3. the 1.3B DiT forward at 480×832×81 (auto selection) with the per-kernel profile, and diffusers' in the
#      same call
# What to look for: scripts/device/cudnn_probe.sh and wgmma.sh headers; docs/PERF.md "Built on 2026-11-27".
#
#   ../shared/tools/gpu-bundle && gzip -9 -c .device/kinema > .device/kinema.gz && rm .device/kinema   # here
#   run: bash scripts/device/first_call.sh        # there, with carry [".device", ".whl"]
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl > "$OUT/pip.log" 2>&1) &
pip_pid=$!

timeout 180 ./.device/kinema doctor --fixtures Tests/Fixtures > "$OUT/doctor.log" 2>&1
echo "doctor rc $?"
timeout 120 ./.device/kinema cudnn-probe --iterations 3 > "$OUT/probe.log" 2>&1
echo "probe rc $?"
timeout 75 ./.device/kinema bench --shape 1.3b --frames 21 --height 60 --width 104 --device cuda --precision bf16 \
    --warmup 1 --iterations 2 --profile --json "$OUT/bench-480p.json" > "$OUT/bench-480p.log" 2>&1
bench_rc=$?
echo "bench rc $bench_rc"
if [ $bench_rc -ne 0 ]; then
    # The default selection failed: the same forward on Kinema's own attention and conv kernels.
    KINEMA_ATTENTION=kinema KINEMA_CONV=kinema timeout 75 ./.device/kinema bench --shape 1.3b --frames 21 --height 60 \
        --width 104 --device cuda --precision bf16 --warmup 1 --iterations 2 --json "$OUT/bench-480p-kinema.json" \
        > "$OUT/bench-480p-kinema.log" 2>&1
    echo "bench (Kinema kernels) rc $?"; grep -E "median|peak" "$OUT/bench-480p-kinema.log"
fi
wait $pip_pid
PYTHONPATH=/tmp/site timeout 60 python3 scripts/bench/diffusers_baseline.py --shape 1.3b --frames 21 --height 60 --width 104 \
    --warmup 1 --iterations 3 --json "$OUT/diffusers-480p.json" > "$OUT/diffusers.log" 2>&1
echo "diffusers rc $?"

echo "== doctor"
grep -E "^(GPU|CUDA|NVRTC|cuBLASLt|cuDNN|NCCL|selection|kernel)" "$OUT/doctor.log" | cut -c1-200
grep -E "FAIL|passed, |warning" "$OUT/doctor.log" | cut -c1-220 | head -40
echo "== probe"
cut -c1-220 "$OUT/probe.log" | tail -30
echo "== bench 480p"
grep -E "median|peak|selection|warning" "$OUT/bench-480p.log" | head -8
grep -A 14 "per-kernel" "$OUT/bench-480p.log"
echo "== diffusers"
grep -E '"(gpu|dit_forward_median_s|peak_memory_gib)"' "$OUT/diffusers.log" || tail -5 "$OUT/diffusers.log"
