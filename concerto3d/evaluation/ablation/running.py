"""Running an ablation: train (or find) the model of each (row, seed), compute its features, probe them, and
rewrite the table after every unit, so that an interrupted ablation resumes where it stopped."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from concerto3d.errors import InputError
from concerto3d.evaluation.ablation.provenance import (check_settings_file, image_encoder_digest,
                                                      image_encoder_summary, record_digests)
from concerto3d.evaluation.ablation.report import RowStats, aggregate, load_probes, write_results
from concerto3d.evaluation.ablation.settings import (ROW_BY_KEY, AblationSettings, has_model, probe_path_of,
                                                     run_dir_of)
from concerto3d.evaluation.metrics import json_safe
from concerto3d.evaluation.probe import SplitFeatures, probe_features
from concerto3d.io.atomic import atomic_write_json

log = logging.getLogger(__name__)

__all__ = ["ensure_trained", "point_features", "lifted_features", "concat_features", "check_image_encoder",
           "run_ablation", "wall_time"]


def ensure_trained(data: Path, out: Path, row: str, seed: int, settings: AblationSettings,
                   progress: bool = True) -> tuple[Path, float]:
    """Train (or build, for ``random``) the model of one (row, seed) unless its ``model/`` folder exists.

    Returns:
        (run folder, seconds spent training now; 0 when the model was already there).
    """
    from concerto3d.inference import save_model

    if row == "2d" and settings.image_encoder is not None:
        return Path(settings.image_encoder), 0.0  # a given pre-trained encoder: nothing to train
    run_dir = run_dir_of(out, row, seed)
    if has_model(run_dir):
        return run_dir, 0.0
    tic = time.perf_counter()
    if row == "random":
        # The same architecture as the trained point encoders, initialised as a training run with this seed would
        # be, and saved without a single step.
        from concerto3d.models.concerto import ConcertoModel
        from concerto3d.training.trainer import seed_everything

        cfg = settings.train_config("3d", seed)
        seed_everything(cfg.seed)
        save_model(ConcertoModel(cfg), cfg, run_dir, weights="student", steps=0)
    else:
        from concerto3d.training.checkpoint import list_checkpoints
        from concerto3d.training.trainer import train

        extra = []
        if row == "joint" and settings.joint_target == "2d":  # the 2d row of this seed ran first (table order)
            target = Path(settings.image_encoder) if settings.image_encoder else run_dir_of(out, "2d", seed)
            if settings.image_encoder is None and not has_model(target):
                raise InputError("--joint-target 2d: the 2d row's model is missing", target)
            extra = [f"image_encoder.pretrained_path={target.resolve()}", "image_encoder.freeze=true"]
        cfg = settings.train_config(ROW_BY_KEY[row].objective, seed, extra)
        resume = bool(list_checkpoints(run_dir)) if run_dir.is_dir() else False
        if resume:
            log.info("%s seed %d: resuming the interrupted run in %s", row, seed, run_dir)
        result = train(cfg, data, run_dir, resume=resume, progress=progress)
        if result.interrupted or result.model_dir is None:
            raise KeyboardInterrupt  # the trainer stopped on a signal and wrote a checkpoint; rerun to resume
    return run_dir, time.perf_counter() - tic


# ---------------------------------------------------------------------------------------------------------------
# features of one row


def point_features(run_dir: Path, data: Path, settings: AblationSettings, seed: int, desc: str,
                   progress: bool = True) -> SplitFeatures:
    """The point encoder of a run, embedded on every scene of the train and val splits."""
    from concerto3d.data.scene import split_scenes
    from concerto3d.evaluation.features import embed_split
    from concerto3d.inference import load_model

    model = load_model(run_dir)
    train_x, train_y = embed_split(model, split_scenes(data, "train"), settings.max_points, seed, f"{desc} train",
                                   progress=progress)
    val_x, val_y = embed_split(model, split_scenes(data, "val"), settings.max_points, seed, f"{desc} val",
                               progress=progress)
    return SplitFeatures(train_x, train_y, val_x, val_y)


def _image_encoder_of(path: Path, settings: AblationSettings, data: Path):
    """The frozen image encoder of a concerto3d run or model folder, or one built on a Hugging Face folder with
    the ablation's image settings (size, normalisation) as the joint row builds it."""
    from concerto3d.inference import load_image_encoder

    return load_image_encoder(path, settings.train_config("2d", 0, data=data).image_encoder)


def check_image_encoder(path: Path, settings: AblationSettings, data: Path) -> None:
    """Load the ``--image-encoder`` and check that the ablation's images and patches fit it (DINOv2 has 14-pixel
    patches; the benchmark's 144x192 images and 16-pixel ``data.patch_size`` do not)."""
    encoder = _image_encoder_of(path, settings, data)
    cfg = settings.train_config("joint", 0, data=data)
    patch = int(encoder.patch_size)
    size = tuple(int(v) for v in cfg.data.image_size)
    if cfg.data.patch_size != patch or any(v % patch for v in size):
        fit = [(v // patch) * patch for v in size]
        raise InputError(
            f"--image-encoder has {patch}-pixel patches, but the training config has {size[0]}x{size[1]} images "
            f"and data.patch_size={cfg.data.patch_size}; add e.g. data.patch_size={patch} "
            f"data.image_size=[{fit[0]},{fit[1]}] (the image encoder follows them)", path)


def lifted_features(run_dir: Path, data: Path, settings: AblationSettings, desc: str,
                    progress: bool = True) -> SplitFeatures:
    """The image encoder of a run (or ``--image-encoder``), lifted onto the points of the train and val splits;
    ``notes["unseen"]`` counts the points no image sees, per split."""
    from concerto3d.evaluation.lifting import lift_split

    image_encoder = _image_encoder_of(run_dir, settings, data)
    train, val = (lift_split(image_encoder, data, split, settings.image_batch, desc, progress)
                  for split in ("train", "val"))
    return SplitFeatures(train.features, train.labels, val.features, val.labels,
                         notes={"unseen": {"train": train.counts, "val": val.counts}})


def concat_features(a: SplitFeatures, b: SplitFeatures) -> SplitFeatures:
    """``[a, b]`` channel-wise, scene by scene (same scenes, same order, same labels)."""
    def cat(xs, ys):
        if len(xs) != len(ys):
            raise ValueError(f"cannot concatenate features of {len(xs)} and {len(ys)} scenes")
        return [np.concatenate([x, y], axis=1) for x, y in zip(xs, ys)]

    for ya, yb in zip(a.train_y + a.val_y, b.train_y + b.val_y):
        if not np.array_equal(ya, yb):
            raise ValueError("the two feature sets do not describe the same points (labels differ)")
    return SplitFeatures(cat(a.train_x, b.train_x), a.train_y, cat(a.val_x, b.val_x), a.val_y,
                         notes=dict(a.notes))


# ---------------------------------------------------------------------------------------------------------------
# the whole ablation


def run_ablation(data: str | os.PathLike, out: str | os.PathLike, settings: AblationSettings,
                 device=None, progress: bool = True, command: str | None = None,
                 on_unit_done: Callable[[str, int, dict], None] | None = None) -> list[RowStats]:
    """Train, probe and tabulate every (row, seed) that is not done yet, then write the table.

    Args:
        data: a preprocessed dataset (``concerto3d preprocess``) with ``splits/train.txt`` and ``splits/val.txt``;
            the trained rows train on the train split.
        out: the ablation folder (see :mod:`concerto3d.evaluation.ablation` for its layout).
        settings: steps, seeds, overrides and probe settings (its digests are filled in here).
        device: where the linear heads train (the training runs follow ``device=`` in the overrides).
        progress: show the progress bar across the whole ablation and the bars of its training, embedding and
            lifting; False shows none.
        command: the command line, printed in results.md.
        on_unit_done: called as ``on_unit_done(row, seed, summary)`` after each newly probed unit.
    Returns:
        the table's rows (:class:`RowStats`), also written to ``results.{csv,md,png}``.
    """
    from concerto3d.io.progress import progress_bar

    from concerto3d.data.scene import split_scenes

    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise InputError("not a folder; expected a preprocessed dataset (concerto3d preprocess OUT)", data)
    split_scenes(data, "train"), split_scenes(data, "val")  # fail now, not after an hour of training
    record_digests(settings, data)
    if settings.image_encoder is not None:
        if not Path(settings.image_encoder).is_dir():
            raise InputError("--image-encoder: no such folder", settings.image_encoder)
        check_image_encoder(Path(settings.image_encoder), settings, data)  # now, not after an hour of training
        settings.image_encoder_sha256 = image_encoder_digest(Path(settings.image_encoder))
    out.mkdir(parents=True, exist_ok=True)
    check_settings_file(out, settings, data)

    units = [(row, seed) for seed in settings.seeds for row in settings.rows]
    done = {u for u in units if probe_path_of(out, *u).is_file()}
    bar = progress_bar(total=len(units), initial=len(done), desc="ablation", unit="run", disable=not progress,
               position=0)
    header = {"command": command, "data": str(data), "settings": {"data": str(data), **asdict(settings)}}
    if settings.image_encoder is not None:
        header["image_encoder"] = image_encoder_summary(Path(settings.image_encoder), settings.image_encoder_sha256)
    cache: dict[str, SplitFeatures] = {}  # this seed's 2d and 3d features, for concat
    cache_seed = None
    given: list[SplitFeatures] = []  # the --image-encoder's lifted features: the same for every seed, lifted once

    def features(row: str, run_dir: Path, seed: int) -> SplitFeatures:
        if row != "2d":
            return point_features(run_dir, data, settings, seed, "embed", progress)
        if settings.image_encoder is None:
            return lifted_features(run_dir, data, settings, "lift", progress)
        if not given:
            given.append(lifted_features(run_dir, data, settings, "lift", progress))
        return given[0]

    try:
        for row, seed in units:
            if (row, seed) in done:
                continue
            if cache_seed != seed:
                cache, cache_seed = {}, seed
            bar.set_description(f"ablation: {row} seed {seed}")
            tic = time.perf_counter()
            train_s = 0.0
            if row == "concat":
                for part in ("2d", "3d"):
                    if part not in cache:
                        run_dir, spent = ensure_trained(data, out, part, seed, settings, progress)
                        train_s += spent
                        cache[part] = features(part, run_dir, seed)
                feats = concat_features(cache["2d"], cache["3d"])
                run_dir = None
            else:
                run_dir, train_s = ensure_trained(data, out, row, seed, settings, progress)
                feats = features(row, run_dir, seed)
                if row in ("2d", "3d") and "concat" in settings.rows:
                    cache[row] = feats
            feat_s = time.perf_counter() - tic - train_s
            tic_probe = time.perf_counter()
            summary = probe_features(feats, settings.probe_epochs, settings.probe_lr, seed,
                                     settings.probe_batch_size, device, settings.probe_points)
            summary.update(row=row, seed=seed, label=ROW_BY_KEY[row].label,
                           run=None if run_dir is None else str(run_dir),
                           steps=0 if row == "random" else settings.steps,
                           seconds={"train": round(train_s, 2), "features": round(feat_s, 2),
                                    "probe": round(time.perf_counter() - tic_probe, 2)})
            probe_path = probe_path_of(out, row, seed)
            probe_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(probe_path, json_safe(summary))
            log.info("%s seed %d: val mIoU %.1f (train %.0f s, features %.0f s)", row, seed,
                     100 * summary["miou"], train_s, feat_s)
            bar.update(1)
            stats = aggregate(load_probes(out, settings.rows, settings.seeds))
            write_results(out, stats, {**header, "wall_time": wall_time(out, settings)})
            if on_unit_done is not None:
                on_unit_done(row, seed, summary)
    finally:
        bar.close()
    stats = aggregate(load_probes(out, settings.rows, settings.seeds))
    write_results(out, stats, {**header, "wall_time": wall_time(out, settings)})
    return stats


def wall_time(out: Path, settings: AblationSettings) -> str:
    """Sum of the per-unit seconds recorded in the probe JSONs (training + features + probe)."""
    total = 0.0
    for row in settings.rows:
        for seed in settings.seeds:
            path = probe_path_of(out, row, seed)
            if path.is_file():
                total += sum(json.loads(path.read_text()).get("seconds", {}).values())
    return f"{total / 60:.1f} min of recorded work (training, features, probes; data preparation not included)"
