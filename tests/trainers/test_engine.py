"""The training engine: exact resume, best-by-mAP checkpoints, CSV/TensorBoard records, AMP,
gradient clipping, non-finite losses, per-epoch LR, two-process DDP, and the evaluation glue.

Models are tiny (a `TinyReID` of a few hundred parameters, or ``c2d_r18`` on 2x3x2x32x16
clips); data are in-test tensor datasets whose items draw from Python's, NumPy's and torch's
global generators, so an exact resume must restore all three.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.demo.broker import free_port
from reid_models import TrainOutput, create_model
from trainers.checkpoint import load_checkpoint
from trainers.engine import NonFiniteLossError, Trainer
from trainers.logs import MetricsCSV
from trainers.optim import build_optimizer, build_scheduler
from trainers.seeding import seed_everything

ROOT = Path(__file__).resolve().parents[2]
NUM_IDS = 3


class TinyReID(nn.Module):
    """(B, 3, T, H, W) -> TrainOutput: 1x1x1 conv, mean pool, dropout, embedding, classifier."""

    detached_parameters = ("unused.weight", "unused.bias")

    def __init__(self, num_classes: int = NUM_IDS) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 6, 1)
        self.drop = nn.Dropout(0.3)
        self.embed = nn.Linear(6, 8)
        self.classifier = nn.Linear(8, num_classes)
        self.unused = nn.Linear(2, 2)  # declared detached: no loss reaches it

    def forward(self, x: torch.Tensor) -> TrainOutput | torch.Tensor:
        f = self.embed(self.drop(self.conv(x).relu().mean(dim=(2, 3, 4))))
        return TrainOutput(f, (self.classifier(f),)) if self.training else f


class CE(nn.Module):
    """Stand-in for ReIDLoss: cross-entropy over every logits tensor, same return contract."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, output: TrainOutput, pids: torch.Tensor):
        ce = sum(nn.functional.cross_entropy(z, pids) for z in output.logits) * self.scale
        return ce, {"ce": float(ce.detach()), "total": float(ce.detach())}


class NaNAt(CE):
    """CE whose loss is NaN on the given 0-based calls."""

    def __init__(self, calls: set[int] | None) -> None:
        super().__init__()
        self.calls, self.count = calls, 0

    def forward(self, output: TrainOutput, pids: torch.Tensor):
        total, parts = super().forward(output, pids)
        bad = self.calls is None or self.count in self.calls
        self.count += 1
        if bad:
            total = total * math.nan
            parts = {k: math.nan for k in parts}
        return total, parts


class NoisyClips(torch.utils.data.Dataset):
    """Fixed clips plus noise drawn from torch, NumPy and `random` (all must resume exactly)."""

    def __init__(self, n: int = 12, shape: tuple[int, ...] = (3, 2, 4, 2)) -> None:
        gen = torch.Generator().manual_seed(0)
        self.clips = torch.randn(n, *shape, generator=gen)
        self.pids = torch.arange(n) % NUM_IDS

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        noise = torch.randn_like(self.clips[i]) * 0.1 + float(np.random.normal()) * 0.1
        return self.clips[i] * (1 + 0.1 * random.random()) + noise, self.pids[i], 0


class EpochSampler(torch.utils.data.Sampler[int]):
    """A permutation seeded by the epoch, recording the `set_epoch` calls."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch, self.calls = n, 0, []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.calls.append(epoch)

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.epoch)))

    def __len__(self) -> int:
        return self.n


def make_trainer(out_dir: Path, *, epochs: int, model: nn.Module | None = None, **options):
    """A trainer on TinyReID + NoisyClips with Adam and a multistep schedule over 4 epochs."""
    seed_everything(0)
    model = model or TinyReID()
    optimizer = build_optimizer(model, name="adam", lr=1e-2, weight_decay=5e-4)
    scheduler = build_scheduler(
        optimizer, name=options.pop("schedule", "multistep"), epochs=4, milestones=(2, 3)
    )
    dataset = options.pop("dataset", NoisyClips())
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, shuffle=options.pop("shuffle", True), drop_last=True
    )
    kwargs = {
        "criterion": CE(),
        "evaluate": None,
        "eval_every": 1,
        "device": "cpu",
        "amp_dtype": None,
        "grad_clip": 5.0,
        "config": {"run": "test", "out": out_dir},
        "progress": False,
        "log_every": 1,
    }
    kwargs.update(options)
    return Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=loader,
        out_dir=out_dir,
        epochs=epochs,
        **kwargs,
    )


def scripted_evaluate(maps: dict[int, float]):
    """An evaluate callable returning the mAP scripted for each call (in percent via as_dict).

    It also consumes random numbers, which must not change the training trajectory.
    """
    calls = []

    def evaluate(model: nn.Module) -> dict[str, float]:
        assert not model.training
        calls.append(len(calls) + 1)
        torch.rand(7), np.random.rand(3), random.random()
        m = maps[len(calls)]
        return {"rank1": m + 10, "rank5": m + 20, "mAP": m, "mINP": m / 2}

    evaluate.calls = calls
    return evaluate


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_resume_equals_uninterrupted_run_bit_for_bit(tmp_path):
    evaluate = scripted_evaluate({i: 10.0 * i for i in range(1, 10)})
    straight = make_trainer(tmp_path / "a", epochs=4, evaluate=evaluate, eval_every=3)
    straight.fit()

    first = make_trainer(
        tmp_path / "b", epochs=2, evaluate=scripted_evaluate({1: 5.0}), eval_every=0
    )
    first.fit()  # evaluates at its end (epoch 2), which the straight run did not do
    (tmp_path / "b" / "metrics.csv").open("a").write("3,99,0.1,1,1,,,,,,,,,\n")  # killed run
    resumed = make_trainer(
        tmp_path / "b",
        epochs=4,
        evaluate=scripted_evaluate({1: 30.0, 2: 40.0}),
        eval_every=3,
        resume=tmp_path / "b" / "last.pt",
    )
    result = resumed.fit()

    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    assert resumed.scheduler.state_dict()["last_epoch"] == 4
    assert result["epoch"] == 4
    assert result["global_step"] == straight.global_step == 12
    rows = read_csv(tmp_path / "b" / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["step"] for r in rows] == ["3", "6", "9", "12"]
    straight_rows = read_csv(tmp_path / "a" / "metrics.csv")
    assert [r["loss_ce"] for r in rows[2:]] == [r["loss_ce"] for r in straight_rows[2:]]


def test_best_checkpoint_follows_map_and_evaluation_cadence(tmp_path):
    evaluate = scripted_evaluate({1: 20.0, 2: 50.0, 3: 40.0})
    trainer = make_trainer(tmp_path, epochs=5, evaluate=evaluate, eval_every=2)
    result = trainer.fit()

    assert len(evaluate.calls) == 3  # after epochs 2, 4 and the last one, 5
    rows = read_csv(tmp_path / "metrics.csv")
    assert [r["mAP"] for r in rows] == ["", "20", "", "50", "40"]
    best = load_checkpoint(tmp_path / "best.pt", expected_format="reidstream.weights/1")
    assert best["epoch"] == 4
    assert best["metrics"]["mAP"] == 50.0
    last = load_checkpoint(tmp_path / "last.pt")
    assert (last["epoch"], last["best_epoch"], last["best_metric"]) == (5, 4, 50.0)
    assert result["best_mAP"] == 50.0
    assert result["best_epoch"] == 4
    assert result["mAP"] == 40.0  # the last evaluation
    assert not torch.equal(best["state_dict"]["embed.weight"], last["state_dict"]["embed.weight"])
    from reid_models.weights import load_state_dict_file

    weights = load_state_dict_file(tmp_path / "best.pt")
    TinyReID().load_state_dict(weights)
    assert (tmp_path / "config.yaml").read_text().startswith("run: test\nout: ")
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_no_evaluate_writes_no_best(tmp_path):
    result = make_trainer(tmp_path, epochs=1).fit()
    assert not (tmp_path / "best.pt").exists()
    assert math.isnan(result["best_mAP"])
    assert set(result) >= {"epoch", "global_step", "loss_ce", "loss_total"}


def test_csv_columns_and_lr_per_epoch(tmp_path):
    make_trainer(
        tmp_path, epochs=4, evaluate=scripted_evaluate(dict.fromkeys(range(1, 5), 1.0))
    ).fit()
    rows = read_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == [
        "epoch", "step", "lr", "loss_ce", "loss_total", "grad_norm", "nonfinite_steps",
        "epoch_time_s", "rank1", "rank5", "rank10", "rank20", "mAP", "mINP",
    ]  # fmt: skip
    # multistep at (2, 3): epochs 1-2 at 1e-2, epoch 3 at 1e-3, epoch 4 at 1e-4
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-4])
    assert rows[0]["rank10"] == "" and rows[0]["rank1"] == "11"


def test_metrics_csv_widens_header_for_late_loss_parts(tmp_path):
    path = tmp_path / "m.csv"
    log = MetricsCSV(path)
    log.append({"epoch": 1, "step": 0, "lr": 0.1, "nonfinite_steps": 3}, loss_parts=[])
    log.append({"epoch": 2, "step": 4, "lr": 0.1, "loss_ce": 1.5}, loss_parts=["ce"])
    rows = MetricsCSV(path, resume_epoch=2).rows()
    assert list(rows[0])[:4] == ["epoch", "step", "lr", "loss_ce"]
    assert [(r["epoch"], r["loss_ce"], r["nonfinite_steps"]) for r in rows] == [
        ("1", "", "3"),
        ("2", "1.5", ""),
    ]
    assert MetricsCSV(path, resume_epoch=1).rows()[-1]["epoch"] == "1"
    MetricsCSV(path)  # a new run replaces the file
    assert not path.exists()


def test_sampler_set_epoch_is_called_every_epoch_including_after_resume(tmp_path):
    dataset = NoisyClips()
    sampler = EpochSampler(len(dataset))
    model = TinyReID()
    optimizer = build_optimizer(model, name="sgd", lr=0.1, weight_decay=0)
    scheduler = build_scheduler(optimizer, name="constant", epochs=3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler)
    common = {
        "model": model, "criterion": CE(), "optimizer": optimizer, "scheduler": scheduler,
        "train_loader": loader, "out_dir": tmp_path, "evaluate": None, "eval_every": 0,
        "device": "cpu", "amp_dtype": None, "grad_clip": None, "config": {}, "progress": False,
    }  # fmt: skip
    Trainer(epochs=2, **common).fit()
    Trainer(epochs=3, resume=tmp_path / "last.pt", **common).fit()
    assert sampler.calls == [0, 1, 2]
    assert load_checkpoint(tmp_path / "last.pt")["sampler_epoch"] == 3


def test_amp_bfloat16_on_cpu_trains_a_real_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("c2d_r18", num_classes=NUM_IDS)
    seen = []
    model.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = model.head.classifier.weight.detach().clone()
    dataset = NoisyClips(n=4, shape=(3, 2, 32, 16))
    trainer = make_trainer(
        tmp_path, epochs=1, model=model, dataset=dataset, amp_dtype=torch.bfloat16
    )
    result = trainer.fit()

    assert seen == [torch.bfloat16]
    assert not trainer.scaler.is_enabled()  # GradScaler is for float16 on CUDA only
    assert math.isfinite(result["loss_total"])
    assert result["global_step"] == 1
    assert model.head.classifier.weight.dtype == torch.float32
    assert not torch.equal(model.head.classifier.weight.detach(), before)


def test_grad_clip_bounds_the_update(tmp_path):
    torch.manual_seed(0)
    model = TinyReID()
    model.drop.p = 0.0
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loader = torch.utils.data.DataLoader(NoisyClips(n=4), batch_size=4)
    trainer = Trainer(
        model=model, criterion=CE(scale=1e4), optimizer=optimizer,
        scheduler=build_scheduler(optimizer, name="constant", epochs=1), train_loader=loader,
        out_dir=tmp_path, epochs=1, evaluate=None, eval_every=0, device="cpu", amp_dtype=None,
        grad_clip=0.25, config={}, progress=False,
    )  # fmt: skip
    result = trainer.fit()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = float((after - before).norm())  # plain SGD, lr 1: the step is the clipped gradient
    assert step == pytest.approx(0.25, rel=1e-4)
    assert float(read_csv(tmp_path / "metrics.csv")[0]["grad_norm"]) > 100  # pre-clip norm
    assert result["global_step"] == 1


def test_nonfinite_loss_is_counted_logged_and_skipped(tmp_path, caplog):
    trainer = make_trainer(tmp_path, epochs=2, criterion=NaNAt({1, 4}), shuffle=False)
    with caplog.at_level(logging.WARNING, logger="trainers.engine"):
        result = trainer.fit()
    assert result["nonfinite_steps"] == 2
    assert result["global_step"] == 6 - 2
    assert [r["nonfinite_steps"] for r in read_csv(tmp_path / "metrics.csv")] == ["1", "1"]
    assert sum("step skipped" in r.message for r in caplog.records) == 2
    assert math.isfinite(result["loss_total"])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_consecutive_nonfinite_losses_stop_with_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3, criterion=NaNAt(None), max_nonfinite_steps=4)
    with pytest.raises(NonFiniteLossError, match="4 consecutive training steps"):
        trainer.fit()
    assert trainer.global_step == 0


def test_invalid_options_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="amp_dtype"):
        make_trainer(tmp_path, epochs=1, amp_dtype=torch.float64)
    with pytest.raises(ValueError, match="grad_clip must be > 0 or None, got -1"):
        make_trainer(tmp_path, epochs=1, grad_clip=-1.0)
    with pytest.raises(ValueError, match="eval_every"):
        make_trainer(tmp_path, epochs=1, eval_every=-2)


DDP_SCRIPT = """
import math, os, sys
from pathlib import Path
import torch, torch.multiprocessing as mp
from torch import nn
sys.path.insert(0, {root!r})
from reid_models import TrainOutput
from trainers.distributed import process_group
from trainers.engine import Trainer
from trainers.optim import build_optimizer, build_scheduler
from trainers.seeding import seed_everything

class Tiny(nn.Module):
    detached_parameters = ("unused.weight", "unused.bias")
    def __init__(self):
        super().__init__()
        self.conv, self.drop = nn.Conv3d(3, 4, 1), nn.Dropout(0.3)
        self.classifier, self.unused = nn.Linear(4, 3), nn.Linear(2, 2)
    def forward(self, x):
        f = self.drop(self.conv(x).relu().mean(dim=(2, 3, 4)))
        return TrainOutput(f, (self.classifier(f),)) if self.training else f

class CE(nn.Module):
    def __init__(self, rank):
        super().__init__()
        self.rank, self.calls = rank, 0
    def forward(self, out, pids):
        loss = nn.functional.cross_entropy(out.logits[0], pids)
        self.calls += 1
        if self.rank == 1 and self.calls == 2:  # only rank 1 sees a NaN: both must skip
            loss = loss * math.nan
        return loss, {{"ce": float(loss), "total": float(loss)}}

def run(rank, out, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    with process_group("gloo", device="cpu") as info:  # as `reidstream train` joins and leaves
        train(rank, out, info)

def train(rank, out, info):
    seed_everything(rank)  # different initial weights: DDP must broadcast rank 0's
    model = Tiny()
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 2, 4, 2) + rank, torch.arange(8) % 3)
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True)
    opt = build_optimizer(model, name="sgd", lr=0.1, weight_decay=5e-4)
    trainer = Trainer(model=model, criterion=CE(rank), optimizer=opt,
        scheduler=build_scheduler(opt, name="step", epochs=2, step_size=1), train_loader=loader,
        out_dir=Path(out) / "run", epochs=2, evaluate=lambda m: {{"mAP": 12.5}}, eval_every=1,
        device="cpu", amp_dtype=None, grad_clip=1.0, config={{"rank": rank}}, progress=False,
        dist_info=info)
    result = trainer.fit()
    torch.save({{"params": [p.detach() for p in model.parameters()], "result": result}},
               Path(out) / f"rank{{rank}}.pt")

if __name__ == "__main__":
    mp.spawn(run, args=(sys.argv[1], int(sys.argv[2])), nprocs=2)
"""


@pytest.mark.slow
def test_two_process_gloo_ddp_keeps_ranks_identical(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(root=str(ROOT))))
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(free_port())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for a, b in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        assert torch.equal(a, b)
    assert ranks[0]["result"] == ranks[1]["result"]
    assert ranks[0]["result"]["nonfinite_steps"] == 1  # rank 1's NaN skipped on both
    assert ranks[0]["result"]["global_step"] == 3
    assert ranks[1]["result"]["best_mAP"] == 12.5  # rank 0's evaluation, broadcast
    rows = read_csv(tmp_path / "run" / "metrics.csv")  # written once, by rank 0
    assert [r["epoch"] for r in rows] == ["1", "2"]
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert len(last["ranks"]) == 2
    assert last["config"] == {"rank": 0}


def write_tracklets(root: Path, specs: list[tuple[int, int]]):
    """One 3-frame JPEG tracklet per (pid, camid); identities differ by colour."""
    import cv2

    from trainers.datasets.base import Tracklet

    rng = np.random.default_rng(0)
    tracklets = []
    for k, (pid, camid) in enumerate(specs):
        colour = np.array([60 * pid % 256, 255 - 70 * pid % 256, 40 + 50 * pid % 200])
        paths = []
        for f in range(3):
            image = np.clip(colour + rng.normal(0, 20, (32, 16, 3)), 0, 255).astype(np.uint8)
            path = root / f"{pid:04d}C{camid}T{k:04d}F{f:03d}.jpg"
            cv2.imwrite(str(path), image)
            paths.append(str(path))
        tracklets.append(Tracklet(tuple(paths), pid, camid))
    return tuple(tracklets)


def test_evaluate_model_matches_the_pipeline_by_hand(tmp_path):
    from trainers.data import extract_features
    from trainers.datasets.base import VideoDataset
    from trainers.evaluation import evaluate_rank, pairwise_distance
    from trainers.evaluator import evaluate_model

    gallery = write_tracklets(tmp_path, [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (9, 1)])
    query = tuple(t for t in gallery if t.camid == 0)  # MARS-style: queries inside the gallery
    dataset = VideoDataset("toy", train=(), query=query, gallery=gallery)
    torch.manual_seed(0)
    model = create_model("c2d_r18").eval()
    cfg = model.pretrained_cfg.with_changes(input_size=(3, 32, 16), test_clip_len=3)
    common = {"cfg": cfg, "batch_size": 16, "device": "cpu"}

    result = evaluate_model(model, dataset, **common)
    q = extract_features(model, query, **common)
    g = extract_features(model, gallery, **common)
    by_hand = evaluate_rank(
        pairwise_distance(q, g, metric=cfg.distance),
        *(np.array([t[i] for t in s]) for i in (1, 2) for s in (query, gallery)),
    )
    assert result.mAP == pytest.approx(by_hand.mAP, abs=1e-6)
    np.testing.assert_allclose(result.cmc, by_hand.cmc)
    assert result.num_valid_queries == 3

    reranked = evaluate_model(
        model, dataset, rerank=True, rerank_k1=4, rerank_k2=2, protocol="torchreid", **common
    )
    assert 0.0 < reranked.mAP <= 1.0
    with pytest.raises(ValueError, match="0 query and 7 gallery"):
        evaluate_model(model, VideoDataset("toy", (), (), gallery), **common)


@pytest.mark.gpu
@pytest.mark.parametrize("amp_dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_cuda_amp_trains_and_resumes_exactly(tmp_path, amp_dtype):
    """On CUDA, fp16 runs through the gradient scaler (whose state the checkpoint carries) and
    bf16 without it; either way a resumed run ends where an uninterrupted one does."""
    options = {"device": "cuda", "amp_dtype": amp_dtype}
    straight = make_trainer(tmp_path / "a", epochs=4, **options)
    straight.fit()
    make_trainer(tmp_path / "b", epochs=2, **options).fit()
    resumed = make_trainer(tmp_path / "b", epochs=4, resume=tmp_path / "b" / "last.pt", **options)
    resumed.fit()

    assert straight.scaler.is_enabled() == (amp_dtype == torch.float16)
    assert resumed.scaler.state_dict() == straight.scaler.state_dict()
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert a.is_cuda and torch.equal(a, b), name


def test_checkpoints_carry_the_model_spec_with_the_runs_cfg(tmp_path):
    """best.pt and last.pt alone rebuild the trained model, fed as the run fed it."""
    from reid_models import model_from_spec
    from trainers.run import build_model

    torch.manual_seed(0)
    model = build_model(
        "ap3d_r18",
        num_classes=NUM_IDS,
        overrides={"base_width": 8},
        cfg_changes={"input_size": (32, 16), "clip_len": 2, "test_clip_len": 8},
    )
    dataset = NoisyClips(n=8, shape=(3, 2, 32, 16))
    evaluate = scripted_evaluate({1: 10.0})
    make_trainer(tmp_path, epochs=1, model=model, dataset=dataset, evaluate=evaluate).fit()

    for name in ("best.pt", "last.pt"):
        spec = load_checkpoint(tmp_path / name, expected_format=None)["model"]
        assert spec["name"] == "ap3d_r18" and spec["overrides"] == {"base_width": 8}
        cfg = spec["pretrained_cfg"]
        assert (cfg["input_size"], cfg["train_clip_len"], cfg["test_clip_len"]) == (
            [3, 32, 16],
            2,
            8,
        )
        rebuilt = model_from_spec(spec, num_classes=NUM_IDS)
        rebuilt.load_state_dict(
            load_checkpoint(tmp_path / name, expected_format=None)["state_dict"]
        )
        assert rebuilt.pretrained_cfg == model.pretrained_cfg
    clips = torch.randn(2, 3, 4, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(clips), model.eval()(clips))


def test_the_torch_engine_serves_best_pt_alone_as_the_run_trained_it(tmp_path):
    """Trained, saved, rebuilt by the engine from the file alone: same embeddings, same cfg."""
    from deploy.engines import create_engine, preprocess
    from trainers.run import build_model

    torch.manual_seed(0)
    model = build_model(
        "c2d_r18",
        num_classes=NUM_IDS,
        overrides={"base_width": 8},
        cfg_changes={"input_size": (32, 16), "test_clip_len": 2},
    )
    dataset = NoisyClips(n=8, shape=(3, 2, 32, 16))
    evaluate = scripted_evaluate({1: 10.0})
    make_trainer(tmp_path, epochs=1, model=model, dataset=dataset, evaluate=evaluate).fit()

    engine = create_engine("torch", checkpoint=tmp_path / "best.pt", max_batch=4)
    assert engine.cfg == model.pretrained_cfg and engine.cfg.input_size == (3, 32, 16)
    crops = np.random.default_rng(0).integers(0, 256, (3, 2, 50, 20, 3), dtype=np.uint8)
    with torch.no_grad():
        x = preprocess(torch.from_numpy(crops), model.pretrained_cfg, device="cpu")
        expected = nn.functional.normalize(model.eval()(x), dim=1).numpy()
    np.testing.assert_allclose(engine.embed(crops), expected, rtol=0, atol=1e-6)


def test_a_model_not_built_by_create_model_gets_no_spec(tmp_path):
    make_trainer(tmp_path, epochs=1, evaluate=scripted_evaluate({1: 10.0})).fit()
    assert "model" not in load_checkpoint(tmp_path / "best.pt", expected_format=None)
    assert "model" not in load_checkpoint(tmp_path / "last.pt")
