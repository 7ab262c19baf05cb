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
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
# The bundle travels gzipped (the carried tree is limited to 64 MiB).
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

./.device/kinema doctor --fixtures Tests/Fixtures > "$OUT/doctor.log" 2>&1
doctor_rc=$?

./.device/kinema bench --shape 1.3b --frames 4 --height 32 --width 32 --device cuda --precision bf16 \
    --warmup 1 --iterations 3 --json "$OUT/bench-1.3b-cuda.json" > "$OUT/bench.log" 2>&1
bench_rc=$?
# The 480×832×81 shape (32,760 tokens) that the diffusers baseline below runs.
./.device/kinema bench --shape 1.3b --frames 21 --height 60 --width 104 --device cuda --precision bf16 \
    --warmup 1 --iterations 3 --profile --json "$OUT/bench-1.3b-480p-cuda.json" > "$OUT/bench-480p.log" 2>&1
bench480_rc=$?
# The Wan2.1 VAE decode at the same shape (pixel sizes: 81 frames of 480×832 ← 21×60×104 latents).
timeout 300 ./.device/kinema bench --vae --frames 81 --height 480 --width 832 --device cuda --precision bf16 \
    --warmup 1 --iterations 3 --json "$OUT/bench-vae-480p-cuda.json" > "$OUT/bench-vae.log" 2>&1
benchvae_rc=$?

for precision in f32 bf16; do
    ./.device/kinema generate --model Tests/Fixtures/wan_pipeline/diffusers --prompt "a red circle moving right" \
        --frames 9 --height 32 --width 32 --steps 4 --seed 1 --device cuda --precision $precision \
        --output "$OUT/tiny-$precision.gif" > "$OUT/generate-$precision.log" 2>&1
    echo "generate $precision rc $?" >> "$OUT/generate.txt"
done

echo "== doctor (rc $doctor_rc)"
grep -E "^(GPU|CUDA|NVRTC|cuBLASLt|cuDNN|selection|kernel)" "$OUT/doctor.log"
grep -E "FAIL|passed, " "$OUT/doctor.log"
echo "== generate (tiny model on the GPU)"
cat "$OUT/generate.txt"; tail -n 2 "$OUT/generate-bf16.log"
echo "== bench (rc $bench_rc)"
tail -4 "$OUT/bench.log"
echo "== bench VAE decode 81×480×832 (rc $benchvae_rc)"
grep -E "median|peak|attention:" "$OUT/bench-vae.log"

# The diffusers baseline at the 480p / 81-frame shape (needs .whl carried; see scripts/bench/README.md).
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
    python3 scripts/bench/diffusers_baseline.py --shape 1.3b --frames 21 --height 60 --width 104 --vae \
        --json "$OUT/diffusers-1.3b-480p.json" > "$OUT/diffusers.log" 2>&1
    echo "== bench 480p (rc $bench480_rc)"
grep -A 30 -E "median" "$OUT/bench-480p.log"
echo "== diffusers baseline (rc $?)"
    grep -E '"(gpu|dit_forward_median_s|peak_memory_gib|vae_decode_median_s|vae_peak_memory_gib)"' "$OUT/diffusers.log"
    echo "== Kinema VAE decode (same shape)"; grep -E "median|peak" "$OUT/bench-vae.log"
fi
