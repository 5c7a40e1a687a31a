"""The supervised ceiling: the point encoder of the other objectives, trained with the labels."""

import numpy as np
import torch
import torch.nn.functional as F

from concerto3d.config import load_config
from concerto3d.models.build import build_model
from concerto3d.models.concerto import ConcertoModel
from concerto3d.models.supervised import SupervisedModel, segmentation_loss

from test_concerto import TINY, tiny_batch


def test_segmentation_loss_is_the_cross_entropy_of_the_labelled_points():
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, -1, 3, 2, -1, 1])
    keep = labels >= 0
    torch.testing.assert_close(segmentation_loss(logits, labels), F.cross_entropy(logits[keep], labels[keep]))
    none = segmentation_loss(logits.requires_grad_(), torch.full((6,), -1))
    assert none.item() == 0.0 and none.requires_grad  # keeps the graph: a batch without labels is a zero step


def test_build_model_picks_the_objective():
    assert isinstance(build_model(load_config(None, TINY + ["objective.kind=supervised"])), SupervisedModel)
    assert isinstance(build_model(load_config(None, TINY + ["objective.kind=3d"])), ConcertoModel)


def test_the_supervised_objective_learns_a_toy_labelling_to_100_percent():
    """Labels that the student view's colour channel tells apart (two classes, some points unlabelled) are learned
    exactly: the objective trains the encoder and the classifier on the right points and targets."""
    torch.manual_seed(0)
    model = SupervisedModel(load_config(None, TINY + ["objective.kind=supervised"]))
    batch = tiny_batch()
    rng = np.random.default_rng(1)
    labels = torch.tensor(rng.choice([-1, 4, 7], size=240, p=[0.2, 0.4, 0.4]))
    batch.labels = labels
    view = batch.view_student
    crop_label = labels[view.index]
    view.feat[:, 3] = torch.where(crop_label == 4, 1.0, -1.0)  # the colour's red channel says the class
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        out = model(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        first = first if first is not None else float(out["loss"].detach())
    out = model(batch)
    assert float(out["accuracy"]) == 1.0 and float(out["loss"]) < 0.1 * first
    assert int(out["matched"]) == int((crop_label >= 0).sum())  # the unlabelled points were not scored
    assert model.ema_pairs() == [] and model.image_encoder is None


def test_patch_majority_labels_vote_per_square_and_skip_unlabelled_squares():
    from concerto3d.ops import patch_majority_labels

    pixels = torch.tensor([[[0, 0, 1, 1], [0, 2, 1, -1], [-1, -1, 3, 3], [-1, -1, 2, 3]]])
    assert patch_majority_labels(pixels, 2, 4).tolist() == [[[0, 1], [-1, 3]]]
    tie = torch.tensor([[[1, 2], [2, 1]]])
    assert patch_majority_labels(tie, 2, 4).tolist() == [[[1]]]  # ties go to the lower class


def test_the_2d_supervised_objective_learns_a_toy_frame_labelling_to_100_percent():
    """Frames whose patches are dark or bright, labelled by brightness per pixel (some pixels unlabelled): the
    image encoder and its patch classifier learn it exactly, scoring only the labelled patches."""
    from concerto3d.models.supervised import SupervisedImageModel

    torch.manual_seed(0)
    cfg = load_config(None, TINY + ["objective.kind=2d-supervised"])
    model = build_model(cfg)
    assert isinstance(model, SupervisedImageModel) and model.point_encoder is None
    batch = tiny_batch()
    rng = np.random.default_rng(3)
    bright = torch.tensor(rng.random((2, 2, 3)) < 0.5)  # (F, Hp, Wp) for 32x48 images of 16-pixel patches
    pixels = bright.repeat_interleave(16, 1).repeat_interleave(16, 2)
    batch.images = torch.where(pixels[:, None], 1.0, -1.0).expand(-1, 3, -1, -1) + 0.1 * torch.randn(2, 3, 32, 48)
    labels = torch.where(pixels, 6, 2)
    labels[:, :16, :16] = -1  # the first patch of each frame has no labelled pixel
    batch.image_labels = labels
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        out = model(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    out = model(batch)
    assert float(out["accuracy"]) == 1.0 and int(out["matched"]) == 2 * 6 - 2
