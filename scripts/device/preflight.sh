#!/usr/bin/env bash
# Run HERE, before a GPU call: the static release bundle on this machine's CPU, over the code paths a device call
# takes (the fixture pipeline end to end, the real-shaped VAE decode in bf16 and f32). A failure that only the
# optimized build shows costs device time otherwise — on 2026-11-27 a miscompiled helper in the release build
# crashed `kinema doctor` on the GPU machine before it printed a line. About a minute.
#
#   ../shared/tools/gpu-bundle && gzip -9 -c .device/kinema > .device/kinema.gz && rm .device/kinema
#   bash scripts/device/preflight.sh
set -euo pipefail
K=$(mktemp /tmp/kinema-preflight.XXXXXX)
trap 'rm -f "$K" /tmp/kinema-preflight.gif' EXIT
gunzip -c .device/kinema.gz > "$K" && chmod +x "$K"
"$K" generate --model Tests/Fixtures/wan_pipeline/diffusers --prompt "a red circle moving right" --frames 9 --height 32 --width 32 \
    --steps 4 --output /tmp/kinema-preflight.gif | tail -1
# 17×256×256: a latent of 81,920 values, so the seeded noise takes its parallel path (SplitMix64.normals(seed:count:threads:)).
"$K" generate --model Tests/Fixtures/wan_pipeline/diffusers --prompt "a red circle moving right" --frames 17 --height 256 --width 256 \
    --steps 2 --seed 5 --output /tmp/kinema-preflight.gif | tail -1
for precision in bf16 f32; do
    "$K" bench --vae --frames 5 --height 128 --width 128 --device cpu --precision $precision --warmup 0 --iterations 1 | grep median
done
echo "preflight passed"
