"""InfoNCE and SigLIP losses against hand-computed values on 2x2 and 3x3 cases."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from retrieval.errors import UsageError  # noqa: E402
from training.losses import InfoNCELoss, SigLIPLoss, build_loss, same_group  # noqa: E402


def _softplus(x: float) -> float:
    """-log sigmoid(-x) = log(1 + e^x)."""
    return math.log1p(math.exp(x))


def test_infonce_2x2_distinct_groups():
    eye = torch.eye(2)
    loss = InfoNCELoss(init_temperature=1.0)  # scale 1: logits = a @ b.T = I
    # each row: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1), in both directions
    value = loss(eye, eye, torch.tensor([0, 1]))
    assert value.item() == pytest.approx(_softplus(-1.0), abs=1e-6)


def test_infonce_same_group_is_never_a_negative():
    eye = torch.eye(2)
    loss = InfoNCELoss(init_temperature=1.0)
    # one group: the off-diagonal entries are masked out, each row is certain
    assert loss(eye, eye, torch.tensor([7, 7])).item() == pytest.approx(0.0, abs=1e-6)


def test_infonce_3x3_with_a_hard_negative_column():
    eye = torch.eye(3)
    extra = torch.tensor([[1.0, 0.0, 0.0]])  # as close to row 0 as its positive
    loss = InfoNCELoss(init_temperature=1.0)
    value = loss(eye, eye, torch.tensor([0, 1, 2]), extra=extra)
    e = math.e
    # a -> b: row 0 sees [1, 0, 0, 1]; rows 1 and 2 see one 1 and three 0s
    forward = (math.log(2 * e + 2) - 1 + 2 * (math.log(e + 3) - 1)) / 3
    backward = math.log(e + 2) - 1  # b -> a: the batch only
    assert value.item() == pytest.approx((forward + backward) / 2, abs=1e-6)
    # the same extra column labelled with row 0's group is masked for row 0
    masked = loss(eye, eye, torch.tensor([0, 1, 2]), extra, torch.tensor([0]))
    forward = (math.log(e + 2) - 1 + 2 * (math.log(e + 3) - 1)) / 3
    assert masked.item() == pytest.approx((forward + backward) / 2, abs=1e-6)


def test_infonce_temperature_is_learnable_and_clamped():
    loss = InfoNCELoss()
    assert loss.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        loss.logit_scale.fill_(math.log(1000.0))
    assert loss.scale().item() == pytest.approx(100.0)
    loss.logit_scale.data.fill_(0.0)
    loss(torch.eye(2), torch.eye(2), torch.tensor([0, 1])).backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.item() != 0


def test_siglip_defaults_and_2x2():
    loss = SigLIPLoss()
    assert loss.scale().item() == pytest.approx(10.0)
    assert loss.logit_bias.item() == pytest.approx(-10.0)
    eye = torch.eye(2)
    # logits: diagonal 10 - 10 = 0, off-diagonal -10; labels +1 / -1
    # loss = -(2 log sig(0) + 2 log sig(10)) / 2
    value = loss(eye, eye, torch.tensor([0, 1]))
    assert value.item() == pytest.approx(math.log(2) + _softplus(-10.0), abs=1e-6)


def test_siglip_same_group_labels_positive():
    eye = torch.eye(2)
    loss = SigLIPLoss(init_scale=1.0, init_bias=-1.0)  # diagonal 0, off-diagonal -1
    apart = loss(eye, eye, torch.tensor([0, 1])).item()
    together = loss(eye, eye, torch.tensor([3, 3])).item()
    assert apart == pytest.approx(math.log(2) + _softplus(-1.0), abs=1e-6)
    assert together == pytest.approx(math.log(2) + _softplus(1.0), abs=1e-6)


def test_siglip_3x3_extra_column_is_a_negative():
    eye = torch.eye(3)
    loss = SigLIPLoss(init_scale=1.0, init_bias=0.0)
    extra = torch.tensor([[1.0, 0.0, 0.0]])
    value = loss(eye, eye, torch.tensor([0, 1, 2]), extra=extra).item()
    # 3 diagonal logits 1 (label +1), 6 off-diagonal 0 and the extra column
    # (row 0: 1, rows 1-2: 0), all labelled -1; divided by 3 rows
    total = 3 * _softplus(-1.0) + 6 * math.log(2) + _softplus(1.0) + 2 * math.log(2)
    assert value == pytest.approx(total / 3, abs=1e-6)


def test_same_group_mask_and_unknown_loss():
    mask = same_group(torch.tensor([1, 2, 1]), torch.tensor([1, 2]))
    assert mask.tolist() == [[True, False], [False, True], [True, False]]
    assert isinstance(build_loss("siglip"), SigLIPLoss)
    with pytest.raises(UsageError, match="known: infonce, siglip"):
        build_loss("triplet")
