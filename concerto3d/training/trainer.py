"""The training loop: one process, or one of several under ``torchrun`` (DDP).

:func:`train` builds everything from a :class:`concerto3d.config.TrainConfig` and runs the loop, whose body reads
like a recipe, one labelled stage per block: batch, forward, losses, step, EMA, log, checkpoint.

Resuming is exact on CPU: the data order is a pure function of (seed, epoch, step) (a ``DistributedSampler`` seeded
per epoch, sliced at the step's position; every sample draws its augmentation from its own seeded generator), and a
checkpoint carries the model (student and teacher), the optimiser, the step, every random state and the config. A
run stopped after step k and resumed logs the same losses as one that never stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from concerto3d.config import TrainConfig, to_dict, to_yaml, with_data_geometry
from concerto3d.device import resolve_device
from concerto3d.models.digest import state_digest
from concerto3d.errors import InputError
from concerto3d.io.paths import ensure_output_dir, output_lock
from concerto3d.training import distributed as ddp
from concerto3d.training.checkpoint import (list_checkpoints, load_latest_checkpoint, remove_stale_temporaries,
                                            rng_state, save_checkpoint, set_rng_state)
from concerto3d.training.ema import ema_update
from concerto3d.training.logging import MetricsLogger
from concerto3d.training.schedules import build_schedules

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "train", "build_optimizer", "batch_indices", "StopRequest", "seed_everything"]


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: the run folder.
        steps_done: optimiser steps done, counting skipped ones (the next run resumes here).
        skipped_steps: steps skipped because the loss or the gradient was not finite.
        interrupted: stopped early by SIGINT/SIGTERM (a checkpoint was written).
        model_dir: ``RUN/model`` when the run finished and saved its encoders, else None.
        digest: SHA-256 of the model's weights (student, teacher, buffers) at the end; equal on every DDP rank.
    """

    run_dir: Path
    steps_done: int
    skipped_steps: int
    interrupted: bool
    model_dir: Path | None
    digest: str = ""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model initialisation, InfoNCE subsets)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, optim) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on norms and biases (1-D tensors).

    Args:
        model: the (unwrapped) model.
        optim: an :class:`concerto3d.config.OptimConfig`.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    groups = [{"params": decay, "weight_decay": optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=optim.lr, betas=optim.betas)


def batch_indices(num_samples: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world_size: int = 1) -> list[list[int]]:
    """The sample indices of every batch of ``epoch`` on process ``rank``: a pure function of its arguments.

    A ``DistributedSampler`` (shuffled, seeded with ``seed``, ``set_epoch(epoch)``, ``drop_last``) split into
    full batches. Used to start a resumed run at any step of an epoch.

    Returns:
        ``steps_per_epoch`` lists of ``batch_size`` indices.
    """
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(num_samples), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def _batches(dataset, cfg: TrainConfig, info: ddp.DistInfo, start_step: int, pin: bool) -> Iterator:
    """Endless TrainBatches from ``start_step`` on: epoch ``step // steps_per_epoch``, position ``step % ...``."""
    from torch.utils.data import DataLoader

    from concerto3d.data.collate import collate_scenes

    steps_per_epoch = len(batch_indices(len(dataset), cfg.batch_size, cfg.seed, 0, info.rank, info.world_size))
    epoch, position = divmod(start_step, steps_per_epoch)
    while True:
        dataset.set_epoch(epoch)  # the samples' augmentations depend on the epoch
        batches = batch_indices(len(dataset), cfg.batch_size, cfg.seed, epoch, info.rank, info.world_size)
        # The loader's own generator: creating its iterator must not draw from the global torch RNG, or a run
        # resumed mid-epoch would draw once more than the uninterrupted run did.
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        loader = DataLoader(dataset, batch_sampler=batches[position:], collate_fn=collate_scenes,
                            num_workers=cfg.num_workers, pin_memory=pin, generator=generator)
        yield from loader
        epoch, position = epoch + 1, 0


class StopRequest:
    """Context manager: SIGINT/SIGTERM set ``requested`` instead of killing the run; a second SIGINT does.

    The loop checks the flag after each step, writes a checkpoint and returns. Handlers are installed only in the
    main thread (Python's rule) and restored on exit.
    """

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._old = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        logger.warning("%s received: finishing this step, writing a checkpoint, then stopping "
                       "(Ctrl-C again to stop at once)", self.signal_name)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()


def _check_data(dataset, cfg: TrainConfig, info: ddp.DistInfo) -> None:
    needed = cfg.batch_size * info.world_size
    if len(dataset) < needed and cfg.data.loop == 1:
        # fewer scenes than one step's crops (one RGB-D sequence, say): each epoch draws several crops of every
        # scene, as data.loop would; a loop the user set is kept (and then checked below)
        loop = -(-needed // len(dataset.scenes))
        dataset.config = dataclasses.replace(dataset.config, loop=loop)
        logger.info("%d scene(s) for %d crops a step: data.loop=%d (each epoch draws %d crops of every scene)",
                    len(dataset.scenes), needed, loop, loop)
    if len(dataset) < needed:
        raise InputError(f"expected at least batch_size x processes = {needed} samples, the dataset has "
                         f"{len(dataset)} (add scenes, lower batch_size, or raise data.loop)", dataset.root)
    if cfg.objective.kind == "2d-supervised" and not any((dataset.root / name / "labels").is_dir()
                                                          for name in dataset.scenes):
        raise InputError("the 2d-supervised objective needs frames with 2D labels (labels/<k>.png), none of the "
                         "scenes has them: preprocess scans that ship <scene>_2d-label-filt.zip (concerto3d synth "
                         "writes them)", dataset.root)


def _use_feature_cache(image_encoder, dataset, cfg: TrainConfig, info: ddp.DistInfo) -> None:
    """Cache the frozen image encoder's patch features of the training scenes' frames (the main process writes
    them, the others wait) and have the dataset hand them out instead of running the encoder every step."""
    from concerto3d.inference.feature_cache import encoder_digest, ensure_feature_cache

    scenes = [dataset.root / name for name in dataset.scenes]
    if info.is_main:
        tic = time.perf_counter()
        digest = ensure_feature_cache(image_encoder, scenes, cfg.data.image_size)
        logger.info("frozen image features: cache %s for %d scene(s) ready in %.1f s", digest, len(scenes),
                    time.perf_counter() - tic)
    ddp.barrier()
    dataset.use_feature_cache(encoder_digest(image_encoder, cfg.data.image_size))


RUN_OUTPUTS = ("config.yaml", "metrics.csv", "checkpoints", "tensorboard", "model")  # what a run writes


def check_run_folder(run_dir: Path, resume: bool) -> None:
    """Refuse, before any work, a run folder that would lose something: files a run does not write (someone
    else's folder), or without ``resume`` the checkpoints or the trained ``model/`` of an earlier run."""
    foreign = sorted(p.name for p in Path(run_dir).iterdir()
                     if p.name not in RUN_OUTPUTS and p.name[0] != "." and not p.name.startswith("metrics.damaged-"))
    if foreign:
        raise InputError(f"holds files a training run does not write (e.g. {foreign[0]!r}); choose a new or empty "
                         "--out", run_dir)
    if not resume and list_checkpoints(run_dir):
        raise InputError("the run folder already holds checkpoints: pass --resume to continue it, or choose "
                         "another --out", run_dir)
    if not resume and (Path(run_dir) / "model").exists():
        raise InputError("the run folder already holds a trained model (model/): choose another --out, or pass "
                         "--resume to train it further", run_dir)


def _resume_state(run_dir: Path, resume: bool):
    """The checkpoint to resume from (or None; :func:`check_run_folder` refused a folder it would overwrite)."""
    if not resume:
        return None
    found = load_latest_checkpoint(run_dir, map_location="cpu")  # load_state_dict moves tensors to the model
    if found is None:
        logger.warning("--resume: no checkpoint in %s, starting from step 0", run_dir)
        return None
    state, path = found
    logger.info("resuming from %s (step %d)", path, state["step"])
    return state


def _config_changes(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    changes = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changes



def _data_config(cfg):
    """``cfg.data``, with no frames for objectives that read no images (3d, supervised): their crops and point
    views are the same (drawn before the images), and no image or correspondence is read for them; with the frames'
    2D labels for the 2d-supervised objective."""
    if cfg.objective.kind in ("3d", "supervised"):
        return dataclasses.replace(cfg.data, max_frames=0)
    if cfg.objective.kind == "2d-supervised":  # its targets: the frames' 2D labels
        return dataclasses.replace(cfg.data, frame_labels=True)
    return cfg.data

def train(cfg: TrainConfig, data_root: str | os.PathLike, run_dir: str | os.PathLike, resume: bool = False,
          on_step_end: Callable[[int, dict], None] | None = None, progress: bool = True) -> TrainResult:
    """Train the model of ``cfg.objective.kind`` (:func:`concerto3d.models.build.build_model`) on preprocessed scenes.

    The run folder has one writer: the main process holds its lock (``io.paths.output_lock``), so a second
    ``train`` into the same folder is refused instead of mixing two runs' checkpoints and metrics.

    Args:
        cfg: the merged config (defaults + YAML + overrides).
        data_root: output folder of ``concerto3d preprocess``.
        run_dir: where checkpoints, ``metrics.csv``, TensorBoard logs and ``model/`` go.
        resume: continue from the newest readable checkpoint of ``run_dir``.
        on_step_end: called as ``on_step_end(step, metrics)`` after every step (tests, benchmarks).
        progress: show the training progress bar (on the main process); False shows none.
    Returns:
        a :class:`TrainResult`.
    Raises:
        InputError: unusable data, a run folder that would lose an earlier run's files (:func:`check_run_folder`), or
        one another process is writing into.
    """
    run_dir = ensure_output_dir(run_dir, "run folder")
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes
        return _train(cfg, data_root, run_dir, resume, on_step_end, progress)
    with output_lock(run_dir, "run folder"):
        return _train(cfg, data_root, run_dir, resume, on_step_end, progress)


def _train(cfg: TrainConfig, data_root, run_dir: Path, resume: bool, on_step_end, progress: bool) -> TrainResult:
    """The body of :func:`train`, with the run folder locked."""
    from concerto3d.io.progress import progress_bar

    from concerto3d.data.dataset import SceneDataset
    from concerto3d.models.build import build_model
    from concerto3d.models.concerto import StepState
    from concerto3d.inference import load_image_backbone, save_model
    from concerto3d.inference.model_folder import training_provenance

    run_dir = ensure_output_dir(run_dir, "run folder")  # unwritable: fail before data and model are built
    check_run_folder(run_dir, resume)  # someone else's files, or an earlier run's: before any work
    for name in remove_stale_temporaries(run_dir):
        logger.info("removed %s, left by an interrupted write", name)
    cfg = with_data_geometry(cfg, data_root)  # image and patch size: the data's unless set
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = ddp.init_distributed(device)
    try:
        # -- setup ---------------------------------------------------------------------------------------------
        seed_everything(cfg.seed)  # the same on every rank: identical initial weights
        dataset = SceneDataset(data_root, split=cfg.split, config=_data_config(cfg))
        _check_data(dataset, cfg, info)
        model = build_model(cfg, resolve_backbone=load_image_backbone).to(device)
        # what the model folder's card says it was trained on (data and image encoder digests), taken before the
        # first step: the files as they were read
        provenance = (training_provenance(cfg, data_root, dataset.scenes,
                                          getattr(model, "image_encoder", None) is not None)
                      if info.is_main else None)
        if getattr(model, "frozen_image_target", False) and cfg.objective.frozen_feature_cache:
            _use_feature_cache(model.image_encoder, dataset, cfg, info)
        optimizer = build_optimizer(model, cfg.optim)
        schedules = build_schedules(cfg.optim, cfg.steps)
        state = _resume_state(run_dir, resume)
        start_step, skipped = 0, 0
        if state is not None:
            changes = _config_changes(state["config"], to_dict(cfg))
            if changes:
                logger.warning("the config differs from the checkpoint's (the resumed run will not match an "
                               "uninterrupted one): %s", "; ".join(changes))
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start_step, skipped = int(state["step"]), int(state["skipped_steps"])
            rngs = state["rng"]
            set_rng_state(rngs[info.rank] if info.rank < len(rngs) else rngs[0])
        ddp_model = model
        if info.enabled:
            ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True)  # e.g. heads a batch without correspondences leaves unused
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.amp
                    else contextlib.nullcontext())
        log = MetricsLogger(run_dir, enabled=info.is_main, resume_step=start_step if state is not None else None)
        if info.is_main:
            text = to_yaml(cfg)
            transforms = (f"point views: {dataset.point_transform}\nimages: {dataset.image_transform}")
            logger.info("device %s, %d process(es), %d samples, steps %d..%d\nconfig:\n%s%s", device,
                        info.world_size, len(dataset), start_step, cfg.steps, text, transforms)
            log.log_text("config", text)
            log.log_text("transforms", transforms)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(text)
        batches = _batches(dataset, cfg, info, start_step, pin=device.type == "cuda")
        steps_per_epoch = len(batch_indices(len(dataset), cfg.batch_size, cfg.seed, 0, info.rank, info.world_size))
        params = [p for p in model.parameters() if p.requires_grad]
        bar = progress_bar(total=cfg.steps, initial=start_step, desc="train", unit="step",
                   disable=not (info.is_main and progress))

        def checkpoint(steps_done: int) -> None:
            rngs = ddp.all_gather_object(rng_state())
            if info.is_main:
                save_checkpoint(run_dir, {
                    "step": steps_done, "skipped_steps": skipped,
                    "model": model.state_dict(),  # student encoders + heads, teacher.*, DINO centre
                    "optimizer": optimizer.state_dict(), "rng": rngs,
                    "data": {"epoch": steps_done // steps_per_epoch, "position": steps_done % steps_per_epoch,
                             "steps_per_epoch": steps_per_epoch, "world_size": info.world_size},
                    "config": to_dict(cfg)}, steps_done, keep=cfg.keep_checkpoints)

        step = start_step
        interrupted = False
        model.train()
        with StopRequest() as stop, bar:  # the bar ends its line also when a step raises
            for step in range(start_step, cfg.steps):
                tic = time.perf_counter()
                # -- batch -----------------------------------------------------------------------------------
                batch = next(batches).to(device, non_blocking=True)
                lr, momentum = float(schedules.lr[step]), float(schedules.momentum[step])

                # -- forward ---------------------------------------------------------------------------------
                with autocast:
                    out = ddp_model(batch, StepState(step, cfg.objective.teacher_temperature))

                # -- losses: every rank agrees whether the step is usable and whether to stop ----------------
                loss = out["loss"]
                flags = torch.tensor([0.0 if bool(torch.isfinite(loss)) else 1.0, float(stop.requested)],
                                     device=device)
                ddp.all_reduce_max(flags)

                # -- step ------------------------------------------------------------------------------------
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # also for a non-finite loss, so that DDP's gradient hooks run on every rank
                grad_norm = nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip if cfg.optim.grad_clip > 0
                                                     else float("inf"))
                finite = flags[0].item() == 0 and bool(torch.isfinite(grad_norm))
                if finite:
                    optimizer.step()
                else:
                    skipped += 1
                    optimizer.zero_grad(set_to_none=True)
                    logger.warning("step %d: non-finite loss or gradient (loss %s), step skipped (%d so far)",
                                   step, loss.item(), skipped)

                # -- EMA -------------------------------------------------------------------------------------
                if finite:
                    for teacher, student in model.ema_pairs():
                        ema_update(teacher, student, momentum)

                # -- log -------------------------------------------------------------------------------------
                seconds = time.perf_counter() - tic
                metrics = {k: float(v.detach()) for k, v in out.items()}
                metrics.update(lr=lr, momentum=momentum, grad_norm=float(grad_norm), skipped_steps=skipped,
                               points_per_s=metrics.pop("points") * info.world_size / max(seconds, 1e-9),
                               step_s=seconds)
                if step % cfg.log_every == 0 or step == cfg.steps - 1:
                    log.log(step, metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", rank=f"{metrics['feat_rank']:.1f}",
                               refresh=False)
                if on_step_end is not None:
                    on_step_end(step, metrics)

                # -- checkpoint ------------------------------------------------------------------------------
                steps_done = step + 1
                stopping = flags[1].item() > 0 or (stop.requested and not info.enabled)
                if stopping or steps_done % cfg.checkpoint_every == 0 or steps_done == cfg.steps:
                    checkpoint(steps_done)
                if stopping:
                    interrupted = steps_done < cfg.steps
                    if interrupted and info.is_main:
                        logger.warning("stopped after step %d of %d (%s); continue with --resume",
                                       steps_done, cfg.steps, stop.signal_name or "signal")
                    break
        bar.close()
        log.close()
        steps_done = step + 1 if cfg.steps > start_step else start_step
        model_dir = None
        if not interrupted and info.is_main:
            model_dir = save_model(model, cfg, run_dir, weights=cfg.export_weights, steps=steps_done,
                                   training=provenance)
            logger.info("saved the trained encoders (%s) to %s", cfg.export_weights, model_dir)
        digest = state_digest(model)
        logger.info("rank %d: weights digest %s after %d steps", info.rank, digest, steps_done)
        ddp.barrier()
        if skipped:
            logger.warning("%d step(s) were skipped for non-finite values", skipped)
        return TrainResult(run_dir=run_dir, steps_done=steps_done, skipped_steps=skipped, interrupted=interrupted,
                           model_dir=model_dir, digest=digest)
    finally:
        ddp.cleanup_distributed()
