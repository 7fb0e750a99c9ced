from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from pipeline.config import (
    ConfigError,
    config_to_dict,
    describe_config,
    dump_config,
    load_config,
    redact_text,
    redact_values,
)


class Precision(enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"


@dataclass(frozen=True)
class Batching:
    max_batch: int = field(default=8, metadata={"ge": 1, "help": "clips per batch"})
    max_wait_ms: float = field(default=20.0, metadata={"ge": 0, "help": "wait for a full batch"})
    precision: Precision = field(default=Precision.FP32, metadata={"help": "precision"})

    def __post_init__(self) -> None:
        if self.max_batch > 64 and self.max_wait_ms == 0:
            raise ValueError("max_batch > 64 needs max_wait_ms > 0")


@dataclass(frozen=True)
class Engine:
    name: Literal["torch", "onnxruntime"] = field(default="torch", metadata={"help": "engine"})
    input_size: tuple[int, int] = field(default=(256, 128), metadata={"gt": 0, "help": "H, W"})
    weights: Path | None = field(default=None, metadata={"help": "weights file"})
    batching: Batching = field(default_factory=Batching)


@dataclass(frozen=True)
class Schema:
    threshold: float = field(
        default=0.6, metadata={"ge": -1, "le": 1, "help": "similarity threshold"}
    )
    cameras: tuple[str, ...] = field(
        default=("cam-1",), metadata={"pattern": r"cam-\d+", "help": "camera ids"}
    )
    topic: str = field(default="links", metadata={"help": "topic"})
    verbose: bool = field(default=False, metadata={"help": "verbose"})
    labels: dict[str, int] = field(default_factory=dict, metadata={"help": "labels"})
    engine: Engine = field(default_factory=Engine)


def test_defaults():
    assert load_config(Schema, environ={}) == Schema()


def test_layers_override_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("threshold: 0.1\ntopic: from-file\nengine: {name: onnxruntime}\n")
    env = {"RS_THRESHOLD": "0.2", "RS_ENGINE__BATCHING__MAX_BATCH": "32", "OTHER": "x"}
    cfg = load_config(Schema, path=path, environ=env, overrides=["threshold=0.3"], env_prefix="RS_")
    assert cfg.threshold == 0.3  # command line beats environment beats file
    assert cfg.topic == "from-file"
    assert cfg.engine.name == "onnxruntime"
    assert cfg.engine.batching.max_batch == 32
    assert cfg.engine.batching.max_wait_ms == 20.0  # untouched default


def test_presets_lie_under_the_file_environment_and_command_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("threshold: 0.1\n")
    presets = ["threshold=0.9", "topic=preset", "engine.name=onnxruntime"]
    cfg = load_config(Schema, path=path, environ={"RS_TOPIC": "env"}, presets=presets,
                      overrides=["engine.name=torch"], env_prefix="RS_")  # fmt: skip
    assert (cfg.threshold, cfg.topic, cfg.engine.name) == (0.1, "env", "torch")
    assert load_config(Schema, environ={}, presets=presets).topic == "preset"
    with pytest.raises(ConfigError, match=r"threshold = '7' \(from the command's defaults\)"):
        load_config(Schema, environ={}, presets=["threshold=7"])


def test_numbers_read_as_yaml_1_2_does(tmp_path):
    # PyYAML alone (YAML 1.1) reads 5e-1 and 2e1 as strings; everywhere else they are numbers.
    path = tmp_path / "c.yaml"
    path.write_text("threshold: 5e-1\nengine: {batching: {max_wait_ms: 2e1}}\ntopic: 1e3x\n")
    cfg = load_config(Schema, path=path, environ={}, overrides=["engine.batching.max_batch=8"])
    assert (cfg.threshold, cfg.engine.batching.max_wait_ms, cfg.topic) == (0.5, 20.0, "1e3x")
    assert load_config(Schema, environ={}, overrides=["threshold=-25E-3"]).threshold == -0.025


def test_a_document_in_memory_is_the_file_layer(tmp_path):
    document = {"threshold": 0.1, "engine": {"name": "onnxruntime", "input_size": [64, 32]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    from_file = load_config(Schema, path=path, environ={}, overrides=["topic=t"])
    from_document = load_config(Schema, document=document, environ={}, overrides=["topic=t"])
    assert from_document == from_file
    assert from_document.engine.input_size == (64, 32)

    with pytest.raises(ConfigError, match=r"threshold = 7 \(from the stored run\)"):
        load_config(Schema, document={"threshold": 7}, document_source="the stored run")
    with pytest.raises(TypeError, match="not both"):
        load_config(Schema, path=path, document=document)


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("verbose=true", "verbose", True),
        ("verbose=no", "verbose", False),
        ("threshold=1", "threshold", 1.0),
        ("topic=123", "topic", "123"),  # strings are taken as text, not YAML
        ("topic=", "topic", ""),
        ("cameras=cam-1,cam-2", "cameras", ("cam-1", "cam-2")),
        ("cameras=[cam-3]", "cameras", ("cam-3",)),
        ("labels={a: 1, b: 2}", "labels", {"a": 1, "b": 2}),
        ("engine.input_size=384,192", "engine.input_size", (384, 192)),
        ("engine.input_size=[384, 192]", "engine.input_size", (384, 192)),
        ("engine.weights=~/w.pt", "engine.weights", Path("~/w.pt").expanduser()),
        ("engine.weights=null", "engine.weights", None),
        ("engine.batching.precision=fp16", "engine.batching.precision", Precision.FP16),
        ("engine.batching.precision=FP16", "engine.batching.precision", Precision.FP16),
        ("engine.batching={max_batch: 2}", "engine.batching.max_batch", 2),
    ],
)
def test_override_values(override, key, expected):
    cfg = load_config(Schema, environ={}, overrides=[override])
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "treshold=0.5",
            "unknown key 'treshold' (from command line). Did you mean 'threshold'? "
            "Keys of the top level: cameras, engine, labels, threshold, topic, verbose",
        ),
        (
            "engine.nme=x",
            "unknown key 'engine.nme' (from command line). Did you mean 'engine.name'? "
            "Keys of 'engine': batching, input_size, name, weights",
        ),
        ("threshold=2", "threshold = '2' (from command line): must be <= 1"),
        ("threshold=high", "threshold = 'high' (from command line): expected a number"),
        ("threshold=.nan", "expected a finite number, got nan"),
        ("verbose=2", "verbose = '2' (from command line): expected true or false"),
        ("engine.name=tensorrt", "expected one of 'torch', 'onnxruntime'"),
        ("engine.input_size=256", "expected a list of 2 (an integer, an integer), got 1 items"),
        ("engine.input_size=256,0", "engine.input_size = '256,0' (from command line): must be > 0"),
        (
            "engine.batching.max_batch=1.5",
            "max_batch = '1.5' (from command line): expected an integer",
        ),
        ("engine.batching.precision=int4", "expected one of 'fp32', 'fp16'"),
        ("cameras=cam-1,lobby", r"must match the regular expression cam-\d+"),
        ("labels=[1]", "expected a mapping of a string to an integer"),
        ("topic.x=1", "'topic.x' (from command line): 'topic' is a value, not a section"),
        ("threshold", "override 'threshold': expected KEY=VALUE"),
        ("engine=[1]", "engine = [1] (from command line): expected a mapping of keys, got list"),
    ],
)
def test_bad_overrides_name_key_value_and_allowed(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(Schema, environ={}, overrides=[override])
    assert message in str(info.value), str(info.value)


def test_bad_environment_names_the_variable():
    with pytest.raises(
        ConfigError, match=r"unknown key 'enigne' \(from environment variable RS_ENIGNE\)"
    ):
        load_config(Schema, environ={"RS_ENIGNE": "1"}, env_prefix="RS_")
    with pytest.raises(
        ConfigError, match=r"engine.batching.max_wait_ms = '-1' \(from environment variable "
    ):
        load_config(Schema, environ={"RS_ENGINE__BATCHING__MAX_WAIT_MS": "-1"}, env_prefix="RS_")


def test_all_errors_are_reported_together(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("threshold: 5\ncolour: red\nengine:\n  name: tf\n  batching: {max_batch: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_config(Schema, path=path, environ={})
    lines = str(info.value).splitlines()
    assert len(lines) == 4, lines
    assert all(f"config file '{path}'" in line for line in lines)
    assert any(line.startswith("threshold = 5") for line in lines)
    assert any(line.startswith("unknown key 'colour'") for line in lines)
    assert any(line.startswith("engine.name = 'tf'") for line in lines)
    assert any(line.startswith("engine.batching.max_batch = 0") for line in lines)


def test_yaml_file_types_are_strict(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("topic: 123\n")
    with pytest.raises(ConfigError, match=r"topic = 123 .*expected a string; quote the value"):
        load_config(Schema, path=path, environ={})


def test_cross_field_check_names_the_section():
    with pytest.raises(
        ConfigError, match=r"engine\.batching: max_batch > 64 needs max_wait_ms > 0"
    ):
        load_config(
            Schema,
            environ={},
            overrides=["engine.batching.max_batch=128", "engine.batching.max_wait_ms=0"],
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2", "is not valid YAML"),
        ("- 1\n- 2\n", "the top level = [1, 2]"),
    ],
)
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(Schema, path=path, environ={})


def test_missing_file():
    with pytest.raises(ConfigError, match=r"config file '/nonexistent/c\.yaml' cannot be read"):
        load_config(Schema, path="/nonexistent/c.yaml", environ={})


def test_empty_file_and_empty_section_mean_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("engine:\n")
    assert load_config(Schema, path=path, environ={}) == Schema()
    path.write_text("")
    assert load_config(Schema, path=path, environ={}) == Schema()


def test_dump_round_trips(tmp_path):
    cfg = load_config(
        Schema,
        environ={},
        overrides=[
            "cameras=cam-4,cam-5",
            "engine.weights=/w/model.pt",
            "engine.batching.precision=fp16",
            "labels={x: 3}",
        ],
    )
    text = dump_config(cfg)
    assert yaml.safe_load(text) == config_to_dict(cfg)
    assert config_to_dict(cfg)["engine"]["batching"]["precision"] == "fp16"
    path = tmp_path / "resolved.yaml"
    path.write_text(text)
    assert load_config(Schema, path=path, environ={}) == cfg


def test_describe_lists_every_leaf_with_help():
    rows = {row.key: row for row in describe_config(Schema)}
    assert list(rows)[:3] == ["threshold", "cameras", "topic"]
    assert "engine.batching.precision" in rows
    assert rows["engine.input_size"].default == [256, 128]
    assert rows["engine.weights"].type == "a path or null"
    assert rows["cameras"].type == "a list, each a string"
    assert rows["threshold"].help == "similarity threshold"


# --------------------------------------------------------------------- the real reidstream schema


# ------------------------------------------------------------------- lists of sections, secrets


@dataclass(frozen=True)
class Camera:
    id: str = field(default="", metadata={"help": "camera id"})
    fps: float = field(default=10.0, metadata={"gt": 0, "help": "frame rate"})

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id: required")


@dataclass(frozen=True)
class Site:
    cameras: tuple[Camera, ...] = field(default=(), metadata={"help": "the cameras"})
    password: str | None = field(default=None, metadata={"secret": True, "help": "a credential"})


def test_a_list_of_sections_loads_each_item_with_its_defaults(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("cameras:\n  - {id: a}\n  - id: b\n    fps: 25\n")
    cfg = load_config(Site, path=path, environ={})
    assert cfg.cameras == (Camera("a"), Camera("b", 25.0))
    env = {"REIDSTREAM_CAMERAS": "[{id: c, fps: 5}]"}
    assert load_config(Site, environ=env).cameras == (Camera("c", 5.0),)
    path.write_text(dump_config(cfg))
    assert load_config(Site, path=path, environ={}) == cfg


def test_every_bad_item_of_a_list_of_sections_is_named():
    with pytest.raises(ConfigError) as info:
        load_config(Site, environ={}, overrides=["cameras=[{id: a, fsp: 1}, {fps: 2}, 5, {id: d}]"])
    lines = str(info.value).splitlines()
    assert lines[0].startswith("cameras (from command line): [0] unknown key 'fsp'")
    assert "Did you mean 'fps'?" in lines[0]
    assert lines[1:] == [
        "[1] config: id: required",
        "[2] the top level = 5 (from this item): expected a mapping of keys, got int",
    ]


def test_describe_lists_the_keys_of_each_item():
    rows = {row.key: row for row in describe_config(Site)}
    assert rows["cameras"].type == "a list, each a mapping with keys id, fps"
    assert rows["cameras[].fps"].help == "frame rate" and rows["cameras[].fps"].default == 10.0


def test_secrets_are_redacted_when_written_but_not_when_asked():
    cfg = load_config(Site, environ={"REIDSTREAM_PASSWORD": "hunter2"})
    assert cfg.password == "hunter2"
    assert "hunter2" not in dump_config(cfg) and "<redacted>" in dump_config(cfg)
    assert yaml.safe_load(dump_config(cfg, redact=False))["password"] == "hunter2"
    assert "<redacted>" not in dump_config(load_config(Site, environ={}))  # None stays null


def test_a_leaf_without_help_or_with_an_unknown_bound_is_a_schema_error():
    @dataclass(frozen=True)
    class Undocumented:
        size: int = 3

    @dataclass(frozen=True)
    class Misspelt:
        size: int = field(default=3, metadata={"help": "a size", "minimum": 1})

    with pytest.raises(TypeError, match=r"Undocumented\.size has no metadata\['help'\]"):
        load_config(Undocumented, environ={})
    with pytest.raises(TypeError, match=r"Misspelt\.size: unknown metadata \['minimum'\]"):
        describe_config(Misspelt)


# ------------------------------------------------------------------- non-finite numbers, ports


@dataclass(frozen=True)
class Endpoints:
    listen: str = field(default="127.0.0.1:9400", metadata={"port": "listen", "help": "listen"})
    brokers: tuple[str, ...] = field(
        default=("b:9092",), metadata={"port": "connect", "help": "brokers"}
    )
    timeout_s: float = field(default=1.0, metadata={"help": "timeout (no bounds)"})
    weights: dict[str, float] = field(default_factory=dict, metadata={"help": "weights"})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("timeout_s=inf", "timeout_s = 'inf' (from command line): expected a finite number"),
        ("timeout_s=-Infinity", "expected a finite number, got -Infinity"),
        ("timeout_s=.inf", "expected a finite number, got inf"),
        ("timeout_s=nan", "expected a finite number, got nan"),
        ("weights={a: .inf}", "weights = '{a: .inf}' (from command line): expected a finite"),
        ("listen=h:99999", "'h:99999' has no valid port: expected host:port with a port from 0"),
        ("listen=h:x", "'h:x' has no valid port"),
        ("brokers=a:9092,b:0", "'b:0' has no valid port: expected host:port with a port from 1"),
        ("brokers=[a:65536]", "'a:65536' has no valid port"),
    ],
)
def test_non_finite_numbers_and_impossible_ports_are_refused(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(Endpoints, environ={}, overrides=[override])
    assert message in str(info.value), str(info.value)


def test_non_finite_numbers_in_yaml_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("timeout_s: .inf\nweights: {a: .NaN}\n")
    with pytest.raises(ConfigError) as info:
        load_config(Endpoints, path=path, environ={})
    assert str(info.value).splitlines() == [
        f"timeout_s = inf (from config file '{path}'): expected a finite number, got inf",
        f"weights = {{'a': nan}} (from config file '{path}'): expected a finite number, got nan",
    ]


def test_valid_ports_and_finite_numbers_load():
    cfg = load_config(
        Endpoints,
        environ={},
        overrides=["listen=0.0.0.0:0", "brokers=a:1,[::1]:65535", "timeout_s=1.0e+300"],
    )
    assert cfg.listen == "0.0.0.0:0" and cfg.brokers == ("a:1", "[::1]:65535")
    assert cfg.timeout_s == 1e300


def test_a_bad_value_of_a_secret_is_not_echoed():
    @dataclass(frozen=True)
    class Secretive:
        token: str = field(default="", metadata={"secret": True, "pattern": "[a-z]+", "help": "t"})

    with pytest.raises(ConfigError) as info:
        load_config(Secretive, environ={}, overrides=["token=Hunter2"])
    assert "Hunter2" not in str(info.value) and "token = <redacted>" in str(info.value)


# ------------------------------------------------------------------------------------ redaction

HOSTILE_URIS = [
    ("rtsp://u:p@h/", "rtsp://u:***@h/"),
    ("rtsp://admin:hunter2@10.0.0.7:554/live", "rtsp://admin:***@10.0.0.7:554/live"),
    ("rtsp://admin:hun/ter2@cam:554/live", "rtsp://admin:***@cam:554/live"),
    ("rtsp://admin:hun@ter2@cam/live", "rtsp://admin:***@cam/live"),
    ("rtsp://admin:hun:ter2@cam/live", "rtsp://admin:***@cam/live"),
    ("rtsp://admin:a/b@c:d@cam/live", "rtsp://admin:***@cam/live"),
    ("admin:hunter2@cam:554/live", "admin:***@cam:554/live"),
    (
        "http://cam/snap.jpg?user=admin&password=hunter2",
        "http://cam/snap.jpg?user=admin&password=***",
    ),
    ("http://cam/mjpg?res=hd&token=hunter2&fps=5", "http://cam/mjpg?res=hd&token=***&fps=5"),
    ("https://cam/x?api_key=hunter2#f", "https://cam/x?api_key=***#f"),
    ("rtsp://admin:hun%40ter2@cam/live", "rtsp://admin:***@cam/live"),
    ("rtsp://admin:hunter2%40cam/live", "rtsp://admin:***@cam/live"),
    ("http://cam/x?pass%77ord=hunter2", "http://cam/x?pass%77ord=***"),
    (
        "http://relay/?src=rtsp%3A%2F%2Fadmin%3Ahunter2%40cam",
        "http://relay/?src=rtsp://admin:***@cam",
    ),
    (
        "http://relay/?src=rtsp%253A%252F%252Fadmin%253Ahunter2%2540cam",
        "http://relay/?src=rtsp://admin:***@cam",
    ),
    ("https://hunter2@git.example/x", "https://***@git.example/x"),
]


@pytest.mark.parametrize(("uri", "redacted"), HOSTILE_URIS)
def test_credentials_in_any_uri_form_are_hidden(uri, redacted):
    assert redact_text(uri) == redacted
    assert "hunter2" not in redact_text(f"camera c1: cannot open {uri!r} (timeout)")


@pytest.mark.parametrize(
    "text",
    ["/videos/a.mp4", "webcam:0", "ops@example.com", "b1:9092,b2:9092", "http://cam/a@b", "x=1"],
)
def test_text_without_credentials_is_unchanged(text):
    assert redact_text(text) == text


def test_redact_values_walks_reports():
    report = {"cameras": [{"source": "rtsp://a:hunter2@h/"}], "n": 3, "rtsp://a:hunter2@k": None}
    assert "hunter2" not in str(redact_values(report))
    assert redact_values(report)["n"] == 3


def test_dump_config_hides_credentials_in_every_string():
    @dataclass(frozen=True)
    class Cameras:
        uris: tuple[str, ...] = field(default=(), metadata={"help": "uris"})

    cfg = load_config(Cameras, environ={}, overrides=[f"uris=[{HOSTILE_URIS[3][0]}]"])
    assert "ter2" not in dump_config(cfg) and "cam/live" in dump_config(cfg)
    assert "hun@ter2" in dump_config(cfg, redact=False)
