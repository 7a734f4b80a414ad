#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see README "On a GPU"): trains the CPU-budget
# model in both frameworks, draws the GPU latency curves (torch sweep with paired
# speed-ups, and the torch-vs-JAX parity report), then trains the take-home's `seed`
# preset with the time left. Every step has its own time limit so that one failure or
# overrun still leaves the others' results; small result files are packed into
# $OUT/results.tgz (the model files stay behind).
#
#   DATA_TAR=.cache/cifar10-jpeg.tar.xz WHEELS=.whl BUDGET_S=540 bash scripts/device_check.sh
#
# SMOKE=1 shrinks every step to a few iterations (for a dry run on a CPU machine).
# SKIP="jax seed" leaves steps out; FRACTIONS=1.0,0.5,0.2,0.1 shortens both sweeps.
set -u
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-/tmp/device_out}
RUNS=${RUNS:-/tmp/device_runs}
BUDGET_S=${BUDGET_S:-540}
PY=${PY:-python3}
ACCEL=${ACCEL:-gpu}
START=$(date +%s)
mkdir -p "$OUT" "$RUNS"
LOG="$OUT/device_check.log"
exec > >(tee -a "$LOG") 2>&1

left() { echo $((BUDGET_S - ($(date +%s) - START))); }
step() {  # step NAME LIMIT_S CMD...: run CMD under min(LIMIT_S, time left - 15 s)
    local name=$1 limit=$2; shift 2
    local t; t=$(left); t=$((t - 15 < limit ? t - 15 : limit))
    if [ "$t" -lt 20 ]; then echo "== $name: skipped, ${t}s left"; return 1; fi
    echo "== $name (limit ${t}s, $(left)s left): $*"
    local s; s=$(date +%s)
    timeout "$t" "$@"; local rc=$?
    echo "== $name: rc=$rc in $(( $(date +%s) - s ))s"
    return $rc
}

if [ -n "${WHEELS:-}" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -n "${DATA_TAR:-}" ]; then
    mkdir -p /tmp/cifar10 && tar xJf "$DATA_TAR" -C /tmp/cifar10 && export CIFAR10_DIR=/tmp/cifar10
fi
export SVD_COMPRESS_CACHE=${SVD_COMPRESS_CACHE:-/tmp/svd_cache}
# The scripts import the packages as installed (`pip install -e .`); the lent machine runs
# them from the checkout without installing it.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>/dev/null
$PY - <<'EOF'
import torch, lightning
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "lightning", lightning.__version__)
try:
    import jax, haiku, optax
    print("jax", jax.__version__, jax.devices(), "haiku", haiku.__version__, "optax", optax.__version__)
except Exception as err:  # the torch steps still run
    print("JAX stack unavailable:", repr(err))
EOF

if [ -n "${SMOKE:-}" ]; then
    TORCH_ARGS="--steps 6 --eval-every 3 --ckpt-every 3 --train-limit 2000 --test-limit 300"
    SEED_ARGS="--steps 4 --batch-size 100 --eval-every 2 --ckpt-every 2 --train-limit 2000 --test-limit 300"
    SWEEP_ARGS="--test-limit 300 --fractions 1.0,0.1"
else
    TORCH_ARGS="" SEED_ARGS="" SWEEP_ARGS=""
fi
[ -n "${FRACTIONS:-}" ] && SWEEP_ARGS="$SWEEP_ARGS --fractions $FRACTIONS"
skip() { case " ${SKIP:-} " in *" $1 "*) echo "== $1: skipped (SKIP)"; return 0;; esac; return 1; }
COMMON="--seed 42 --no-progress-bar"
step data 120 $PY -c "from torch_impl.data import load_cifar10; a = load_cifar10(); print(a.train_images.shape, a.test_images.shape)"
step torch_cpu_preset "${TORCH_LIMIT:-150}" $PY scripts/train.py $COMMON --device "$ACCEL" --out-dir "$RUNS/torch_cpu_preset" $TORCH_ARGS
skip jax || step jax_cpu_preset 150 $PY scripts/train.py $COMMON --framework jax --out-dir "$RUNS/jax_cpu_preset" $TORCH_ARGS
CKPT="$RUNS/torch_cpu_preset/model.pt"
if [ -f "$CKPT" ]; then
    JAX_RUN=(); [ -f "$RUNS/jax_cpu_preset/metrics.json" ] && JAX_RUN=(--jax-run "$RUNS/jax_cpu_preset")
    # each script's timing rounds are capped well inside its step's limit
    step parity_gpu 150 $PY scripts/parity_report.py --checkpoint "$CKPT" "${JAX_RUN[@]}" \
        --out-dir "$RUNS/parity_gpu" --time-cap 25 $SWEEP_ARGS
    step sweep_gpu 100 $PY scripts/sweep_ranks.py --checkpoint "$CKPT" --out-dir "$RUNS/sweep_gpu" \
        --time-cap 40 $SWEEP_ARGS
fi
skip seed || step seed_preset 400 $PY scripts/train.py $COMMON --preset seed --device "$ACCEL" --out-dir "$RUNS/seed_preset" $SEED_ARGS

# Small files only: metrics, logs, tables, plots.
(cd "$RUNS" && find . -type f \( -name '*.json' -o -name '*.csv' -o -name '*.png' -o -name '*.yaml' \) -print0 \
    | tar czf "$OUT/results.tgz" --null -T -)
echo "== done in $(( $(date +%s) - START ))s; results: $OUT/results.tgz"
