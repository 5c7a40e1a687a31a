"""What an ablation folder pins: the digests of its data and config, and the refusal of other settings."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import numpy as np
import pytest

from concerto3d.errors import InputError
from concerto3d.evaluation.ablation import AblationSettings, data_digest, run_ablation, training_digest
from concerto3d.evaluation.ablation.provenance import describe_image_encoder


def test_a_folder_whose_settings_lack_a_digest_is_refused_as_other_settings(tiny_data, tmp_path, tiny):
    out = tmp_path / "abl"
    out.mkdir()
    settings = AblationSettings(steps=1, seeds=[0], overrides=tiny, rows=["random"], probe_epochs=2)
    old = {"data": str(tiny_data), **asdict(settings)}
    old["training_sha256"] = training_digest(settings)
    old.pop("data_sha256")
    (out / "ablation.json").write_text(json.dumps(old))
    with pytest.raises(InputError, match=r"other settings \(data_sha256 differ\)"):
        run_ablation(tiny_data, out, settings, progress=False)


def test_data_digest_follows_the_points_labels_and_files_not_the_folder_or_meta(tiny_data, tmp_path):
    digest = data_digest(tiny_data)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data, copy)
    (copy / "scene0001_00" / "meta.json").write_text("{}")
    # a frozen image encoder's feature cache, which training writes into the scenes, is not data
    (copy / "scene0001_00" / "image_features").mkdir(exist_ok=True)
    np.save(copy / "scene0001_00" / "image_features" / ("0" * 16 + ".npy"), np.zeros((2, 2, 3, 4), np.float32))
    assert data_digest(copy) == digest

    def changed(edit) -> str:
        other = tmp_path / f"other{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tiny_data, other)
        edit(other)
        return data_digest(other)

    def nudge_coord(root):
        coord = np.load(root / "scene0002_00" / "coord.npy")
        coord[5, 2] += 0.01
        np.save(root / "scene0002_00" / "coord.npy", coord)

    def drop_correspondences(root):
        corr = np.load(root / "scene0001_00" / "correspondences.npy")
        np.save(root / "scene0001_00" / "correspondences.npy", corr[:-3])

    def swap_splits(root):
        train = (root / "splits" / "train.txt").read_text().split()
        val = (root / "splits" / "val.txt").read_text().split()
        (root / "splits" / "train.txt").write_text("\n".join(train[1:] + val) + "\n")
        (root / "splits" / "val.txt").write_text(train[0] + "\n")

    digests = {changed(nudge_coord), changed(drop_correspondences), changed(swap_splits)}
    assert len(digests) == 3 and digest not in digests


def test_the_image_encoder_line_names_a_label_trained_teacher_as_outside_knowledge():
    """results.md says what the 2D row is: a teacher trained on frame labels is named as DINOv2's stand-in."""
    teacher = describe_image_encoder("/t/run", "ab" * 32, {"objective": "2d-supervised", "steps": 2000})
    assert teacher.startswith("2D row and joint target: the 2D teacher `/t/run` (sha256 abababababab)")
    assert "2000 steps" in teacher and "outside knowledge" in teacher and "DINOv2" in teacher
    hugging_face = describe_image_encoder("/dinov2", None, None)
    assert "pre-trained image encoder `/dinov2` (sha256 n/a)" in hugging_face and "DINOv2" in hugging_face
    own = describe_image_encoder("/r", "cd" * 32, {"objective": "2d", "steps": 5})
    assert "concerto3d `2d` run" in own and "outside knowledge" not in own
