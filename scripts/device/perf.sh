#!/usr/bin/env bash
# Kinema vs diffusers at the real Wan2.1 shapes, bf16, in one GPU call (issue 7's table):
#   dit13  1.3B DiT forward at 480×832×81 (32,760 tokens), with the per-kernel profile, and again with
#          KINEMA_FUSED=0
#   dit14  14B DiT forward at 480×832×81
#   dit14-720  14B DiT forward at 720×1280×81 (75,600 tokens)
#   vae    VAE decode, 21 latent frames → 81×480×832, with the per-kernel profile
#   vae-first-use  the first decode of a fresh process, three ways (kernel cache cold / warm, 4 / 1 cuDNN candidates)
#   pipe   whole 4-step text-to-video at 1.3B shapes (umT5-XXL encode + 4 UniPC steps, no CFG + decode),
#          and the umT5-XXL encode of a 512-token prompt
# Each part runs Kinema then the diffusers baseline under its own time limit; logs and JSON go to $OUT.
#
#   ../shared/tools/gpu-bundle && gzip .device/kinema      # here
#   run: bash scripts/device/perf.sh dit13 vae pipe        # there, with carry [".device", ".whl"]
set -uo pipefail
# Logs go to $LOGS and are packed into $OUT/perf.tar.gz at the end (the device returns at most 8 files).
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
FINAL_OUT=$OUT
OUT=/tmp/perf-logs; mkdir -p "$OUT"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl > "$OUT/pip.log" 2>&1
export PYTHONPATH=/tmp/site
K=./.device/kinema
B="python3 scripts/bench/diffusers_baseline.py"

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(dit13 vae pipe)
for part in "${parts[@]}"; do
    case $part in
    dit13)
        timeout 90 $K bench --shape 1.3b --frames 21 --height 60 --width 104 --device cuda --precision bf16 --warmup 1 \
            --iterations 3 --profile --json "$OUT/k-dit13.json" > "$OUT/k-dit13.log" 2>&1
        timeout 90 $B --shape 1.3b --frames 21 --height 60 --width 104 --warmup 2 --iterations 5 --json "$OUT/d-dit13.json" > "$OUT/d-dit13.log" 2>&1
        # The same forward with the fused passes off (KINEMA_FUSED=0): the fusion's gain, measured.
        KINEMA_FUSED=0 timeout 90 $K bench --shape 1.3b --frames 21 --height 60 --width 104 --device cuda --precision bf16 \
            --warmup 1 --iterations 3 --json "$OUT/k-dit13-unfused.json" > "$OUT/k-dit13-unfused.log" 2>&1
        grep -hE "median" "$OUT/k-dit13-unfused.log" | sed 's/^/unfused: /' ;;
    vae-first-use)
        # Where a fresh process's first decode goes (49.5 s on 2026-11-27): NVRTC into an empty kernel cache, then
        # cuDNN's plan choice per conv problem (each plan line: setup ms, and its candidates' finalize ms). Three runs: cold
        # kernel cache with 4 candidates; warm cache, 4 candidates (the plans the cold run chose, remembered in the cache
        # folder: only the winners finalize); warm cache, heuristics' first plan only.
        # FIRST_USE_RUNS picks fewer, e.g. "cold 4,warm 1" (the cold run's plan lines alone split NVRTC from cuDNN);
        # "cold default,warm default": Kinema's default rule (see CUDNNChannelsLastConvolution).
        # A third word "nojit" runs with CUDA_CACHE_DISABLE=1 (the driver's PTX JIT cache off): on a machine whose
        # first process paid 49.5 s against 5.75 s for later ones, it tells whether that cache is the difference.
        rm -rf /tmp/kinema-kernel-cache-first-use
        IFS=, read -ra first_use_runs <<< "${FIRST_USE_RUNS:-cold 4,warm 4,warm 1}"
        for run in "${first_use_runs[@]}"; do
            set -- $run
            [ "$1" = cold ] && rm -rf /tmp/kinema-kernel-cache-first-use   # each cold run starts from an empty Kinema cache
            label="$1-$2${3:+-$3}"
            # "default" leaves KINEMA_CUDNN_CANDIDATES unset: Kinema's own rule (up to 4 timed, but a finalize that
            # compiled kernels ends the choice: the fastest of the plans built so far, remembered as untimed).
            candidates=$([ "$2" = default ] && echo "" || echo "$2")
            CUDA_CACHE_DISABLE=$([ "${3:-}" = nojit ] && echo 1 || echo 0) KINEMA_KERNEL_CACHE=/tmp/kinema-kernel-cache-first-use \
                env -u KINEMA_CUDNN_CANDIDATES ${candidates:+KINEMA_CUDNN_CANDIDATES=$candidates} timeout 150 $K bench --vae \
                --frames 81 --height 480 --width 832 --device cuda --precision bf16 --warmup 1 --iterations 2 \
                > "$OUT/k-vae-first-use-$label.log" 2>&1
            echo "first use ($1 kernel cache, $2 candidates${3:+, $3}): $(grep -h 'warm-up' "$OUT/k-vae-first-use-$label.log")" \
                "$(grep -h 'median' "$OUT/k-vae-first-use-$label.log")"
            # Each plan line's "setup N ms": the problem's whole plan choice (graphs, heuristics, finalizes, timing).
            grep -ho 'setup [0-9]* ms' "$OUT/k-vae-first-use-$label.log" | tr -dc '0-9\n' \
                | awk '{ s += $1 } END { printf "  cuDNN plan choice total: %.1f s\n", s / 1000 }'
        done ;;
    dit14)
        timeout 150 $K bench --shape 14b --frames 21 --height 60 --width 104 --device cuda --precision bf16 --warmup 1 \
            --iterations 2 --json "$OUT/k-dit14.json" > "$OUT/k-dit14.log" 2>&1
        timeout 150 $B --shape 14b --frames 21 --height 60 --width 104 --warmup 1 --iterations 3 --json "$OUT/d-dit14.json" > "$OUT/d-dit14.log" 2>&1 ;;
    dit14-720)
        # 720×1280×81: 75,600 tokens (issue 7's third row).
        timeout 200 $K bench --shape 14b --frames 21 --height 90 --width 160 --device cuda --precision bf16 --warmup 1 \
            --iterations 2 --json "$OUT/k-dit14-720.json" > "$OUT/k-dit14-720.log" 2>&1
        timeout 200 $B --shape 14b --frames 21 --height 90 --width 160 --warmup 1 --iterations 2 --json "$OUT/d-dit14-720.json" \
            > "$OUT/d-dit14-720.log" 2>&1 ;;
    vae)
        timeout 120 $K bench --vae --frames 81 --height 480 --width 832 --device cuda --precision bf16 --warmup 1 \
            --iterations 3 --profile --json "$OUT/k-vae.json" > "$OUT/k-vae.log" 2>&1
        timeout 120 $B --vae-only --frames 21 --height 60 --width 104 --json "$OUT/d-vae.json" > "$OUT/d-vae.log" 2>&1
        # The upsampling in its reference form (nearest ×2, then the 3×3 conv): the sub-pixel form's gain, measured.
        KINEMA_VAE_SUBPIXEL=0 timeout 120 $K bench --vae --frames 81 --height 480 --width 832 --device cuda --precision bf16 \
            --warmup 1 --iterations 3 > "$OUT/k-vae-no-subpixel.log" 2>&1
        grep -hE "median" "$OUT/k-vae-no-subpixel.log" | sed 's/^/upsampling without sub-pixel convs: /' ;;
    pipe)
        timeout 200 $K bench --pipeline --shape 1.3b --frames 81 --height 480 --width 832 --steps 4 --guidance 1 --device cuda \
            --precision bf16 --warmup 1 --iterations 2 --profile --json "$OUT/k-pipe.json" > "$OUT/k-pipe.log" 2>&1
        timeout 200 python3 scripts/bench/diffusers_pipeline_baseline.py --shape 1.3b --steps 4 --json "$OUT/d-pipe.json" > "$OUT/d-pipe.log" 2>&1 ;;
    *) echo "unknown part $part"; exit 2 ;;
    esac
    echo "== $part"
    grep -hE "median|warm-up|first generation|peak|resident|selection|attention|umT5" "$OUT/k-$part.log" 2>/dev/null | head -7
    grep -hE '"(gpu|dit_forward_median_s|peak_memory_gib|resident_gib|vae_decode_median_s|vae_peak_memory_gib|first_pipeline_s|pipeline_median_s|pipeline_peak_memory_gib|umt5_encode_median_s)"' "$OUT/d-$part.log" 2>/dev/null
done
grep -h -A 14 "per-kernel" "$OUT/k-dit13.log" 2>/dev/null
grep -h -A 12 "per-kernel" "$OUT/k-vae.log" 2>/dev/null
# Issue 7's table from this call's JSON files (GEMM_TFLOPS=<the card's measured bf16 rate> adds the MFU row).
python3 scripts/bench/targets_table.py "$OUT" ${GEMM_TFLOPS:+--gemm-tflops "$GEMM_TFLOPS"} | tee "$OUT/targets.md"
tar -czf "$FINAL_OUT/perf.tar.gz" -C "$OUT" .
