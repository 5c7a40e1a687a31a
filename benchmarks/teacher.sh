#!/usr/bin/env bash
# The 2D teacher of the ablation: labelled frames of rooms the benchmark never uses -> an image encoder that knows
# the classes, the stand-in for DINOv2 (issue 23). Made once; not counted in the ablation's budget, as DINOv2's
# pre-training is not counted in the paper's.
#
#   benchmarks/teacher.sh [WORK] [STEPS] [key=value ...]   (defaults: data/ablation, 2000; overrides go to train)
#
# WORK/teacher receives the corpus (80 rooms of synth seed 2, 64 train / 16 val: the benchmark's rooms are seed 0, so
# none is shared; the scene names repeat, the rooms do not), its preprocessed frames with their labels, the teacher run
# (WORK/teacher/run, its model in run/model), which `concerto3d ablate --image-encoder WORK/teacher/run` takes, and
# WORK/teacher/heldout/results.md: the teacher's features lifted onto the corpus's own 16 val rooms, which it never
# trained on, and probed (its "2D-only" mIoU on rooms it has not seen). Every stage resumes; a finished teacher is
# kept as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-data/ablation}
STEPS=${2:-2000}
T="$WORK/teacher"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
SECONDS=0

# (about 15 minutes on 2 cores with 2 workers; every frame kept: the teacher learns from frames, not points)
[ -f "$T/scans/scannetv2_val.txt" ] || $PY -m concerto3d synth "$T/scans" --scenes 80 --frames 20 --seed 2 --workers 2
$PY -m concerto3d preprocess "$T/scans" "$T/preprocessed" --frame-skip 1 --voxel 0.04 --image-size 144x192 \
    --workers 2
echo "[teacher.sh] corpus ready at ${SECONDS} s"
made=$SECONDS
if [ -f "$T/run/model/config.json" ]; then
    echo "[teacher.sh] $T/run holds a trained teacher: kept (remove $T/run to train it again)"
else
    resume=$( [ -d "$T/run/checkpoints" ] && echo --resume || true )
    $PY -m concerto3d train "$T/preprocessed" --out "$T/run" --objective 2d-supervised \
        --config benchmarks/teacher.yaml --steps "$STEPS" $resume "${@:3}"
    echo "[teacher.sh] teacher trained in $((SECONDS - made)) s (total ${SECONDS} s): $T/run"
fi
$PY -m concerto3d ablate "$T/preprocessed" --out "$T/heldout" --rows 2d --seeds 1 --steps 1 \
    --image-encoder "$T/run" --config benchmarks/ablation.yaml --probe-points 20000 --probe-epochs 20 \
    --probe-batch-size 4096
echo "[teacher.sh] the teacher on its held-out rooms: $T/heldout/results.md (total ${SECONDS} s)"
