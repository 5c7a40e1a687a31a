#!/usr/bin/env bash
# The CUDA path end to end on a GPU machine whose Python already has a CUDA torch (no network needed):
#
#   bash benchmarks/cuda_check.sh [OUT] [DATA]
#
# 1. packages the image lacks, from files in .whl/ (fetched beforehand with `pip download`):
#    plyfile (wheel), fpsample and torch-cluster (sdists, built here with CUDA for this GPU's architecture only;
#    the built torch-cluster is saved as OUT/torch_cluster_cuda.tgz and reused from .whl/ on a later run);
# 2. benchmarks/cuda_check.py: torch-cluster CUDA ops, the encoder in fp32 and bf16, the training step (figures);
# 3. `concerto3d train` on DATA with --device cuda (bf16 autocast, the default), --resume, `concerto3d probe` on CUDA,
#    and the same training under `torchrun --nproc_per_node 1` (NCCL);
# 4. the test suite with the GPU visible (device=auto picks CUDA), as far as the time left allows.
#
# .whl/ (in .gitignore; fetch on a machine with pip's index, for the GPU machine's Python, here 3.12):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl plyfile
#   pip download --no-deps --no-binary=:all: -d .whl torch-cluster==1.6.3 fpsample==1.0.2
# DATA: preprocessed scenes with splits (default data/cuda_check/preprocessed, made by
#   concerto3d synth data/cuda_check/scans --scenes 4 --frames 20 && concerto3d preprocess data/cuda_check/scans
#   data/cuda_check/preprocessed --frame-skip 2 --voxel 0.04).
# Every stage runs even when an earlier one failed; the exit status counts the failed stages.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/cuda_check}}
DATA=${2:-data/cuda_check/preprocessed}
BUDGET=${BUDGET:-560}          # seconds for the whole script; the test suite gets what is left
STAGES=${STAGES:-"check train pytest"}   # a subset to run fewer (setup always runs)
want() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)   # absolute: the torch-cluster build runs in another folder
SITE=/tmp/concerto3d_site
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
SECONDS=0
failed=0
stage() { echo "=== [$SECONDS s] $*"; }
fail() { echo "!!! FAILED: $*"; failed=$((failed + 1)); }

stage "setup"
[ -d "$DATA" ] || { echo "no preprocessed scenes at $DATA (see the header: synth needs Open3D, so make them elsewhere)"; exit 2; }
$PY - <<'PY' || { echo "the machine's Python lacks packages concerto3d imports (see above)"; exit 2; }
import importlib.util, sys
missing = [m for m in ("torch", "torch_geometric", "transformers", "safetensors", "tqdm", "PIL", "yaml",
                       "tensorboard", "numpy", "setuptools", "pytest", "hypothesis")
           if importlib.util.find_spec(m) is None]
print("missing:", " ".join(missing) or "nothing")
sys.exit(1 if missing else 0)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
mkdir -p "$SITE"
$PY -m pip install -q --no-index --no-deps --target "$SITE" .whl/plyfile-*.whl || fail "plyfile"
# fpsample (CPU FPS) builds with scikit-build-core + pybind11 from the image, next to torch-cluster's build
( $PY -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" .whl/fpsample-*.tar.gz \
    > "$OUT/fpsample_build.log" 2>&1 || echo "fpsample build failed" >> "$OUT/fpsample_build.log" ) &
fps_pid=$!
if [ -f .whl/torch_cluster_cuda.tgz ] && tar xzf .whl/torch_cluster_cuda.tgz -C "$SITE" \
    && $PY -c "import torch_cluster" 2>/dev/null; then
  echo "torch-cluster: prebuilt .whl/torch_cluster_cuda.tgz"
else
  rm -rf "$SITE/torch_cluster"  # a prebuilt one for another torch or GPU: build it again
  arch=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")
  rm -rf /tmp/tc && mkdir -p /tmp/tc && tar xzf .whl/torch_cluster-*.tar.gz -C /tmp/tc
  # one extension per op; -j builds them side by side (each compiles its own .cpp, CPU and CUDA sources)
  ( cd /tmp/tc/torch_cluster-* && FORCE_ONLY_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS=2 \
      $PY setup.py build_ext -j "$(nproc)" --inplace > "$OUT/torch_cluster_build.log" 2>&1 \
    && cp -r torch_cluster "$SITE/" && tar czf "$OUT/torch_cluster_cuda.tgz" -C "$SITE" torch_cluster ) \
    && echo "torch-cluster built for sm_$arch in $SECONDS s" \
    || { tail -30 "$OUT/torch_cluster_build.log"; fail "torch-cluster build"; }
fi
wait $fps_pid; tail -1 "$OUT/fpsample_build.log"
$PY -c "import torch, torch_cluster, fpsample; print('torch_cluster', torch_cluster.__version__, 'built with CUDA',
torch.ops.torch_cluster.cuda_version(), '| fpsample', fpsample.__version__)" || fail "imports"

if want check; then
stage "cuda_check.py"
$PY benchmarks/cuda_check.py | tee "$OUT/check.jsonl" || fail "cuda_check.py"
fi

if want train; then
stage "train on CUDA (bf16 autocast), resume, probe"
RUN=/tmp/cuda_check_run
rm -rf "$RUN" "$RUN-ddp"
common=(--objective joint --device cuda data.max_points=4096 checkpoint_every=40 log_every=10)
$PY -m concerto3d train "$DATA" --out "$RUN" --steps 40 "${common[@]}" || fail "train"
$PY -m concerto3d train "$DATA" --out "$RUN" --steps 80 --resume "${common[@]}" || fail "train --resume"
cp "$RUN/metrics.csv" "$OUT/metrics.csv" 2>/dev/null
$PY -m concerto3d probe "$DATA" --model "$RUN" --device cuda --out "$OUT/probe.json" || fail "probe"

stage "torchrun --nproc_per_node 1 (NCCL)"
timeout 120 $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m concerto3d train "$DATA" \
    --out "$RUN-ddp" --steps 20 "${common[@]}" || fail "torchrun"
fi

left=$((BUDGET - SECONDS))
if want pytest && [ "$left" -gt 60 ]; then
  stage "pytest with the GPU visible, ${left} s left"
  xdist=$($PY -c "import xdist" 2>/dev/null && echo "-n 8")
  # visualization needs Open3D and the notebook test Jupyter, neither of which the GPU image has
  timeout "$left" $PY -m pytest -q --no-header -p no:cacheprovider $xdist --ignore=tests/visualization \
      --ignore=tests/test_notebook.py -v tests > "$OUT/pytest.txt" 2>&1   # -v: each result named as it lands
  rc=$?
  tail -25 "$OUT/pytest.txt"
  [ $rc = 0 ] || fail "pytest (rc $rc)"
fi
stage "done, $failed failed stage(s)"
exit "$failed"
