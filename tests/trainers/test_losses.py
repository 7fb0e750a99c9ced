"""Loss values pinned by hand on tiny inputs, the OIM table's update, and gradient flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid_models import TrainOutput
from trainers.losses import CrossEntropyLabelSmooth, OIMLoss, ReIDLoss, TripletLoss


def _line(points: list[float]) -> torch.Tensor:
    """Points on the x axis of the plane: euclidean distances are |a - b|."""
    return torch.tensor([[p, 0.0] for p in points], dtype=torch.float64, requires_grad=True)


def test_label_smoothing_formula_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    pids = torch.tensor([0, 1])
    eps, c = 0.2, 3
    z = logits.numpy().astype(np.float64)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    targets = np.full((2, c), eps / c)
    targets[[0, 1], [0, 1]] += 1 - eps
    want = -(targets * log_p).sum(axis=1).mean()
    got = CrossEntropyLabelSmooth(num_classes=c, epsilon=eps)(logits, pids)
    assert got.item() == pytest.approx(want, rel=1e-6)
    plain = CrossEntropyLabelSmooth(num_classes=c, epsilon=0.0)(logits, pids)
    assert plain.item() == pytest.approx(-(log_p[0, 0] + log_p[1, 1]) / 2, rel=1e-6)
    with pytest.raises(ValueError, match=r"logits must be \(B, 4\)"):
        CrossEntropyLabelSmooth(num_classes=4)(logits, pids)


def test_triplet_euclidean_picks_hardest_positive_and_negative() -> None:
    x = _line([0, 1, 4, 2, 6])
    pids = torch.tensor([0, 0, 0, 1, 1])
    loss = TripletLoss(margin=0.5)(x, pids)
    # Per anchor (hardest pos, hardest neg): 0:(4,2) 1:(3,1) 4:(4,2) 2:(4,1) 6:(4,2).
    assert loss.item() == pytest.approx((4 * 2.5 + 3.5) / 5)
    loss.backward()
    # Anchor "2" (id 1) pulls towards 6 and away from 1: every point receives gradient.
    assert torch.all(x.grad[:, 0] != 0) and torch.all(x.grad[:, 1] == 0)


def test_triplet_cosine_by_hand() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]], requires_grad=True)
    pids = torch.tensor([0, 0, 1, 1])
    loss = TripletLoss(margin=0.3, distance="cosine")(x, pids)
    r = math.sqrt(0.5)
    assert loss.item() == pytest.approx((5 * r + 1.2) / 4, rel=1e-6)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_triplet_skips_anchors_without_a_positive() -> None:
    x = _line([0, 1, 1.5])
    # Anchor 1.5 (id 1) has no positive: only anchors 0 and 1 count, with (pos, neg) (1, 1.5)
    # and (1, 0.5).
    loss = TripletLoss(margin=0.3)(x, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx((0.0 + (1 - 0.5 + 0.3)) / 2)  # relu(1 - 1.5 + 0.3) = 0


def test_triplet_without_usable_anchor_is_zero_and_warns(caplog) -> None:
    x = _line([0, 1, 2])
    loss = TripletLoss()(x, torch.tensor([4, 4, 4]))
    assert loss.item() == 0.0 and "no anchor" in caplog.text
    loss.backward()
    assert torch.all(x.grad == 0)
    assert TripletLoss()(x, torch.tensor([0, 1, 2])).item() == 0.0


def test_triplet_has_finite_gradient_on_duplicate_features() -> None:
    x = torch.ones(4, 3, requires_grad=True)
    loss = TripletLoss()(x, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(0.3, abs=1e-5)
    loss.backward()
    assert torch.isfinite(x.grad).all()


def test_oim_starts_at_log_c_and_updates_lut_with_momentum() -> None:
    oim = OIMLoss(num_features=2, num_classes=3, scalar=10.0, momentum=0.5)
    assert "lut" in oim.state_dict() and not list(oim.parameters())
    loss = oim(torch.tensor([[3.0, 4.0]]), torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(3))  # zero table: uniform logits
    torch.testing.assert_close(oim.lut[1], torch.tensor([0.6, 0.8]))  # norm(0.5*0 + 0.5*x̂)
    assert torch.all(oim.lut[[0, 2]] == 0)
    oim(torch.tensor([[2.0, 0.0]]), torch.tensor([1]))
    row = torch.tensor([0.8, 0.4])  # 0.5 * (0.6, 0.8) + 0.5 * (1, 0)
    torch.testing.assert_close(oim.lut[1], row / row.norm())
    # Two samples of one id in a batch compound in batch order, like two batches.
    both = OIMLoss(num_features=2, num_classes=3)
    both(torch.tensor([[3.0, 4.0], [2.0, 0.0]]), torch.tensor([1, 1]))
    torch.testing.assert_close(both.lut, oim.lut)
    oim.eval()
    before = oim.lut.clone()
    oim(torch.tensor([[0.0, 1.0]]), torch.tensor([2]))
    torch.testing.assert_close(oim.lut, before)


def test_oim_value_and_gradient_by_hand() -> None:
    oim = OIMLoss(num_features=2, num_classes=3, scalar=10.0, momentum=0.5)
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    oim.lut.copy_(table)
    x = torch.tensor([[0.6, 0.8], [1.0, 0.0]], requires_grad=True)
    pids = torch.tensor([1, 2])
    loss = oim(x, pids)
    z = 10.0 * x.detach() @ table.T
    p = z.softmax(dim=1)
    onehot = F.one_hot(pids, 3).float()
    want = -(onehot * z.log_softmax(dim=1)).sum(dim=1).mean()
    assert loss.item() == pytest.approx(float(want), rel=1e-6)
    loss.backward()
    # d/dx̂ = s (p - y) LUT / B, through x̂ = x/|x| (unit here): projected off x.
    g_hat = 10.0 * (p - onehot) @ table / 2
    xd = x.detach()
    want_grad = g_hat - (g_hat * xd).sum(dim=1, keepdim=True) * xd
    torch.testing.assert_close(x.grad, want_grad)
    # The gradient used the table the logits saw; the table moved afterwards.
    assert not torch.equal(oim.lut, table)


def test_oim_rejects_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match=r"pids must lie in \[0, 3\)"):
        OIMLoss(num_features=2, num_classes=3)(torch.ones(1, 2), torch.tensor([3]))


def test_reid_loss_combines_by_weights_and_gradients_flow() -> None:
    torch.manual_seed(0)
    feats = torch.randn(6, 4, requires_grad=True)
    logits = (torch.randn(6, 5, requires_grad=True), torch.randn(6, 5, requires_grad=True))
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    crit = ReIDLoss(num_classes=5, feature_dim=4, weights={"ce": 1.0, "triplet": 0.5, "oim": 2.0})
    assert "oim.lut" in crit.state_dict()
    total, parts = crit(TrainOutput(feats, logits), pids)
    ce = CrossEntropyLabelSmooth(num_classes=5, epsilon=0.1)
    want_ce = (ce(logits[0], pids) + ce(logits[1], pids)) / 2
    want_tri = TripletLoss(margin=0.3)(feats, pids)
    assert parts["ce"] == pytest.approx(want_ce.item(), rel=1e-6)
    assert parts["triplet"] == pytest.approx(want_tri.item(), rel=1e-6)
    assert parts["oim"] == pytest.approx(math.log(5), rel=1e-6)
    assert parts["total"] == pytest.approx(parts["ce"] + 0.5 * parts["triplet"] + 2 * parts["oim"])
    total.backward()
    assert feats.grad.abs().sum() > 0 and all(lg.grad.abs().sum() > 0 for lg in logits)


def test_reid_loss_off_losses_and_errors() -> None:
    crit = ReIDLoss(num_classes=3, feature_dim=2, weights={"ce": 1.0, "triplet": 0.0})
    assert crit.triplet is None and crit.oim is None
    _, parts = crit(TrainOutput(torch.randn(2, 2), (torch.randn(2, 3),)), torch.tensor([0, 1]))
    assert parts["triplet"] == 0.0 and parts["oim"] == 0.0 and parts["total"] == parts["ce"]
    with pytest.raises(ValueError, match="unknown loss weights"):
        ReIDLoss(num_classes=3, feature_dim=2, weights={"center": 1.0})
    with pytest.raises(ValueError, match="positive weight"):
        ReIDLoss(num_classes=3, feature_dim=2, weights={"ce": 0.0})
    with pytest.raises(ValueError, match="no logits"):
        crit(TrainOutput(torch.randn(2, 2), ()), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="distance must be one of"):
        TripletLoss(distance="manhattan")  # type: ignore[arg-type]
