import numpy as np
import pytest
import torch

from concerto3d.evaluation.linear_probe import (LinearProbe, evaluate_probe, predict_probe, train_linear_probe)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quadrant_problem(n: int, seed: int, offset: float = 100.0, scale: float = 50.0):
    """4 classes = quadrants of (x, y) with a gap around the axes, plus 6 noise channels; features offset and
    scaled so that the probe's standardisation matters."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.1, 1.0, size=(n, 2)) * rng.choice([-1, 1], size=(n, 2))
    labels = (xy[:, 0] < 0).astype(np.int64) * 2 + (xy[:, 1] < 0).astype(np.int64)
    feats = np.concatenate([xy, rng.normal(size=(n, 6)) * 0.1], axis=1) * scale + offset
    return feats.astype(np.float32), labels


def test_linearly_separable_toy_problem_reaches_100_percent():
    x, y = quadrant_problem(400, seed=0)
    y_train = y.copy()
    y_train[::7] = -1  # unlabelled points are skipped, not treated as a class
    probe = train_linear_probe(x, y_train, num_classes=4, epochs=80, lr=0.2, seed=0)
    assert isinstance(probe, LinearProbe) and not probe.training
    xv, yv = quadrant_problem(300, seed=1)
    result = evaluate_probe(probe, xv, yv, num_classes=4)
    assert result.overall_accuracy == 1.0
    assert result.miou == 1.0
    np.testing.assert_array_equal(np.diag(result.confusion), np.bincount(yv, minlength=4))


def test_minibatch_training_is_deterministic_given_the_seed():
    x, y = quadrant_problem(300, seed=2)
    runs = [train_linear_probe(x, y, 4, epochs=10, lr=0.05, seed=s, batch_size=64) for s in (7, 7, 8)]
    w = [r.linear.weight.detach() for r in runs]
    assert torch.equal(w[0], w[1])
    assert not torch.equal(w[0], w[2])
    result = evaluate_probe(runs[0], x, y, 4)
    assert result.overall_accuracy > 0.95


def test_evaluate_accumulates_over_scenes_and_to_dict():
    x, y = quadrant_problem(200, seed=3)
    probe = train_linear_probe(x, y, 4, epochs=100, lr=0.05)
    whole = evaluate_probe(probe, x, y, 4)
    split = evaluate_probe(probe, [x[:50], x[50:]], [y[:50], y[50:]], 4)
    np.testing.assert_array_equal(whole.confusion, split.confusion)
    d = split.to_dict(["a", "b", "c", "d"])
    assert set(d["iou"]) == {"a", "b", "c", "d"} and d["classes_present"] == 4
    assert sum(d["class_points"].values()) == 200


def test_predict_in_chunks_matches_one_pass():
    x, y = quadrant_problem(100, seed=4)
    probe = train_linear_probe(torch.from_numpy(x), torch.from_numpy(y), 4, epochs=20, optimizer="sgd", lr=0.1)
    np.testing.assert_array_equal(predict_probe(probe, x, batch_size=7), predict_probe(probe, x))


def test_bad_inputs_are_rejected():
    x, y = quadrant_problem(20, seed=5)
    with pytest.raises(ValueError, match="no labelled"):
        train_linear_probe(x, np.full(20, -1), 4)
    with pytest.raises(ValueError, match="labels must lie"):
        train_linear_probe(x, np.full(20, -100), 4)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        train_linear_probe(x, y[:10], 4)
    with pytest.raises(ValueError, match="optimizer"):
        train_linear_probe(x, y, 4, optimizer="lbfgs")
    with pytest.raises(ValueError, match="integer labels"):
        train_linear_probe(x, y.astype(np.float32), 4)
