#!/usr/bin/env bash
# cuDNN on the GPU machine: version, fused attention at the Wan shapes (self 32,760 tokens, cross 512 / 257,
# D 64), VAE decoder convolutions at 480p — plan build, time, TFLOP/s and difference against Kinema's own
# kernels — then the doctor's cuDNN rows and a VAE decode bench with and without cuDNN. Compact text on
# stdout; full logs in $OUT.
#
#   ../shared/tools/gpu-bundle                        # here: builds .device/kinema
#   run: bash scripts/device/cudnn_probe.sh           # there, with carry [".device"]
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import nvidia.cudnn, os; print('pip cudnn at', os.path.dirname(nvidia.cudnn.__file__ or nvidia.cudnn.__path__[0]))" 2>/dev/null
ls /usr/local/lib/python3*/dist-packages/nvidia/cudnn/lib/libcudnn.so.9 /usr/local/lib/python3*/site-packages/nvidia/cudnn/lib/libcudnn.so.9 2>/dev/null

echo "== probe"
timeout 420 ./.device/kinema cudnn-probe --iterations 5 2>&1 | tee "$OUT/cudnn-probe.log"
echo "probe rc ${PIPESTATUS[0]}"

echo "== doctor (attention/conv rows)"
timeout 300 ./.device/kinema doctor --fixtures Tests/Fixtures > "$OUT/doctor.log" 2>&1
echo "doctor rc $?"
grep -E "^(GPU|cuDNN|selection)" "$OUT/doctor.log"
grep -E "attention|conv3d|VAE|vae|FAIL|passed, |warning" "$OUT/doctor.log" | cut -c1-220

# (No Kinema-kernels-only decode at this size: the direct conv kernel would take minutes; the probe's conv
# lines above compare the two per convolution.)
echo "== VAE decode 81×480×832 bf16 (KINEMA_CONV/KINEMA_ATTENTION auto)"
timeout 300 ./.device/kinema bench --vae --frames 81 --height 480 --width 832 --device cuda --precision bf16 \
    --warmup 1 --iterations 3 --json "$OUT/bench-vae-cudnn.json" > "$OUT/bench-vae-cudnn.log" 2>&1
echo "rc $?"; grep -vE "^    cuDNN conv" "$OUT/bench-vae-cudnn.log" | tail -8
