#!/usr/bin/env bash
# One command on a bare CUDA machine (torch + transformers only): the library tests, then the PPO
# benches (bench/ppo_gpu.py) at gpt2 and gpt2-large, ours vs TRL, with a compact summary at the end.
#
#   bash bench/gpu_check.sh                # CUDA: installs .whl/*.whl (TRL and its missing needs) into /tmp/site
#   bash bench/gpu_check.sh --cpu          # the same steps at the tiny shape on CPU (a rehearsal; see bench/README.md)
#   bash bench/gpu_check.sh --skip-tests   # benches only
#
# Everything is written under $OUT (the device tool returns it) or bench/out/gpu_check: env.txt,
# tests.log, bench.log, ppo.jsonl (every figure), summary.txt. The whole run keeps to BUDGET seconds
# (default 530, for a 600 s call): the tests get at most TESTS_BUDGET (150), each bench side at most
# what is left, and a configuration that no longer fits is skipped and said so.
set -u
cd "$(dirname "$0")/.."

CPU=0
TESTS=1
for arg in "$@"; do
  case "$arg" in
    --cpu) CPU=1 ;;
    --skip-tests) TESTS=0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

BUDGET=${BUDGET:-530}
TESTS_BUDGET=${TESTS_BUDGET:-150}
DEADLINE=$((SECONDS + BUDGET))
OUT=${OUT:-bench/out/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRL_EXPERIMENTAL_SILENCE=1

if [ "$CPU" = 1 ]; then
  PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
  TRL_PY=${TRL_PY:-$( [ -x /tmp/trl-venv/bin/python ] && echo /tmp/trl-venv/bin/python || echo "$PY" )}
  DEVICE=cpu
  SHAPES=${SHAPES:-tiny}
  BIG_BATCH=128 BIG_MICRO=32   # the "large batch, micro-batched" row, scaled down for a CPU
else
  PY=${PY:-python3}
  # The image's own versions of what .whl may shadow (is the 55 MB pyarrow wheel needed? datasets wants >= 24).
  $PY -c 'import importlib.metadata as m
for n in ("pyarrow", "fsspec", "accelerate", "datasets", "trl"):
    try: print("image has", n, m.version(n))
    except m.PackageNotFoundError: print("image lacks", n)' >"$OUT/image_versions.txt" 2>&1
  if ls .whl/*.whl >/dev/null 2>&1; then
    echo "installing $(ls .whl/*.whl | wc -l) wheels from .whl into /tmp/site"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || { echo "wheel install failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  TRL_PY=${TRL_PY:-$PY}
  DEVICE=cuda
  SHAPES=${SHAPES:-gpt2 gpt2-large}
  BIG_BATCH=512 BIG_MICRO=128
fi

{
  date -u
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  $PY -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name())'
  $TRL_PY -c 'import trl, datasets, pyarrow; print("trl", trl.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__)' 2>&1 | tail -1
  cat "$OUT/image_versions.txt" 2>/dev/null
} | tee "$OUT/env.txt"
rm -f "$OUT/image_versions.txt"

left() { echo $((DEADLINE - SECONDS)); }

# --- 1. the library tests --------------------------------------------------------------------------
TESTS_LINE="tests: skipped"
if [ "$TESTS" = 1 ]; then
  XDIST=""
  if $PY -c 'import xdist' 2>/dev/null; then XDIST="-n 8"; fi
  # A hung test (a gloo rendezvous, say) fails alone instead of eating the budget, where pytest-timeout is there.
  if $PY -c 'import pytest_timeout' 2>/dev/null; then XDIST="$XDIST --timeout=120"; fi
  LIMIT=$(( TESTS_BUDGET < $(left) ? TESTS_BUDGET : $(left) ))
  echo "== library tests (not slow; ${LIMIT}s at most) =="
  timeout "$LIMIT" $PY -m pytest -c /dev/null --rootdir . -p no:cacheprovider --confcutdir tests/training/rlhf \
    tests/training/rlhf tests/bench -q -m "not slow" $XDIST -W ignore::pytest.PytestUnknownMarkWarning \
    >"$OUT/tests.log" 2>&1
  RC=$?
  tail -n 15 "$OUT/tests.log"
  if [ $RC = 124 ]; then
    TESTS_LINE="tests: TIMED OUT after ${LIMIT}s (see tests.log)"
  else
    TESTS_LINE="tests (exit $RC): $(grep -E '(passed|failed|error)' "$OUT/tests.log" | tail -n 1)"
  fi
fi

# --- 2. the PPO benches ----------------------------------------------------------------------------
: >"$OUT/ppo.jsonl"
bench() {  # bench NEED_SECONDS SHAPE BATCH SIDES [more ppo_gpu.py flags]
  local need=$1 shape=$2 batch=$3 sides=$4
  shift 4
  local n_sides
  n_sides=$(echo "$sides" | tr ',' '\n' | wc -l)
  if [ "$(left)" -lt "$need" ]; then
    echo "SKIPPED $shape batch $batch ($sides): $(left)s left, needs ~${need}s" | tee -a "$OUT/bench.log"
    return
  fi
  $PY bench/ppo_gpu.py --device "$DEVICE" --shape "$shape" --batch "$batch" --sides "$sides" \
    --trl-python "$TRL_PY" --timeout $(( $(left) / n_sides )) --json "$OUT/ppo.jsonl" "$@" 2>>"$OUT/bench.err" \
    | tee -a "$OUT/bench.log"
}

: >"$OUT/bench.log"
: >"$OUT/bench.err"
echo "== PPO benches ($(left)s left) =="
for shape in $SHAPES; do
  case "$shape" in gpt2-large) need=150 ;; *) need=60 ;; esac
  bench "$need" "$shape" 64 ours-separate,ours-shared,trl
done
for shape in $SHAPES; do
  case "$shape" in gpt2-large) need=120 ;; *) need=40 ;; esac
  bench "$need" "$shape" "$BIG_BATCH" ours-separate,ours-shared --micro-batch "$BIG_MICRO"
done
# The decoding's share: the same run through transformers' growing cache instead of the static cache's graph.
for shape in $SHAPES; do
  case "$shape" in gpt2-large) need=90 ;; *) need=30 ;; esac
  bench "$need" "$shape" 64 ours-shared --decoding dynamic
done

# --- 3. summary ------------------------------------------------------------------------------------
{
  echo "== summary ($((SECONDS))s) =="
  echo "$TESTS_LINE"
  $PY bench/ppo_gpu.py --summarise "$OUT/ppo.jsonl"
  grep -h SKIPPED "$OUT/bench.log"
  grep -h -E "timed out|failed \(exit" "$OUT/bench.log"
} | tee "$OUT/summary.txt"
exit 0
