#!/usr/bin/env bash
# A short GPU call: `kinema doctor` (every CUDA op against the CPU reference, the model goldens on the GPU),
# then the perf.sh parts given (Kinema and diffusers in the same call), logs packed into $OUT/check-perf.tar.gz.
# For a change that needs both its correctness and its speed checked when little device time is left.
#
#   ../shared/tools/gpu-bundle && gzip -9 -c .device/kinema > .device/kinema.gz && rm .device/kinema   # here
#   bash scripts/device/preflight.sh                                                                  # here: the bundle on the CPU first
#   run: bash scripts/device/check_then_perf.sh vae dit13     # there, with carry [".device", ".whl"]
# DOCTOR_SECONDS (default 100) and PERF_SECONDS (default 150) bound the two parts; FIRST_PARTS (below) and
# FIRST_SECONDS (default 200) an optional part before them.
# The call's tree limit is 64 MiB: the tracked files (≈ 38 MB with the 20 MB demo model), the gzipped bundle
# (≈ 24 MB) and .whl (≈ 6 MB) exceed it, so move models/kinema-demo out of the checkout for the call (nothing
# here reads it) and back after.
set -uo pipefail
OUT=${OUT:-/tmp/kinema-out}
mkdir -p "$OUT"
LOGS=/tmp/check-perf; mkdir -p "$LOGS"
export KINEMA_KERNEL_CACHE="/tmp/kinema-kernel-cache"
if [ -f .device/kinema.gz ] && [ ! -x .device/kinema ]; then gunzip -c .device/kinema.gz > .device/kinema && chmod +x .device/kinema; fi

# FIRST_PARTS: perf.sh parts run before the doctor, so that on a fresh machine they are its first GPU processes
# (e.g. FIRST_PARTS=vae-first-use: the first decode with every cache machine-wide still empty).
if [ -n "${FIRST_PARTS:-}" ]; then
    OUT=$LOGS timeout "${FIRST_SECONDS:-200}" bash scripts/device/perf.sh $FIRST_PARTS 2>&1 | grep -v "^ *[0-9.]* ms" | grep -v "^|"
fi
timeout "${DOCTOR_SECONDS:-100}" ./.device/kinema doctor --fixtures Tests/Fixtures > "$LOGS/doctor.log" 2>&1
rc=$?
echo "doctor rc $rc"
[ $rc -ne 0 ] && tail -4 "$LOGS/doctor.log"   # with KINEMA_DOCTOR_TRACE=1: the check it stopped in
grep -E "FAIL|passed, " "$LOGS/doctor.log" | cut -c1-220 | head -20
OUT=$LOGS timeout "${PERF_SECONDS:-150}" bash scripts/device/perf.sh "$@" 2>&1 | grep -v "^ *[0-9.]* ms"
tar -czf "$OUT/check-perf.tar.gz" -C "$LOGS" .
