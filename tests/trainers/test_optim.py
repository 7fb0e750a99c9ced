"""Optimizers and LR schedules: the per-epoch LR of every paper's schedule, checked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reid_models import create_model
from trainers.optim import build_optimizer, build_scheduler, param_groups


def lrs(name: str, *, epochs: int, lr: float = 1.0, **options) -> list[float]:
    """LR of every epoch (0-based), stepping the scheduler at each epoch's end."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(optimizer, name=name, epochs=epochs, **options)
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_ap3d_multistep_240_epochs():
    # AP3D (Gu et al. ECCV 2020, §5.2): 3e-4, x0.1 every 60 of 240 epochs; stepped at the end of
    # each epoch, that is 60 epochs at each rate (the official code's start-of-epoch step shifts
    # every decay one epoch early on PyTorch >= 1.1).
    v = lrs("multistep", epochs=240, lr=3e-4, milestones=(60, 120, 180), gamma=0.1)
    for epoch, want in [(0, 3e-4), (59, 3e-4), (60, 3e-5), (119, 3e-5), (120, 3e-6),
                        (179, 3e-6), (180, 3e-7), (239, 3e-7)]:  # fmt: skip
        assert v[epoch] == pytest.approx(want, rel=1e-9), epoch
    assert lrs("step", epochs=240, lr=3e-4, step_size=60) == pytest.approx(v, rel=1e-9)


def test_gltr_step_120_over_400_epochs():
    v = lrs("step", epochs=400, lr=0.01, step_size=120)
    assert v[119] == pytest.approx(0.01)
    assert v[120] == pytest.approx(1e-3)
    assert v[240] == pytest.approx(1e-4)
    assert v[399] == pytest.approx(1e-5)


def test_i3d_nonlocal_exponential_tail():
    # Liao et al. (ACCV 2018, §4.2), "exponential decay with decay rate 0.001 at 150 epochs" of
    # 300: lr(e) = 3e-4 for e < 150, 3e-4 * 0.001 ** ((e - 150) / 150) after (1-based e), i.e.
    # Hermans et al.'s adjust_lr_exp ending at 3e-7.
    v = lrs("exponential", epochs=300, lr=3e-4, decay_start=150, gamma=0.001)
    for e in (1, 100, 149, 150, 151, 200, 299, 300):
        want = 3e-4 if e < 150 else 3e-4 * 0.001 ** ((e - 150) / 150)
        assert v[e - 1] == pytest.approx(want, rel=1e-9), e
    assert v[-1] == pytest.approx(3e-7, rel=1e-9)


def test_warmup_multistep_milestones_stay_absolute():
    v = lrs("warmup_multistep", epochs=8, milestones=(4, 6), warmup_epochs=3, warmup_factor=0.1)
    assert v == pytest.approx([0.1, 0.4, 0.7, 1.0, 0.1, 0.1, 0.01, 0.01])


def test_cosine_and_constant():
    v = lrs("cosine", epochs=4)
    assert v == pytest.approx([1.0, (1 + 2**-0.5) / 2, 0.5, (1 - 2**-0.5) / 2])
    warm = lrs("cosine", epochs=4, warmup_epochs=2, warmup_factor=0.5)
    assert warm == pytest.approx([0.5, 0.75 * (1 + 2**-0.5) / 2, 0.5, (1 - 2**-0.5) / 2])
    assert lrs("constant", epochs=3, lr=0.5) == [0.5, 0.5, 0.5]


def test_scheduler_state_round_trips():
    def build():
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        return optimizer, build_scheduler(
            optimizer, name="exponential", epochs=10, decay_start=3, gamma=0.01, warmup_epochs=2
        )

    opt_a, sched_a = build()
    for _ in range(5):
        opt_a.step()
        sched_a.step()
    opt_b, sched_b = build()
    opt_b.load_state_dict(opt_a.state_dict())
    sched_b.load_state_dict(sched_a.state_dict())
    for _ in range(4):
        for opt, sched in ((opt_a, sched_a), (opt_b, sched_b)):
            opt.step()
            sched.step()
        assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("step", {}, "step_size >= 1"),
        ("multistep", {"milestones": (5, 2)}, r"increasing positive milestones, got \[5, 2\]"),
        ("warmup_multistep", {"milestones": (2,)}, "warmup_epochs=0"),
        ("exponential", {"decay_start": 10}, "decay_start=10"),
        ("linear", {}, "unknown schedule 'linear'; choose one of"),
    ],
)
def test_bad_schedules_name_the_value(name, options, match):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=match):
        build_scheduler(optimizer, name=name, epochs=10, **options)


def test_backbone_lr_multiplier_splits_a_real_model():
    # M3D's official train.py (ljn114514/M3D): new layers at 10x the backbone's LR.
    model = create_model("c2d_r18", num_classes=3)
    optimizer = build_optimizer(
        model, name="sgd", lr=0.1, weight_decay=5e-4, momentum=0.9, backbone_lr_mult=0.1
    )
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["backbone"]["lr"] == pytest.approx(0.01)
    assert groups["head"]["lr"] == pytest.approx(0.1)
    assert groups["head"]["momentum"] == 0.9
    named = dict(model.named_parameters())
    backbone_ids = {id(p) for p in groups["backbone"]["params"]}
    assert backbone_ids == {id(p) for n, p in named.items() if n.startswith("backbone.")}
    assert len(backbone_ids) + len(groups["head"]["params"]) == len(named)


def test_zero_backbone_multiplier_freezes_the_backbone():
    model = create_model("c2d_r18", num_classes=3)
    optimizer = build_optimizer(
        model, name="adam", lr=3e-3, weight_decay=0.0, eps=1e-4, backbone_lr_mult=0.0
    )
    assert [g["name"] for g in optimizer.param_groups] == ["head"]
    assert optimizer.param_groups[0]["eps"] == 1e-4
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_plain_module_is_all_head_and_bad_options_raise():
    model = nn.Linear(2, 2)
    assert [g["name"] for g in param_groups(model, lr=0.1)] == ["head"]
    with pytest.raises(ValueError, match=r"backbone_lr_mult=0\.5 but no parameter"):
        param_groups(model, lr=0.1, backbone_lr_mult=0.5)
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'; choose one of"):
        build_optimizer(model, name="adamw", lr=0.1, weight_decay=0)
    with pytest.raises(ValueError, match="lr must be > 0, got 0"):
        build_optimizer(model, name="sgd", lr=0, weight_decay=0)
