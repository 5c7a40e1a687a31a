"""Per-point features of preprocessed scenes: embedding (all points or a subset carried back), the scenes they
read, and a model that returns the wrong shape."""

import numpy as np
import pytest
import torch

from concerto3d.data.scene import load_scene, split_scenes
from concerto3d.errors import InputError
from concerto3d.evaluation.features import embed_scene, embed_split, extract_point_features, interpolate_features


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_split_scenes_and_load_scene_errors(dataset):
    assert [p.name for p in split_scenes(dataset, "val")] == ["scene_c"]
    (dataset / "splits" / "train.txt").write_text("scene_a\nscene_zz\n")
    with pytest.raises(InputError, match="scene_zz"):
        split_scenes(dataset, "train")
    np.save(dataset / "scene_a" / "color.npy", np.zeros((5, 3), np.uint8))
    with pytest.raises(InputError, match="color.npy"):
        load_scene(dataset / "scene_a")
    (dataset / "scene_b" / "coord.npy").unlink()
    with pytest.raises(InputError, match="coord.npy"):
        load_scene(dataset / "scene_b")


def test_scene_without_labels_loads_as_ignore(dataset):
    (dataset / "scene_a" / "segment20.npy").unlink()
    scene = load_scene(dataset / "scene_a")
    assert (scene.segment20 == -1).all() and scene.segment20.dtype == np.int64


def test_subsampled_embedding_is_carried_back_to_every_point(dataset, stand_in):
    scene = load_scene(dataset / "scene_a")
    full = embed_scene(stand_in(), scene)
    capped = embed_scene(stand_in(), scene, max_points=120, seed=0)
    assert capped.shape == full.shape == (300, 6)
    keep = np.sort(np.random.default_rng(0).choice(300, 120, replace=False))
    np.testing.assert_allclose(capped[keep], full[keep], atol=1e-5)  # embedded points keep their own features
    # the others get a weighted mean of neighbours: inside the range of the features
    assert (capped.min(0) >= full.min(0) - 1e-5).all() and (capped.max(0) <= full.max(0) + 1e-5).all()
    sf = extract_point_features(stand_in(), dataset / "scene_a", max_points=120)
    np.testing.assert_allclose(sf.features, capped)


def test_interpolate_features_by_hand():
    src = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    feat = torch.tensor([[0.0], [1.0]])
    dst = np.array([[0.25, 0, 0], [1.0, 0, 0]])
    out = interpolate_features(src, feat, dst, k=2)
    # weights 1/d^2: (16 * 0 + 16/9 * 1) / (16 + 16/9) = 0.1
    torch.testing.assert_close(out, torch.tensor([[0.1], [1.0]]))


def test_embed_returning_the_wrong_number_of_rows_is_caught(dataset, stand_in):
    class Broken(stand_in):
        def embed(self, points, colors=None, normals=None):
            return np.zeros((len(points) - 1, 4), np.float32)

    with pytest.raises(ValueError, match="model.embed returned"):
        embed_scene(Broken(), load_scene(dataset / "scene_a"))


def test_embed_split_keeps_at_most_n_labelled_points_per_scene(dataset, stand_in):
    scenes = split_scenes(dataset, "train")
    xs, ys = embed_split(stand_in(), scenes, None, 0, "embed", progress=False)
    assert [len(x) for x in xs] == [300, 300] and all(x.shape[1] == 6 for x in xs)
    xs, ys = embed_split(stand_in(), scenes, None, 0, "embed", labelled_per_scene=50, progress=False)
    assert [len(y) for y in ys] == [50, 50] and all((y != -1).all() for y in ys)
