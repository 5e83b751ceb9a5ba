#!/usr/bin/env bash
# One short session on a lent GPU, in one call: the kit's self-check on the GPU, the speed benchmark, and as much
# of one paper-schedule CIFAR-10 point (Table 1's beta = 1, lambda = 1: the VAE's 100 epochs, then the LSR-GAN's
# 500, at batch 32) as the time left allows, stopped at a checkpoint so that the next session resumes it.
#
#     OUT=folder DATA=folder RUNS=folder PARTS="selfcheck speed kernels gz point" bash benchmarks/gpu_session.sh [SECONDS]
#
# DATA holds cifar10-jpeg/train.zip + test.zip (the loader's layout; only the training split is used here).
# RUNS is the runs folder: carry the one a previous session brought back and the point goes on from there.
# Everything it measures lands in OUT: session.log, selfcheck.log, gpu_speed.json, selfcheck_kernels.json, and
# vae/ and gan/ (each run's config.json, run.json, losses.csv and checkpoint.pt or weights.pt); with the part gz, the
# demo's record and figure and prior_mismatch_gz.jsonl with a grid per stage-1 length (GZ_EPOCHS, default 25 50 100).
set -u
OUT=${OUT:?set OUT to the folder for the results}
DATA=${DATA:-.gpu/data}
TOTAL=${1:-480}
DEVICE=${DEVICE:-cuda}   # cpu: a dry run of this script where no GPU is
STEPS=${STEPS:-200}
RUNS=${RUNS:-/tmp/runs}
PARTS=${PARTS:-selfcheck speed point}
has() { [[ " $PARTS " == *" $1 "* ]]; }
start=$(date +%s)
left() { echo $(( TOTAL - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 LSR_CACHE=${LSR_CACHE:-/tmp/lsr-cache}
exec > >(tee -a "$OUT/session.log") 2>&1

echo "== machine ($(date -u +%FT%TZ))"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv || true
lscpu | grep -m1 "Model name" || true
python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
  "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
# the image's torch stands in for the kit's pin (nothing can be installed there); the kit itself without deps
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
lsr() { python3 -m lsr_utils "$@"; }

if has selfcheck; then
echo "== selfcheck ($(left) s left)"
timeout 150 python3 -m lsr_utils selfcheck --device "$DEVICE" 2>&1 | tee "$OUT/selfcheck.log"
echo "selfcheck rc=${PIPESTATUS[0]}"
fi

if has kernels; then
echo "== selfcheck_kernels ($(left) s left)"
timeout 150 python3 benchmarks/selfcheck_kernels.py --device "$DEVICE" --json "$OUT/selfcheck_kernels.json"
echo "selfcheck_kernels rc=$?"
fi

if has speed; then
echo "== gpu_speed ($(left) s left)"
timeout 240 python3 benchmarks/gpu_speed.py --device "$DEVICE" --rounds 3 --steps "$STEPS" --warmup "${WARMUP:-20}" \
    --json "$OUT/gpu_speed.json"
echo "gpu_speed rc=$?"
fi

# one stage of the point for the time left (minus a margin to copy the run back), resumed where a run stopped
train() {  # train-vae | train-gan
    local budget=$(( $(left) - 25 )) t0 rc
    [ "$budget" -gt 30 ] || { echo "no time left for $1"; return 1; }
    local cmd=("$1" --profile paper --dataset cifar10 --data-root "$DATA" --device "$DEVICE" --out "$RUNS"
               --no-progress)
    echo "== paper-schedule CIFAR-10 point: lsr ${cmd[*]} --graphs, for at most ${budget} s"
    t0=$(date +%s)
    timeout -s INT "$budget" python3 -m lsr_utils "${cmd[@]}" --graphs
    rc=$?
    echo "$1 rc=$rc after $(( $(date +%s) - t0 )) s"
    if [ "$rc" -ne 0 ] && [ $(( $(date +%s) - t0 )) -lt $(( budget - 10 )) ]; then
        budget=$(( $(left) - 25 ))
        echo "== the captured run stopped early: eager for ${budget} s"
        [ "$budget" -gt 30 ] && timeout -s INT "$budget" python3 -m lsr_utils "${cmd[@]}"
        rc=$?
    fi
    return "$rc"
}
bring_back() {  # a run folder's record, flat, into OUT/$1
    [ -n "$2" ] && [ -d "$2" ] || return 0
    mkdir -p "$OUT/$1"
    cp "$2"/config.json "$2"/run.json "$2"/losses.csv "$OUT/$1/" 2>/dev/null
    cp "$2"/weights.pt "$OUT/$1/" 2>/dev/null || cp "$2"/checkpoint.pt "$OUT/$1/" 2>/dev/null
    echo "$1: $(basename "$2"): $(grep -o '"status": "[a-z]*"' "$2"/run.json) last $(tail -1 "$2"/losses.csv)"
}
# issue 28: do random samples G(z) of the demo's configuration become objects once stage 1 is long enough? The demo
# (seed 13) on the GPU for its panel of classifiers, then its configuration with a stage 1 of E epochs, E in
# $GZ_EPOCHS, each read by benchmarks/prior_mismatch.py (covariance of the codes, the panel on G(z), a grid).
if has gz && [ "$(left)" -gt 90 ]; then
    echo "== demo G(z) over longer stages 1 ($(left) s left)"
    timeout $(( $(left) - 30 )) python3 -m lsr_utils demo --seed 13 --device "$DEVICE" --out "$RUNS/gz" \
        --no-progress --profile quick 2>&1 | tail -25
    cp "$RUNS/gz/demo/demo.json" "$RUNS/gz/demo/demo.png" "$OUT/" 2>/dev/null
    for e in ${GZ_EPOCHS:-25 50 100}; do
        [ "$(left)" -gt 90 ] || { echo "no time left for --vae-epochs $e"; break; }
        timeout $(( $(left) - 30 )) python3 -m benchmarks.prior_mismatch "$RUNS/gz" --seed 13 --device "$DEVICE" \
            --vae-epochs "$e" --json "$OUT/prior_mismatch_gz.jsonl" --figure "$OUT/prior_mismatch_gz_e$e.png"
        echo "prior_mismatch --vae-epochs $e rc=$?"
    done
fi

if has point; then
    train train-vae && train train-gan
    bring_back vae "$(ls -d "$RUNS"/cifar10/vae-* 2>/dev/null | head -1)"
    bring_back gan "$(ls -d "$RUNS"/cifar10/vae-*/gan-* 2>/dev/null | head -1)"
fi
echo "== done ($(left) s left of ${TOTAL})"
