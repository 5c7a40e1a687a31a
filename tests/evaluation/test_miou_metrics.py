import numpy as np
import pytest
import torch

from concerto3d.evaluation.metrics import (confusion_matrix, format_iou_table, iou_from_confusion,
                                           mean_class_accuracy, miou, overall_accuracy)

# 4 classes, class 3 never in the ground truth; one point ignored (-1)
PRED = np.array([0, 0, 1, 1, 2, 2, 1, 0])
TARGET = np.array([0, 1, 1, 1, 2, -1, 0, 0])
# by hand, rows = truth, columns = prediction
CONF = np.array([[2, 1, 0, 0],
                 [1, 2, 0, 0],
                 [0, 0, 1, 0],
                 [0, 0, 0, 0]])


def test_confusion_matrix_matches_hand_count():
    conf = confusion_matrix(PRED, TARGET, 4)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, CONF)


def test_iou_miou_accuracy_by_hand():
    iou = iou_from_confusion(CONF)
    # class 0: TP 2, truth 3, predicted 3 -> 2 / 4; class 1 likewise; class 2: 1 / 1; class 3 absent
    np.testing.assert_allclose(iou[:3], [0.5, 0.5, 1.0])
    assert np.isnan(iou[3])
    assert miou(CONF) == pytest.approx(2 / 3)
    assert overall_accuracy(CONF) == pytest.approx(5 / 7)
    assert mean_class_accuracy(CONF) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_class_predicted_but_absent_from_truth_stays_out_of_the_mean():
    conf = confusion_matrix(np.array([3, 0]), np.array([0, 0]), 4)
    iou = iou_from_confusion(conf)
    assert iou[0] == pytest.approx(0.5) and np.isnan(iou[3])
    assert miou(conf) == pytest.approx(0.5)


def test_ignore_index_is_minus_one_not_minus_100():
    assert confusion_matrix(np.array([0, 1]), np.array([-1, 1]), 2).sum() == 1
    with pytest.raises(ValueError, match="target values"):
        confusion_matrix(np.array([0]), np.array([-100]), 2)


def test_split_miou_accumulates_one_confusion_not_a_mean_over_scenes():
    a = confusion_matrix(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]), 2)  # scene a: class 1 absent
    b = confusion_matrix(np.array([1]), np.array([1]), 2)
    whole = confusion_matrix(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 0, 0, 1]), 2)
    np.testing.assert_array_equal(a + b, whole)
    assert miou(whole) == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert miou(whole) != pytest.approx((miou(a) + miou(b)) / 2)


def test_torch_inputs_and_bad_inputs():
    conf = confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(TARGET), 4)
    np.testing.assert_array_equal(conf, CONF)
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix(PRED[:3], TARGET, 4)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(PRED.astype(float), TARGET, 4)
    with pytest.raises(ValueError, match="pred values"):
        confusion_matrix(np.array([4]), np.array([0]), 4)
    with pytest.raises(ValueError, match="square"):
        iou_from_confusion(np.zeros((2, 3)))


def test_empty_confusion_gives_nan():
    conf = np.zeros((3, 3), dtype=np.int64)
    assert np.isnan(miou(conf)) and np.isnan(overall_accuracy(conf))


def test_table_lists_every_class_and_the_summary():
    table = format_iou_table(CONF, ["a", "b", "c", "d"])
    lines = table.splitlines()
    assert any(line.startswith("a") and "50.00" in line for line in lines)
    assert any(line.startswith("d") and " - " in line for line in lines)
    assert "66.67" in table and "71.43" in table
