"""The linear probe on tiny hand-made scenes: a stand-in model whose features separate the labels (run_probe), and
features given per split (probe_features, subsample_labelled)."""

import numpy as np
import pytest

from concerto3d.evaluation.probe import SplitFeatures, probe_features, run_probe, subsample_labelled


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_run_probe_separates_the_quadrants_and_is_deterministic(dataset, stand_in):
    model = stand_in()
    summary, result = run_probe(model, dataset, epochs=150, lr=0.05, seed=0)
    assert model.calls == 3  # frozen encoder: each scene embedded once
    assert summary["classes_present"] == 4
    assert summary["miou"] > 0.97 and summary["overall_accuracy"] > 0.98
    assert summary["iou"]["wall"] is not None and summary["iou"]["sofa"] is None
    assert summary["scenes"] == {"train": 2, "val": 1}
    assert summary["labelled_points"]["val"] == int((np.load(dataset / "scene_c" / "segment20.npy") >= 0).sum())
    again, _ = run_probe(stand_in(), dataset, epochs=150, lr=0.05, seed=0)
    assert again["miou"] == summary["miou"] and again["confusion"] == summary["confusion"]


def test_train_points_per_scene_caps_the_cached_training_set(dataset, stand_in):
    summary, _ = run_probe(stand_in(), dataset, epochs=50, lr=0.05, train_points_per_scene=100)
    assert summary["labelled_points"]["train"] == 200  # 100 labelled points from each of the 2 train scenes
    assert summary["miou"] > 0.9


def test_subsample_labelled_keeps_at_most_n_labelled_points_per_scene_in_order():
    xs = [np.arange(10, dtype=np.float32)[:, None], np.arange(4, dtype=np.float32)[:, None]]
    ys = [np.array([0, -1, 1, 2, -1, 3, 4, 5, 6, 7]), np.array([-1, 1, -1, 2])]
    fx, fy = subsample_labelled(xs, ys, 3, seed=0)
    assert [len(y) for y in fy] == [3, 2] and all((y != -1).all() for y in fy)
    assert all(np.array_equal(x[:, 0], np.sort(x[:, 0])) for x in fx)  # original order kept
    assert np.array_equal(ys[0][fx[0][:, 0].astype(int)], fy[0])  # features and labels stay paired
    again = subsample_labelled(xs, ys, 3, seed=0)[0][0]
    assert np.array_equal(again, fx[0])  # seeded
    all_x, all_y = subsample_labelled(xs, ys, None, seed=0)
    assert [len(y) for y in all_y] == [8, 2]


def test_probe_features_separates_labelled_features_and_keeps_the_notes():
    rng = np.random.default_rng(0)

    def scene(n):
        y = rng.choice([0, 1, 4], n)
        x = np.eye(20, dtype=np.float32)[y][:, :8] + rng.normal(0, 0.05, (n, 8)).astype(np.float32)
        y[::10] = -1
        return x, y

    (a, ya), (b, yb), (c, yc) = scene(200), scene(200), scene(150)
    summary = probe_features(SplitFeatures([a, b], [ya, yb], [c], [yc], notes={"unseen": 3}), epochs=50, lr=0.05,
                             probe_points=100)
    assert summary["miou"] > 0.95 and summary["feature_dim"] == 8 and summary["unseen"] == 3
    assert summary["labelled_points"]["train_fitted"] == 200 and summary["scenes"] == {"train": 2, "val": 1}
