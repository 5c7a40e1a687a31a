"""The Concerto table: does joint 2D-3D pre-training beat what each modality learns alone?

Five rows, each probed with the same frozen-feature linear head (``evaluation.linear_probe``) on the same split:

=========  ============================================================================================
row        features of every point
=========  ============================================================================================
random     the point encoder at its random initialisation (no training)
2d         image encoder trained alone (``--objective 2d``); its patch features lifted onto the points through
           the correspondences (mean over the views that see a point; unseen points get zeros and are counted)
3d         point encoder trained by 3D self-distillation alone (``--objective 3d``)
concat     ``[2d, 3d]`` of the same seed side by side (the probe standardises every channel)
joint      point encoder trained by Concerto (``--objective joint``)
=========  ============================================================================================

The trained rows get the same budget: the same config, overrides and ``steps``. Every (row, seed) is one unit of
work with its own folder, so an interrupted ablation resumes where it stopped::

    OUT/ablation.json              the settings (a rerun with other settings is refused)
    OUT/runs/<row>-seed<s>/        the training run (``model/``, checkpoints, metrics.csv); concat has none
    OUT/probes/<row>-seed<s>.json  the probe's summary (mIoU, per-class IoU, confusion, timings)
    OUT/results.csv, results.md, results.png   the table, rewritten after every unit

A unit whose probe JSON exists is not redone; a run folder with ``model/`` is probed without training again; a run
folder with checkpoints but no model (interrupted) is resumed by the trainer.

Modules: ``settings`` (rows, :class:`AblationSettings`, unit folders), ``provenance`` (digests and
``ablation.json``), ``running`` (training, features, :func:`run_ablation`), ``report`` (aggregation and
``results.*``), ``command`` (``concerto3d ablate``). Lifting and probing are
:mod:`concerto3d.evaluation.lifting` and :mod:`concerto3d.evaluation.probe`.
"""

from concerto3d.evaluation.ablation.provenance import data_digest, files_digest, image_encoder_digest, training_digest
from concerto3d.evaluation.ablation.report import (OrderingCheck, RowStats, aggregate, load_probes, mean_and_spread,
                                                   ordering_checks, write_results)
from concerto3d.evaluation.ablation.running import ensure_trained, run_ablation
from concerto3d.evaluation.ablation.settings import (PAPER_ORDER, ROW_KEYS, ROWS, AblationSettings, Row, probe_path_of,
                                                     run_dir_of)

__all__ = [
    "Row", "ROWS", "ROW_KEYS", "PAPER_ORDER", "AblationSettings", "run_dir_of", "probe_path_of", "RowStats",
    "OrderingCheck", "run_ablation", "ensure_trained", "aggregate", "mean_and_spread", "ordering_checks",
    "write_results", "load_probes", "data_digest", "training_digest", "files_digest", "image_encoder_digest",
]
