#!/usr/bin/env bash
# The GPU check of issue 19: everything that needs a CUDA machine, in one script of at most 8 minutes.
#
#   bash bench/gpu_check.sh OUTDIR [PACK.tgz]
#
# Needs only CUDA torch, numpy, scipy and scikit-image (Triton ships with CUDA torch); no bpy, no Open3D, no
# network. pytest (or .gpu_data/site holding it) and matplotlib are used where present. Every step runs under its
# own timeout, capped by what is left of the budget; its output goes to OUTDIR/<step>.log, its exit code and time
# to OUTDIR/summary.md (with the steps' tables appended). With PACK, OUTDIR is packed into that tarball after every
# step, so a run stopped from outside still leaves what it had (the device tool returns at most 8 files: use
# $OUT/gpu_check.tgz there).
#
# Steps, most wanted first (each gets at most what is left of the budget): the environment; the fused kernels against
# the torch encoding at the presets' grids (bench/hashgrid_check.py, no pytest needed); the encoding throughput
# (bench/encoding.py); the Fast SDF preset (its GPU values), fit plus 512^3 extraction on SDF_SHAPES, beside the
# CPU's Poisson rows (bench/sdf_vs_poisson.py); the lego curve of the fast radiance field with its GPU values
# (bench/nerf_lego.py); the dense torch marcher's peak memory (bench/march_memory.py); then, with what is left,
# the kernel equality tests and the backend tests on CUDA (pytest, tests not marked slow unless BACKEND_TESTS_MARK
# says otherwise). Shared data (meshes, lego) is looked for in ../shared/data, else in $INR_SHARED_DATA, else
# in .gpu_data/ (ignored by git; `make gpu-data` fills it, pytest included, to carry to the machine), and then linked
# as ../shared/data, where the benchmarks look.
#
# Settings (environment): PYTHON (default python3), GPU_CHECK_SECONDS (total budget, default 480),
# GPU_CHECK_DEVICE (cuda; cpu only for a dry run of this script), LEGO_SECONDS (training budget, default 150),
# LEGO_SIZE (image size, default 800), SDF_SHAPES (meshes of the SDF benchmark, default all five, a fresh process each),
# BACKEND_TESTS (default "tests/backend tests/wire") and BACKEND_TESTS_MARK (pytest -m expression, default "not slow").
set -u

OUTDIR=${1:?usage: bash bench/gpu_check.sh OUTDIR [PACK.tgz]}
PACK=${2:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_SECONDS:-480}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
LEGO_SECONDS=${LEGO_SECONDS:-150}
LEGO_SIZE=${LEGO_SIZE:-800}
SDF_SHAPES=${SDF_SHAPES:-stanford-bunny armadillo dragon-10k fandisk nefertiti}
BACKEND_TESTS=${BACKEND_TESTS:-tests/backend tests/wire}
BACKEND_TESTS_MARK=${BACKEND_TESTS_MARK:-not slow}
START=$(date +%s)
mkdir -p "$OUTDIR" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
SUMMARY=$OUTDIR/summary.md
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET INR_HASHGRID # compiled kernels, the default dispatch
FAILED=0

{
    echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); device: $DEVICE; budget: ${BUDGET} s."
    echo
    echo "| step | exit code | seconds | result |"
    echo "|---|---|---|---|"
} >"$SUMMARY"

pack() {
    [ -n "$PACK" ] || return 0
    tar czf "$PACK.tmp" -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")" 2>/dev/null && mv -f "$PACK.tmp" "$PACK"
}

record() { # record STEP CODE SECONDS RESULT
    echo "| $1 | $2 | $3 | $4 |" >>"$SUMMARY"
    echo "== $1: $4 (exit $2, $3 s)"
    pack
}

# step NAME TIMEOUT COMMAND...: run COMMAND under min(TIMEOUT, what is left of the budget), logged to NAME.log
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START) - 5))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 15 ]; then
        record "$name" - 0 "skipped: the budget is spent"
        return 0
    fi
    echo "== $name (at most $limit s): $*"
    local began=$(date +%s) code
    timeout -k 10 "$limit" "$@" >"$OUTDIR/$name.log" 2>&1
    code=$?
    local took=$(($(date +%s) - began)) result
    case $code in
    0) result=ok ;;
    124 | 137) result="timed out after $limit s" FAILED=1 ;;
    *) result=failed FAILED=1 ;;
    esac
    record "$name" "$code" "$took" "$result"
    tail -n 3 "$OUTDIR/$name.log"
}

skip() { # skip NAME WHY
    record "$1" - 0 "skipped: $2"
}

has() { "$PY" -c "import $1" >/dev/null 2>&1; }

# pytest, where the machine has none: pure-Python packages carried in .gpu_data/site (make gpu-data)
if ! has pytest && [ -d "$REPO/.gpu_data/site" ]; then
    export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$REPO/.gpu_data/site"
fi

# -- the environment ---------------------------------------------------------------------------------------------
step environment 30 bash -c "nvidia-smi || true; '$PY' - <<'EOF'
import sys, torch, numpy, scipy, skimage
print('python', sys.version.split()[0], '| torch', torch.__version__, '| numpy', numpy.__version__, '| scipy', scipy.__version__, '| scikit-image', skimage.__version__)
print('cuda available:', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')
try:
    import triton
    print('triton', triton.__version__)
except Exception as exc:
    print('triton does not import:', exc)
for name in ('pytest', 'matplotlib', 'PIL'):
    try:
        __import__(name)
        print(name, 'present')
    except ImportError:
        print(name, 'absent')
import os, shutil, sysconfig  # Triton builds its launcher with a C compiler and Python.h on the first launch
print('C compiler:', shutil.which(os.environ.get('CC', 'gcc')) or shutil.which('cc') or shutil.which('clang'), '| Python.h:', os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))
if torch.cuda.is_available():
    from inr_blender.fields import hashgrid
    try:
        print('fused kernels against the torch ops on cuda:', hashgrid.probe(torch.device('cuda')))
    except Exception as exc:
        print('the fused kernels fail on cuda (the backend will use the torch encoding):', type(exc).__name__, exc)
EOF"
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    record "cuda" 1 0 "failed: this torch sees no CUDA device (GPU_CHECK_DEVICE=cpu for a dry run)"
    exit 1
fi

# -- shared data: ../shared/data, else $INR_SHARED_DATA or .gpu_data/, linked there -------------------------------
if [ ! -d "$REPO/../shared/data" ]; then
    for candidate in "${INR_SHARED_DATA:-}" "$REPO/.gpu_data" "$REPO/shared/data"; do
        if [ -n "$candidate" ] && [ -d "$candidate" ]; then
            mkdir -p "$REPO/../shared" && ln -sfn "$(cd "$candidate" && pwd)" "$REPO/../shared/data" && echo "== shared data: $candidate"
            break
        fi
    done
fi
MESHES=$REPO/../shared/data/meshes
LEGO=$REPO/../shared/data/nerf/lego

# -- the fused kernels against the torch encoding, at the presets' grids (no pytest needed) ----------------------
step kernel_check 90 "$PY" bench/hashgrid_check.py --device "$DEVICE" --output "$OUTDIR/hashgrid_check.md"

# -- encoding throughput ------------------------------------------------------------------------------------------
step encoding 90 "$PY" bench/encoding.py --device "$DEVICE" --output "$OUTDIR/encoding.md"

# -- the Fast SDF preset on the shared meshes ---------------------------------------------------------------------
# Fit plus sparse 512^3 extraction per mesh, in a fresh process each after a warm-up fit (as a worker that ran a job
# before), beside the Poisson rows of the committed CPU run (Open3D is not needed): Chamfer-L1 and seconds.
if [ -f "$MESHES/stanford-bunny.obj" ]; then
    # shellcheck disable=SC2086 # SDF_SHAPES: several names
    step sdf_vs_poisson 200 "$PY" bench/sdf_vs_poisson.py --device "$DEVICE" --methods hashgrid --noise 0 --shapes $SDF_SHAPES \
        --no-render --poisson-from bench/results/sdf_vs_poisson.json --output "$OUTDIR/sdf_vs_poisson.md" --mesh-dir "$OUTDIR/sdf_meshes"
    rm -rf "$OUTDIR/sdf_meshes" # the meshes: not worth carrying back
else
    skip sdf_vs_poisson "no shared meshes ($MESHES)"
fi

# -- the lego curve of the fast radiance field (whole views at 800x800, every 8th held out) ------------------------
if [ ! -f "$LEGO/transforms_train.json" ]; then
    skip nerf_lego "no lego data ($LEGO)"
else
    step nerf_lego 600 "$PY" bench/nerf_lego.py --device "$DEVICE" --models fast --sizes "$LEGO_SIZE" --fast-seconds "$LEGO_SECONDS" \
        --output "$OUTDIR/nerf_lego.md" --picture-dir "$OUTDIR/nerf_lego"
fi

# -- the dense torch marcher on the device: its peak memory against extraction's estimate ---------------------------
step march_memory 60 "$PY" bench/march_memory.py --device "$DEVICE" --sizes 256 512 --output "$OUTDIR/march_memory.md"

# -- with what is left: the kernel equality tests and the backend tests on CUDA (their device 'auto' picks it) ----
if has pytest; then
    step kernel_tests 150 "$PY" -m pytest tests/backend/test_backend_hashgrid_triton.py -q -rs -p no:cacheprovider
    # shellcheck disable=SC2086 # BACKEND_TESTS: several paths
    step backend_tests 300 "$PY" -m pytest $BACKEND_TESTS -q -rs -p no:cacheprovider -m "$BACKEND_TESTS_MARK" \
        --ignore=tests/backend/test_backend_hashgrid_triton.py --junitxml="$OUTDIR/backend_tests.xml"
else
    skip kernel_tests "pytest is absent (kernel_check compared the same without it)"
    skip backend_tests "pytest is absent"
fi

# -- the tables, appended to the summary --------------------------------------------------------------------------
{
    echo
    echo "Total: $(($(date +%s) - START)) s. Logs: <step>.log beside this file."
    for table in hashgrid_check encoding sdf_vs_poisson nerf_lego march_memory; do
        if [ -f "$OUTDIR/$table.md" ]; then
            echo
            sed 's/^# /## /' "$OUTDIR/$table.md"
        fi
    done
} >>"$SUMMARY"
pack
echo "== summary: $SUMMARY"
exit $FAILED
