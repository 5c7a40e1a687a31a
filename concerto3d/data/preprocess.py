"""Scans in, training data out: ``concerto3d preprocess`` (output layout: data/README.md §3).

:func:`preprocess` finds the scenes (:mod:`concerto3d.data.scene_sources`), runs one job per scene over ``workers``
processes (spawn-safe; each job is :func:`concerto3d.data.scene_builder.process_scene`), then writes the split lists
and ``summary.json``. A scene folder exists only when complete; a rerun skips scenes whose folder holds
``meta.json`` and removes the ``.tmp-*`` folders of processes that are gone. Outputs are byte-identical whatever
the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import shutil
import time
import zlib
from collections import Counter
from dataclasses import asdict, fields, replace
from pathlib import Path

from concerto3d.data.preprocess_options import PreprocessOptions
from concerto3d.data.scene import read_meta, write_split
from concerto3d.data.scene_builder import process_scene
from concerto3d.data.scene_sources import SceneJob, find_scenes, open_scene, pointcept_job_scene
from concerto3d.errors import Concerto3DError, InputError
from concerto3d.io.atomic import atomic_write_text
from concerto3d.io.paths import die_with_parent, ensure_output_dir, output_lock, output_write_error, pid_alive
from concerto3d.io.split_lists import read_split as read_split_list

__all__ = ["preprocess", "run_job", "clean_stale_tmp", "summarize", "format_summary"]

log = logging.getLogger(__name__)

# errors that mean "this scene's input is bad": the scene is skipped, the others go on
_SCENE_ERRORS = (Concerto3DError, OSError, EOFError, zlib.error, ValueError)


def run_job(job: SceneJob, out: str, options: PreprocessOptions) -> dict:
    """Process one scene in this process; never raises for a bad scene (spawn-safe pool target).

    A full disk (or read-only file system) under ``out`` is not a bad scene: it raises InputError naming ``out``.

    Returns:
        ``{"scene", "status": "done" | "exists" | "skipped", "reason"?, "meta"?, "seconds"}``.
    """
    start = time.perf_counter()
    final = Path(out) / job.name
    result = {"scene": job.name}
    if (final / "meta.json").is_file():
        result.update(status="exists", meta=read_meta(final))
    elif final.exists():
        result.update(status="skipped", reason=f"{final} exists without meta.json; remove it to redo the scene")
    else:
        try:
            if job.kind == "pointcept":  # converted: its frames and correspondences are Pointcept's
                from concerto3d.data.pointcept_scene import process_pointcept_scene

                meta = process_pointcept_scene(pointcept_job_scene(job), out, options)
            else:
                frames, mesh, source, frame_labels = open_scene(job)
                meta = process_scene(job.name, frames, mesh, out, options, source, frame_labels)
            result.update(status="done", meta=meta)
        except _SCENE_ERRORS as err:
            full = output_write_error(err, out, "output folder")
            if full is not None:  # a full disk is no fault of the scene: every later scene would fail the same way
                raise full from None
            result.update(status="skipped", reason=_one_line(err))
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, Concerto3DError) else f"{type(err).__name__}: {text}"


def clean_stale_tmp(out: Path) -> list[str]:
    """Remove ``out/.tmp-<scene>-<pid>`` folders whose process is gone; returns their names."""
    removed = []
    for d in sorted(out.glob(".tmp-*")):
        m = re.fullmatch(r"\.tmp-.*-(\d+)", d.name)
        if d.is_dir() and (m is None or not pid_alive(int(m.group(1)))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


# ---------------------------------------------------------------------------------------------------------------
# the whole run


def preprocess(scans: str | os.PathLike, out: str | os.PathLike, options: PreprocessOptions | None = None, *,
               workers: int = 1, source: str = "auto", rgbd_preset: str | None = None,
               depth_scale: float | None = None, progress: bool = True, scene_name: str | None = None,
               **option_overrides) -> dict:
    """Preprocess every scene under ``scans`` into ``out`` (layout: data/README.md §3).

    Args:
        scans: a ScanNet root (with ``scans/``), one scene folder, the root of Pointcept's preprocessed layout
            (data/README.md §4), an RGB-D folder or a folder of them.
        out: output root; created if needed. Finished scenes in it are kept and skipped.
        options: what is done to every scene; None = the defaults of :class:`PreprocessOptions`.
        workers: scenes processed in parallel (processes).
        source: ``"auto"``, ``"scannet"``, ``"pointcept"`` or ``"rgbd"``; rgbd_preset, depth_scale: for RGB-D
            folders.
        progress: show a progress bar over scenes.
        scene_name: the name of the scene when ``scans`` holds exactly one (default: its folder's name, which for
            an RGB-D folder is often a generic ``data`` or ``rgbd``).
        **option_overrides: fields of :class:`PreprocessOptions` that replace those of ``options``, e.g.
            ``frame_skip=1, image_size=(48, 64)``.
    Returns:
        the summary (also written to ``out/summary.json``): scenes done/skipped with reasons, points, frames kept
        and skipped by reason, correspondences per frame; plus ``"this_run"`` (scenes processed now, found
        finished, seconds), which is not written to the file.
    Raises:
        InputError: bad options, no scenes found, or every scene was skipped.
    """
    options = _merge_options(options, option_overrides)
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    jobs = find_scenes(scans, source, rgbd_preset, depth_scale)
    if scene_name is not None:
        if len(jobs) != 1:
            raise InputError(f"--scene-name names one scene; the input holds {len(jobs)}", scans)
        if not scene_name or any(c.isspace() or c in "/\\" for c in scene_name) or scene_name.startswith("."):
            raise InputError(f"--scene-name: expected a folder name without spaces or slashes, got {scene_name!r}")
        jobs = [replace(jobs[0], name=scene_name)]
    input_splits = _input_split_lists(Path(scans), jobs)  # a malformed list fails now, not after the scenes
    if any(job.kind == "pointcept" for job in jobs):
        from concerto3d.data.pointcept_scene import ignored_options

        for name in ignored_options(options):
            log.warning("%s does not apply to Pointcept's layout (its frames and correspondences are kept as "
                        "Pointcept made them); ignored", "--" + name.replace("_", "-"))
    out = ensure_output_dir(out)  # a read-only, full or impossible folder fails now, not after the first scene
    with output_lock(out, "preprocessed dataset"):  # one writer: a second preprocess into OUT is refused
        return _preprocess_into(out, Path(scans), jobs, input_splits, options, workers, progress)


def _preprocess_into(out: Path, scans: Path, jobs: list, input_splits, options: PreprocessOptions, workers: int,
                     progress: bool) -> dict:
    """The body of :func:`preprocess` once its arguments are checked and ``out`` is locked."""
    for name in clean_stale_tmp(out):
        log.info("removed the unfinished %s of an earlier run", name)
    log.info("preprocess: %d scene(s) from %s into %s; options %s", len(jobs), scans, out, options)

    start = time.perf_counter()
    results = []
    pool = None
    bar = _progress_bar(len(jobs), progress)
    try:
        if workers == 1 or len(jobs) == 1:
            outcomes = (run_job(job, str(out), options) for job in jobs)
        else:
            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(jobs)), initializer=die_with_parent)
            outcomes = pool.imap_unordered(_run_job_star, [(job, str(out), options) for job in jobs])
        for result in outcomes:
            results.append(result)
            if result["status"] == "skipped":
                log.warning("skipped scene %s: %s", result["scene"], result["reason"])
            elif result["status"] == "exists" and _options_differ(result["meta"], options):
                log.warning("scene %s was preprocessed earlier with other options (%s); kept as it is: remove "
                            "%s to redo it", result["scene"], _meta_options(result["meta"]), out / result["scene"])
            bar.update(1)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()

    summary = summarize(sorted(results, key=lambda r: r["scene"]), options)
    _write_splits(input_splits, out, [r["scene"] for r in results if r["status"] != "skipped"])
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    summary["this_run"] = {
        "processed": sum(r["status"] == "done" for r in results),
        "already_done": sum(r["status"] == "exists" for r in results),
        "seconds": round(time.perf_counter() - start, 3),
    }
    print(format_summary(summary))
    if summary["scenes"]["done"] == 0:
        first = summary["skipped"][next(iter(summary["skipped"]))]
        raise InputError(f"no scene could be preprocessed (first reason: {first})", scans)
    return summary


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar over scenes; without one, tqdm is not imported at all (its import takes about 0.1 s)."""
    if not enabled:
        return _NoBar()
    from concerto3d.io.progress import progress_bar

    return progress_bar(total=total, unit="scene", desc="preprocess")


def _meta_options(meta_or_options) -> dict:
    """The options that change a scene's content, from a meta dict or from PreprocessOptions (to compare them)."""
    if isinstance(meta_or_options, PreprocessOptions):
        o = meta_or_options
        return {"frame_skip": o.frame_skip, "voxel": o.voxel, "image_size": list(o.image_size),
                "abs_tol": o.abs_tol, "rel_tol": o.rel_tol, "max_frames": o.max_frames, "up": o.up}
    m = meta_or_options
    return {"frame_skip": m["frames"]["frame_skip"], "voxel": m["voxel"], "image_size": m["image_size"],
            "abs_tol": m["depth_test"].get("abs_tol"), "rel_tol": m["depth_test"].get("rel_tol"),
            "max_frames": m["options"]["max_frames"], "up": m.get("up", {}).get("mode", "auto")}


def _options_differ(meta: dict, options: PreprocessOptions) -> bool:
    """Whether a finished scene was made with other options than ``options`` (only those that applied to it: a
    scene converted from Pointcept's layout had no frame skip or depth test of ours)."""
    made, now = _meta_options(meta), _meta_options(options)
    if meta.get("source", {}).get("kind") == "pointcept":
        made = {k: v for k, v in made.items() if k not in ("frame_skip", "abs_tol", "rel_tol")}
    return any(now[k] != v for k, v in made.items())


def _run_job_star(args) -> dict:
    return run_job(*args)


def summarize(results: list[dict], options: PreprocessOptions) -> dict:
    """The run's summary from the per-scene results (sorted by scene); depends only on the scenes' meta files."""
    metas = [r["meta"] for r in results if r["status"] in ("done", "exists")]
    skipped_frames: Counter = Counter()
    for m in metas:
        skipped_frames.update(m["frames"]["skipped"])
    kept = sum(m["frames"]["kept"] for m in metas)
    corr = sum(m["correspondences"]["total"] for m in metas)
    return {
        "scenes": {"total": len(results), "done": len(metas), "skipped": len(results) - len(metas)},
        "skipped": {r["scene"]: r["reason"] for r in results if r["status"] == "skipped"},
        "points": sum(m["num_points"] for m in metas),
        "frames": {"kept": kept, "skipped": dict(sorted(skipped_frames.items()))},
        "correspondences": {
            "total": corr, "per_frame_mean": round(corr / kept, 3) if kept else 0.0,
            "per_frame_min": min((m["correspondences"]["per_frame_min"] for m in metas), default=0),
            "per_frame_max": max((m["correspondences"]["per_frame_max"] for m in metas), default=0),
        },
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
    }


def format_summary(summary: dict) -> str:
    """A few human-readable lines of a summary."""
    s, f, c = summary["scenes"], summary["frames"], summary["correspondences"]
    skipped = ", ".join(f"{n} {r}" for r, n in f["skipped"].items()) or "none"
    lines = [
        f"scenes: {s['done']} done, {s['skipped']} skipped (of {s['total']})",
        f"points: {summary['points']}",
        f"frames: {f['kept']} kept; skipped: {skipped}",
        f"correspondences: {c['total']} ({c['per_frame_mean']:.1f} per frame, min {c['per_frame_min']}, "
        f"max {c['per_frame_max']})",
    ]
    lines += [f"  skipped scene {name}: {reason}" for name, reason in summary["skipped"].items()]
    if "this_run" in summary:
        t = summary["this_run"]
        lines.append(f"this run: {t['processed']} processed, {t['already_done']} already done, {t['seconds']:.1f} s")
    return "\n".join(lines)


def _merge_options(options: PreprocessOptions | None, overrides: dict) -> PreprocessOptions:
    """``options`` (or the defaults) with ``overrides`` replacing fields, normalised and checked."""
    if options is not None and not isinstance(options, PreprocessOptions):
        raise TypeError(f"options: expected a PreprocessOptions or None, got {type(options).__name__}")
    names = {f.name for f in fields(PreprocessOptions)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"preprocess() got unknown option(s) {', '.join(unknown)}; expected fields of "
                        f"PreprocessOptions: {', '.join(sorted(names))}")
    merged = replace(options or PreprocessOptions(), **overrides)
    return replace(merged, voxel=float(merged.voxel), image_size=tuple(int(s) for s in merged.image_size),
                   reduced_decode=bool(merged.reduced_decode)).check()


def _input_split_lists(scans: Path, jobs: list[SceneJob]) -> dict[str, list[str]]:
    """The input's split lists, ``{split: names}``: ScanNet's ``scans/scannetv2_<split>.txt``, or the split folders of
    Pointcept's layout (names sorted); none: ``{}``."""
    if jobs and jobs[0].kind == "pointcept":
        splits: dict[str, list[str]] = {}
        for job in jobs:
            splits.setdefault(job.split, []).append(job.name)
        return splits
    return {path.stem[len("scannetv2_"):]: read_split_list(path) for path in sorted(scans.glob("scannetv2_*.txt"))}


def _write_splits(input_splits: dict[str, list[str]], out: Path, done: list[str]) -> None:
    """``out/splits/<split>.txt``: the input's lists keeping the finished scenes, in their order; an input without
    lists gets ``splits/train.txt`` naming every finished scene (sorted), as every reader needs a train list."""
    done_set = set(done)
    for split, names in input_splits.items():
        write_split(out, split, [n for n in names if n in done_set])
    if not input_splits and done:
        write_split(out, "train", sorted(done_set))
