#!/usr/bin/env bash
# Where the time goes in the slow parts of `perf.sh vae pipe`: the VAE decode and the umT5-XXL encode,
# each with the per-kernel profile. Everything is packed into one tar (the device returns at most 8 files).
#   run: bash scripts/device/diag.sh          # with carry [".device"]
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
W=/tmp/diag; mkdir -p "$W" "$OUT"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi
K=./.device/kinema
timeout 150 $K bench --vae --frames 81 --height 480 --width 832 --device cuda --precision bf16 --warmup 1 \
    --iterations 1 --profile --json "$W/k-vae.json" > "$W/k-vae.log" 2>&1; echo "vae rc $?"
timeout 200 $K bench --pipeline --shape 1.3b --frames 81 --height 480 --width 832 --steps 4 --guidance 1 --device cuda \
    --precision bf16 --warmup 1 --iterations 1 --profile --json "$W/k-pipe.json" > "$W/k-pipe.log" 2>&1; echo "pipe rc $?"
tar -czf "$OUT/diag.tar.gz" -C "$W" .
cat "$W/k-vae.log" | cut -c1-200 | tail -32
cat "$W/k-pipe.log" | cut -c1-200 | tail -34
