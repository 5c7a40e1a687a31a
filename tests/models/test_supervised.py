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
