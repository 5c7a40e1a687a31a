#!/usr/bin/env bash
# The default Concerto ablation benchmark: synthetic scans -> preprocess -> a 2D teacher from the labelled frames of
# other rooms -> concerto3d ablate with it, 3 seeds.
#
#   benchmarks/ablation.sh [WORK] [RESULTS]      (defaults: data/ablation and results/ablation)
#
# WORK receives the scans, the preprocessed scenes, the teacher (WORK/teacher) and the ablation folder (runs,
# checkpoints: git-ignored);
# RESULTS receives the table to commit (results.md, results.csv, results.png, probes/*.json, ablation.json) and the
# teacher's held-out probe (RESULTS/teacher).
# Every stage resumes: rerunning the script after an interruption redoes only what is missing.
# PYTHON picks the interpreter (default: .venv/bin/python when present, else python).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-data/ablation}
RESULTS=${2:-results/ablation}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
SECONDS=0

# 80 rooms (64 train / 16 val, fixed by the seed), 20 frames each, every 2nd frame kept; each room holds only the
# surfaces its frames saw, as a scan does (about 10 minutes on 2 cores; not counted in the ablation's budget)
[ -f "$WORK/scans/scannetv2_val.txt" ] || $PY -m concerto3d synth "$WORK/scans" --scenes 80 --frames 20 --seed 0
echo "[ablation.sh] synth done at ${SECONDS} s"
$PY -m concerto3d preprocess "$WORK/scans" "$WORK/preprocessed" --frame-skip 2 --voxel 0.04 --image-size 144x192
echo "[ablation.sh] preprocess done at ${SECONDS} s"

# the 2D teacher: a ResNet trained on the frame labels of 64 other rooms (synth seed 2), the stand-in for
# DINOv2's outside knowledge; made once, its time reported and not counted in the budget (benchmarks/teacher.sh)
bash benchmarks/teacher.sh "$WORK"
echo "[ablation.sh] teacher ready at ${SECONDS} s"
prep=$SECONDS

# six rows x 3 seeds; the teacher is the 2D row (its features lifted) and the joint row's frozen target
$PY -m concerto3d ablate "$WORK/preprocessed" --config benchmarks/ablation.yaml --out "$WORK/ablate" \
    --seeds 3 --steps 1000 --image-encoder "$WORK/teacher/run" --probe-points 20000 --probe-epochs 20 \
    --probe-batch-size 4096
echo "[ablation.sh] ablate done in $((SECONDS - prep)) s (total ${SECONDS} s)"

mkdir -p "$RESULTS/probes"
cp "$WORK/ablate/results.md" "$WORK/ablate/results.csv" "$WORK/ablate/results.png" "$WORK/ablate/ablation.json" \
    "$RESULTS/"
cp "$WORK"/ablate/probes/*.json "$RESULTS/probes/"
mkdir -p "$RESULTS/teacher"  # the teacher's own probe on the corpus rooms it never trained on
cp "$WORK/teacher/heldout/results.md" "$WORK/teacher/heldout/results.csv" "$WORK/teacher/heldout/ablation.json" \
    "$WORK"/teacher/heldout/probes/*.json "$RESULTS/teacher/"
echo "[ablation.sh] table: $RESULTS/results.md"
