"""The per-paper recipes, the training schema and the published numbers.

Every YAML in trainers/configs loads through the `reidstream train` schema and names a registered
model and dataset; every paper x dataset with published numbers has its recipe; every published
number is found, as printed, in the paper's text (when the paper texts are beside the project).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from pipeline.config import ConfigError, describe_config, load_config
from reid_models import is_model
from trainers.datasets import list_datasets
from trainers.evaluation.rank import PROTOCOLS
from trainers.published import METRICS, PAPER_PROTOCOLS, PUBLISHED, model_key, published_for
from trainers.settings import ENV_PREFIX, EvalSettings, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "trainers" / "configs").glob("*.yaml"))
PAPERS = ROOT.parent / "shared" / "papers"
#: Recipe file suffix -> dataset reader.
SUFFIX_DATASET = {
    "mars": "mars",
    "dukev": "dukemtmc_videoreid",
    "ilidsvid": "ilidsvid",
    "prid2011": "prid2011",
    "lsvid": "lsvid",
}


def _load(path: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, path=path, overrides=overrides, environ={})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_recipe_loads_and_names_registered_parts(path: Path) -> None:
    cfg = _load(path)
    assert is_model(cfg.model.name)
    assert cfg.data.name in list_datasets()
    paper, _, suffix = path.stem.rpartition("_")
    if paper != "synthetic":
        assert cfg.data.name == SUFFIX_DATASET[suffix], path.name
        assert cfg.train.out_dir == Path("runs") / path.stem
    if cfg.loss.triplet > 0:
        assert cfg.data.instances_per_identity >= 2, "triplet needs positives in a batch"
        assert cfg.data.batch_size % cfg.data.instances_per_identity == 0


def test_every_published_paper_and_dataset_has_a_recipe() -> None:
    short = {v: k for k, v in SUFFIX_DATASET.items()}
    names = {p.stem for p in CONFIGS}
    wanted = {f"{r.paper}_{short[r.dataset]}" for r in PUBLISHED}
    assert wanted <= names, sorted(wanted - names)


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if p.stem.rpartition("_")[0] in PAPER_PROTOCOLS]
)
def test_every_paper_recipe_scores_as_its_paper_was_scored(path: Path) -> None:
    paper = path.stem.rpartition("_")[0]
    assert _load(path).eval.protocol == PAPER_PROTOCOLS[paper].protocol


def test_paper_protocols_exist_and_cite_sections_or_code() -> None:
    assert set(PAPER_PROTOCOLS) == {r.paper for r in PUBLISHED}
    assert set(typing.get_args(typing.get_type_hints(EvalSettings)["protocol"])) == set(PROTOCOLS)
    assert PAPER_PROTOCOLS["ap3d"].protocol == "ap3d"
    for paper, chosen in PAPER_PROTOCOLS.items():
        assert chosen.protocol in PROTOCOLS, paper
        assert re.search(r"Sec\. [\dIVX]|github\.com/", chosen.why), paper
        assert "spec" not in chosen.why and "shared" not in chosen.why, paper


def test_synthetic_recipes_are_small() -> None:
    for name in ("synthetic_c2d", "synthetic_ap3d"):
        cfg = _load(ROOT / "trainers" / "configs" / f"{name}.yaml")
        assert cfg.data.input_size == (64, 32) and cfg.data.clip_len == 4
        assert cfg.model.name.endswith("_r18")


def test_every_leaf_has_help() -> None:
    keys = describe_config(TrainConfig)
    assert len(keys) > 40
    assert [k.key for k in keys if len(k.help) < 15] == []


def test_environment_prefix_and_overrides() -> None:
    cfg = load_config(
        TrainConfig,
        environ={f"{ENV_PREFIX}DATA__SPLIT_ID": "3", "REIDSTREAM_LOG_LEVEL": "DEBUG"},
        overrides=["model.overrides={variant: B}", "data.input_size=64,32"],
        env_prefix=ENV_PREFIX,
    )
    assert cfg.data.split_id == 3
    assert cfg.log_level == "INFO"  # the streaming commands' variables are not read
    assert cfg.model.overrides == {"variant": "B"}
    assert cfg.data.input_size == (64, 32)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.name=ap3d_r51", "ap3d_r50"),
        ("data.name=market", "mars"),
        ("optim.name=rmsprop", "'adam', 'sgd'"),
        ("schedule.milestones=[120,60]", "increasing"),
        ("data.input_size=[64]", "list of 2"),
    ],
)
def test_bad_values_name_the_choices(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(TrainConfig, overrides=[override], environ={})


def test_all_losses_zero_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one loss"):
        load_config(TrainConfig, overrides=["loss.ce=0", "loss.triplet=0"], environ={})


def test_published_rows_are_unique_and_name_registered_models() -> None:
    keys = [r.key for r in PUBLISHED]
    assert len(keys) == len(set(keys))
    for r in PUBLISHED:
        assert is_model(r.model), r
        assert r.dataset in list_datasets(), r
        values = [v for v in r.metrics().values() if v is not None]
        assert values and all(0 < v <= 100 for v in values), r
    assert {r.paper for r in PUBLISHED} == {"ap3d", "gltr", "m3d", "i3d_nonlocal", "personvlad"}


def test_published_lookup() -> None:
    (ap3d,) = published_for("ap3d_r50", "mars")
    assert (ap3d.rank1, ap3d.mAP) == (90.1, 85.1)
    (p3d_a,) = published_for("p3d_r50", "dukemtmc_videoreid", overrides={"variant": "A"})
    assert (p3d_a.rank1, p3d_a.mAP) == (95.0, 95.0)
    (rerank,) = published_for("gltr_r50", "mars", rerank=True)
    assert rerank.mAP == 85.54 and rerank.rank1 is None
    assert model_key("m3d_r50", {"stream": "temporal"}) == "m3d_r50 stream=temporal"


@pytest.mark.skipif(not PAPERS.is_dir(), reason=f"the paper texts are not at {PAPERS}")
@pytest.mark.parametrize("row", PUBLISHED, ids=lambda r: f"{r.paper}-{r.row}-{r.dataset}")
def test_published_numbers_appear_in_the_cited_paper_row(row) -> None:
    """Some line of the paper's text holds every number of the entry (a transcription check)."""
    paper = PAPERS / f"{row.paper}_paper.txt"
    values = {v for m in METRICS if (v := getattr(row, m)) is not None}
    lines = paper.read_text(encoding="utf-8").splitlines()
    numbers = [{float(n) for n in re.findall(r"\d+\.\d+", line)} for line in lines]
    assert any(values <= found for found in numbers), (row, values)
