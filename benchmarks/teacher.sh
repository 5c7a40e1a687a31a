#!/usr/bin/env bash
# The 2D teacher of the ablation: labelled frames of rooms the benchmark never uses -> an image encoder that knows
# the classes, the stand-in for DINOv2 (issue 23). Made once; not counted in the ablation's budget, as DINOv2's
# pre-training is not counted in the paper's.
#
#   benchmarks/teacher.sh [WORK] [STEPS] [key=value ...]   (defaults: data/ablation, 2000; overrides go to train)
#
# WORK/teacher receives the corpus (40 rooms of synth seed 1: the benchmark's rooms are seed 0, so none is shared),
# its preprocessed frames with their labels, and the teacher run (WORK/teacher/run, its model in run/model), which
# `concerto3d ablate --image-encoder WORK/teacher/run` takes. Every stage resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-data/ablation}
STEPS=${2:-2000}
T="$WORK/teacher"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
SECONDS=0

[ -f "$T/scans/scannetv2_val.txt" ] || $PY -m concerto3d synth "$T/scans" --scenes 40 --frames 20 --seed 1
$PY -m concerto3d preprocess "$T/scans" "$T/preprocessed" --frame-skip 1 --voxel 0.04 --image-size 144x192
echo "[teacher.sh] corpus ready at ${SECONDS} s"
made=$SECONDS
resume=$( [ -d "$T/run/checkpoints" ] && echo --resume || true )
$PY -m concerto3d train "$T/preprocessed" --out "$T/run" --objective 2d-supervised --config benchmarks/teacher.yaml \
    --steps "$STEPS" $resume "${@:3}"
echo "[teacher.sh] teacher trained in $((SECONDS - made)) s (total ${SECONDS} s): $T/run"
