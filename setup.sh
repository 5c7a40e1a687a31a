#!/usr/bin/env bash
# concerto3d: set up a fresh Debian/Ubuntu machine (as root) and optionally run a job.
#
#   bash setup.sh            install only
#   bash setup.sh demo       install, then run the demo pipeline on generated scans
#   bash setup.sh test       install (with the dev extra), then run the test suite
#
# Idempotent: every step checks whether its work is already done.
#   - apt packages Open3D needs (and software Vulkan for headless rendering), a compiler for torch-cluster;
#   - a virtual environment in ./.venv (override with VENV=...; PYTHON=... picks the interpreter);
#   - torch==2.13.0 only when no torch is importable (a CUDA torch already in the venv is kept);
#   - ninja, then torch-cluster built with --no-build-isolation against that torch (pip caches the wheel);
#   - the package itself, editable, with its extras.
set -euo pipefail
cd "$(dirname "$0")"
JOB="${1:-}"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
log() { printf '[setup] %s\n' "$*"; }
# each step says how long it took (a fresh 2-core machine: about 19 minutes in all, 15 of them torch-cluster's build)
SECONDS=0
STEP_START=0
took() { log "$1: $((SECONDS - STEP_START)) s"; STEP_START=$SECONDS; }

# 1. System packages (Debian/Ubuntu, root). Skipped when all are present or when apt is not there.
APT_PKGS="libusb-1.0-0 libgl1 libegl1 libgomp1 libvulkan1 mesa-vulkan-drivers build-essential python3-venv python3-dev"
if command -v dpkg-query >/dev/null 2>&1; then
  missing=""
  for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  # python3-venv/-dev are only needed when the interpreter is Debian's own
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "apt-get install$missing"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
      log "warning: missing system packages:$missing (not root or no apt-get; install them yourself)"
    fi
  fi
fi
took "1/5 system packages"

# 2. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check -q"
took "2/5 virtual environment"

# 3. torch first: an unpinned torch pulled in by another package would fetch several GB of CUDA wheels.
if "$PY" -c "import torch" 2>/dev/null; then
  log "torch present: $("$PY" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"
else
  log "installing torch==$TORCH_VERSION"
  $PIP install "torch==$TORCH_VERSION" numpy
fi
took "3/5 torch"

# 4. torch-cluster: source-only on PyPI, must build against the torch above.
if ! "$PY" -c "import torch_cluster" 2>/dev/null; then
  $PIP install ninja setuptools wheel
  log "building torch-cluster against $("$PY" -c 'import torch; print(torch.__version__)') (first time: ~15 min on 2 cores; pip caches the wheel)"
  MAX_JOBS="${MAX_JOBS:-$(nproc)}" $PIP install --no-build-isolation torch-cluster
fi
took "4/5 torch-cluster"

# 5. The package, editable, with its extras.
EXTRAS="${EXTRAS:-dev}"
if ! "$PY" -c "import concerto3d" 2>/dev/null || [ pyproject.toml -nt "$VENV/.concerto3d-installed" ]; then
  log "installing concerto3d[$EXTRAS] (editable)"
  $PIP install -e ".[$EXTRAS]"
  touch "$VENV/.concerto3d-installed"
fi
took "5/5 concerto3d"
log "ready in ${SECONDS} s: $VENV/bin/concerto3d"

case "$JOB" in
  "") ;;
  demo) exec "$VENV/bin/concerto3d" demo "${DEMO_DIR:-data/demo}" ;;
  test) exec "$PY" -m pytest -q "${@:2}" ;;
  *) echo "unknown job '$JOB' (expected: demo, test)" >&2; exit 2 ;;
esac
