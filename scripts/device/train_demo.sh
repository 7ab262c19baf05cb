#!/usr/bin/env bash
# Trains the bundled demo model on the GPU machine, a few stages per call (tools/demo-model/train.py).
#
#   run: bash scripts/device/train_demo.sh STAGES SECONDS [STAGE_SECONDS [train.py options…]]      with carry [".whl", ".demo-ckpt"]
#   e.g. bash scripts/device/train_demo.sh vae,dit 530 vae=150
#        bash scripts/device/train_demo.sh dit,teacher_samples,distill,export,evaluate 530 dit=180,teacher_samples=70,export=30,evaluate=40
#
# GPUS=K (K ≥ 2) starts train.py under torchrun on K GPUs of the host (kinds nvidia-h100-x2/-x4): the dit and
# distill stages run data-parallel with dit_batch / distill_batch clips per GPU (global batch = that × K),
# the other stages on GPU 0 while the rest wait. Unset or 1: one process, as before.
# DEMO_SMOKE=1 runs the tiny CPU smoke sizes (a local check of this script; with GPUS=2 on a CPU it uses gloo).
# Resumes from .demo-ckpt/ (vae.pt, dit.pt, distill.pt; bf16, a few MB each) when the tree carries it, and
# returns in $OUT: train.log, the checkpoints and the export packed as demo-ckpt.tar split into ≤ 15 MiB
# parts (demo-ckpt.tar.part-aa, -ab, …; the device returns at most 8 files of 16 MiB). Here, unpack with
#   cat <files_at>/demo-ckpt.tar.part-* | tar -x -C .      (restores .demo-ckpt/, export in .demo-ckpt/export/)
set -uo pipefail
STAGES=${1:?stages, e.g. vae,dit}
SECONDS_BUDGET=${2:-530}
STAGE_SECONDS=${3:-}
EXTRA=("${@:4}")  # passed on to train.py, e.g. --set dit_batch=256
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT" .demo-ckpt
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}

# diffusers is not installed there: install the carried wheels (as scripts/device/check.sh does).
if ! "$PYTHON" -c "import diffusers" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    else
        echo "diffusers missing and no .whl/ carried" | tee "$OUT/train.log"; exit 2
    fi
fi
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/train.log"; } 2>/dev/null || echo "no nvidia-smi" | tee "$OUT/train.log"
ls -la .demo-ckpt | tee -a "$OUT/train.log"

GPUS=${GPUS:-1}
LAUNCH=("$PYTHON")
if [ "$GPUS" -gt 1 ]; then
    LAUNCH=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$GPUS")
    echo "torchrun: $GPUS processes" | tee -a "$OUT/train.log"
fi
"${LAUNCH[@]}" tools/demo-model/train.py --work .demo-ckpt --stages "$STAGES" --budget-seconds "$SECONDS_BUDGET" \
    ${STAGE_SECONDS:+--stage-seconds "$STAGE_SECONDS"} ${DEMO_SMOKE:+--smoke --max-steps 2 --eval-cases 2} "${EXTRA[@]}" 2>&1 | grep --line-buffered -v "it/s\]" | tee -a "$OUT/train.log"
rc=${PIPESTATUS[0]}

# teacher.pt (the (noise, x0) pairs, hundreds of MB) stays behind: distill runs in the same call.
tar -cf /tmp/demo-ckpt.tar --exclude=.demo-ckpt/teacher.pt --exclude='*.tmp' .demo-ckpt
split -b 15M /tmp/demo-ckpt.tar "$OUT/demo-ckpt.tar.part-"
ls -la "$OUT" | tee -a "$OUT/train.log"
echo "train.py rc $rc"
exit $rc
