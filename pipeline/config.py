"""Typed configuration: dataclass defaults <- YAML <- `REIDSTREAM_*` environment <- `key=value`.

A configuration schema is a tree of plain frozen dataclasses whose fields all have defaults; it
imports nothing of this module, so every package declares its own section beside its code. A leaf
is a `dataclasses.field` whose `metadata` documents and bounds it:

    threshold: float = field(default=0.6, metadata={"ge": -1.0, "le": 1.0, "help": "..."})

    help     what the key does and what raising or lowering it trades (required)
    ge, gt, le, lt    numeric bounds, applied to each item of a list
    pattern  a regular expression a string must match in full
    port     "connect" or "listen": the string is host:port and the port must be 1-65535
             ("listen" also takes 0: any free port)
    secret   true for a credential: `dump_config` writes it as `REDACTED`

Credentials inside any other string (a camera URL `rtsp://user:pass@host/`, a `?token=` query)
are hidden by `redact_text` wherever a value is printed or written: `dump_config`, the logs, the
health report and `summary.json` all pass through it.

`load_config` merges four layers, later ones winning, and validates every value once, at start-up:

    defaults (the dataclass)        log_level: INFO
      <- YAML file (--config)       kafka: {bootstrap_servers: [broker-1:9092]}
      <- environment                REIDSTREAM_KAFKA__BOOTSTRAP_SERVERS=broker-1:9092,broker-2:9092
      <- command line               kafka.client_id=site-7

Environment variables name a key in upper case after the prefix, with `__` between sections (key
names themselves contain `_`). Values given as text (environment, command line) are read as YAML
scalars or flow collections, except where the field is a string; list fields also take
comma-separated text. Every error names the key, the bad value, where it came from and what is
allowed; all errors of one load are reported together.

A field typed `tuple[Section, ...]` (the cameras) is a list of sections: each item is a mapping
loaded like a small document of its own, and its errors are prefixed with its position. A secret
leaf (a password) is written as `REDACTED` by `dump_config`.

Written here rather than taken from OmegaConf or pydantic-settings: neither is among the project's
dependencies, and what is needed (Literal choices, numeric bounds, per-layer provenance in the
messages, a YAML dump) is a few hundred lines on top of `dataclasses`, `typing` and PyYAML.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import math
import operator
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import yaml

__all__ = [
    "REDACTED",
    "ConfigError",
    "KeyInfo",
    "config_to_dict",
    "describe_config",
    "dump_config",
    "load_config",
    "redact_text",
    "redact_values",
]

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: PyYAML follows YAML 1.1, where
    `3e-5` and `4.0e9` (no dot, or no sign in the exponent) are strings, not floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def _safe_load(text: str) -> Any:
    """YAML text as plain data (no tags that build objects), numbers as in YAML 1.2."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: builds no objects


_NONE_TEXT = frozenset({"", "null", "none", "~"})
#: The keys a leaf's `metadata` may hold (see the module docstring).
LEAF_METADATA = frozenset({"help", "ge", "gt", "le", "lt", "pattern", "port", "secret"})
#: Text YAML or a user may write for a number that is not finite (YAML's own are `.inf`, `.nan`).
_NONFINITE_TEXT = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"})
_BOUNDS = ("ge", "gt", "le", "lt")


class ConfigError(ValueError):
    """The configuration cannot be resolved; the message lists every problem found."""


@dataclass(frozen=True)
class KeyInfo:
    """One documented leaf of a schema, as listed by `describe_config`."""

    key: str
    type: str
    default: Any
    help: str


@dataclass(frozen=True)
class _Raw:
    value: Any
    source: str
    text: bool  # `value` is a string from the environment or command line, not yet parsed


@dataclass(frozen=True)
class _Leaf:
    type: Any
    field: dataclasses.Field


# ----------------------------------------------------------------------------------------- schema


@functools.cache
def _schema(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a config dataclass (sections are dataclass types)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _leaves(cls: type, prefix: str = "") -> dict[str, _Leaf]:
    out: dict[str, _Leaf] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, tp in _schema(cls).items():
        if _is_section(tp):
            out.update(_leaves(tp, f"{prefix}{name}."))
        else:
            _check_metadata(f"{cls.__qualname__}.{name}", fields[name].metadata)
            out[prefix + name] = _Leaf(tp, fields[name])
    return out


def _check_metadata(name: str, metadata: Mapping[str, Any]) -> None:
    """A schema error (a bug, not bad input): a leaf without help, or with an unknown key."""
    if not isinstance(metadata.get("help"), str) or not metadata["help"]:
        raise TypeError(f"config leaf {name} has no metadata['help'] saying what it does")
    if unknown := sorted(set(metadata) - LEAF_METADATA):
        raise TypeError(
            f"config leaf {name}: unknown metadata {unknown}; allowed: {sorted(LEAF_METADATA)}"
        )
    if metadata.get("port", "connect") not in ("connect", "listen"):
        raise TypeError(f"config leaf {name}: metadata['port'] must be 'connect' or 'listen'")


# ------------------------------------------------------------------------------------ the layers


def _defaults(schema: type, prefix: str = "") -> dict[str, _Raw]:
    """The declared default of every leaf, read from the fields rather than an instance: a
    section with required keys (a camera's id) has no valid default instance."""
    out: dict[str, _Raw] = {}
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for name, tp in _schema(schema).items():
        if _is_section(tp):
            out.update(_defaults(tp, f"{prefix}{name}."))
            continue
        f = fields[name]
        value = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out[prefix + name] = _Raw(value, "default", text=False)
    return out


def _flatten(
    schema: type, mapping: Any, prefix: str, source: str, out: dict[str, _Raw], errors: list[str]
) -> None:
    """Spreads a nested mapping over the schema's leaves as dotted keys."""
    if mapping is None:  # an empty section, e.g. `kafka:` with nothing under it
        return
    if not isinstance(mapping, Mapping):
        where = prefix.rstrip(".") or "the top level"
        errors.append(
            f"{where} = {mapping!r} (from {source}): expected a mapping of keys, "
            f"got {type(mapping).__name__}"
        )
        return
    fields = _schema(schema)
    for key, value in mapping.items():
        if key not in fields:
            errors.append(_unknown_key(f"{prefix}{key}", fields, source))
        elif _is_section(fields[key]):
            _flatten(fields[key], value, f"{prefix}{key}.", source, out, errors)
        else:
            out[f"{prefix}{key}"] = _Raw(value, source, text=False)


def _unknown_key(key: str, allowed: Iterable[str], source: str) -> str:
    name = key.rsplit(".", 1)[-1]
    section = key.rsplit(".", 1)[0] if "." in key else ""
    allowed = sorted(allowed)
    hint = difflib.get_close_matches(name, allowed, n=1)
    suggestion = f" Did you mean '{section + '.' if section else ''}{hint[0]}'?" if hint else ""
    where = f"'{section}'" if section else "the top level"
    return f"unknown key '{key}' (from {source}).{suggestion} Keys of {where}: {', '.join(allowed)}"


def _assign(
    schema: type, key: str, text: str, source: str, out: dict[str, _Raw], errors: list[str]
) -> None:
    """Applies one dotted `key` given as text; a section key takes a YAML mapping."""
    cls, parts = schema, key.split(".")
    for depth, part in enumerate(parts):
        fields = _schema(cls)
        if part not in fields:
            errors.append(_unknown_key(".".join(parts[: depth + 1]), fields, source))
            return
        if depth < len(parts) - 1:
            if not _is_section(fields[part]):
                errors.append(f"'{key}' (from {source}): '{part}' is a value, not a section")
                return
            cls = fields[part]
    leaf_type = _schema(cls)[parts[-1]]
    if _is_section(leaf_type):
        try:
            mapping = _safe_load(text)
        except yaml.YAMLError as e:
            errors.append(f"{key} = {text!r} (from {source}): not valid YAML ({e})")
            return
        _flatten(leaf_type, mapping, key + ".", source, out, errors)
    else:
        out[key] = _Raw(text, source, text=True)


def _environment(
    schema: type, environ: Mapping[str, str], prefix: str, out: dict[str, _Raw], errors: list[str]
) -> None:
    for name in sorted(environ):
        if name.startswith(prefix) and len(name) > len(prefix):
            key = name[len(prefix) :].lower().replace("__", ".")
            _assign(schema, key, environ[name], f"environment variable {name}", out, errors)


def _overrides(
    schema: type,
    overrides: Iterable[str],
    out: dict[str, _Raw],
    errors: list[str],
    source: str = "command line",
) -> None:
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            errors.append(f"override {item!r}: expected KEY=VALUE, e.g. log_level=DEBUG")
            continue
        _assign(schema, key.strip(), text, source, out, errors)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {e.strerror or e}") from e
    try:
        return _safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from e


# ------------------------------------------------------------------------------------ conversion


class _Invalid(Exception):
    """A value does not fit its type or bounds; the message says what is allowed.

    `show_value` is false where the message already names the bad parts of a large value.
    """

    def __init__(self, message: str, *, show_value: bool = True) -> None:
        super().__init__(message)
        self.show_value = show_value


def _fixed_length(origin: Any, args: tuple) -> bool:
    """Whether a sequence type has fixed length: `tuple[int, int]`, not `tuple[int, ...]`."""
    return origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)


def _describe_type(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        inner = [_describe_type(a) for a in args if a is not type(None)]
        return " or ".join(inner) + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        if _fixed_length(origin, args):
            return f"a list of {len(args)} ({', '.join(_describe_type(a) for a in args)})"
        return f"a list, each {_describe_type(args[0])}"
    if origin is dict:
        return f"a mapping of {_describe_type(args[0])} to {_describe_type(args[1])}"
    if _is_section(tp):
        return f"a mapping with keys {', '.join(_schema(tp))}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, "a path" if tp is Path else getattr(tp, "__name__", str(tp)))


def _takes_text(tp: Any) -> bool:
    """Whether text from the environment or command line is the value itself, not YAML."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return all(_takes_text(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return all(isinstance(m.value, str) for m in tp)
    return tp in (str, Path)


def _parse_text(text: str, tp: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if text.strip().lower() in _NONE_TEXT:
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse_text(
            text, inner[0] if len(inner) == 1 else functools.reduce(operator.or_, inner)
        )
    if _takes_text(tp):
        return text
    if origin in (tuple, list) and not text.lstrip().startswith("["):
        item_type = args[0] if args else Any
        return [_parse_text(part.strip(), item_type) for part in text.split(",") if part.strip()]
    try:
        return _safe_load(text)
    except yaml.YAMLError as e:
        raise _Invalid(f"not valid YAML ({e.__class__.__name__})") from e


def _convert(value: Any, tp: Any) -> Any:
    """Converts a parsed value to `tp`, or raises `_Invalid`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option)
            except _Invalid:
                continue
        raise _Invalid(f"expected {_describe_type(tp)}")
    if origin is typing.Literal:
        if value in args and any(type(value) is type(a) for a in args if a == value):
            return value
        raise _Invalid(f"expected {_describe_type(tp)}")
    if origin in (tuple, list):
        return _convert_sequence(value, tp, origin, args)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _Invalid(f"expected {_describe_type(tp)}")
        return {_convert(k, args[0]): _convert(v, args[1]) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        for member in tp:
            if value in (member.value, member.name):
                return member
        raise _Invalid(f"expected {_describe_type(tp)}")
    return _convert_scalar(value, tp)


def _convert_sequence(value: Any, tp: Any, origin: type, args: tuple) -> Any:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _Invalid(f"expected {_describe_type(tp)}")
    items = list(value)
    if _fixed_length(origin, args):
        if len(items) != len(args):
            raise _Invalid(f"expected {_describe_type(tp)}, got {len(items)} items")
        return tuple(_convert(v, a) for v, a in zip(items, args, strict=True))
    if _is_section(args[0]):
        converted = _convert_sections(items, args[0])
    else:
        converted = [_convert(v, args[0]) for v in items]
    return tuple(converted) if origin is tuple else converted


def _convert_sections(items: list[Any], section: type) -> list[Any]:
    """Each item of a list of sections (e.g. `cameras`), loaded like a small config document.

    Every item's problems are reported, each prefixed with the item's 0-based position.
    """
    out, problems = [], []
    for i, item in enumerate(items):
        try:
            out.append(load_config(section, document=item, document_source="this item", environ={}))
        except ConfigError as e:
            problems += [f"[{i}] {line}" for line in str(e).splitlines()]
    if problems:
        raise _Invalid("\n".join(problems), show_value=False)
    return out


def _convert_scalar(value: Any, tp: Any) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # YAML's .inf and .nan: no setting means either
                raise _Invalid(f"expected a finite number, got {value}")
            return float(value)
        if isinstance(value, str) and value.strip().lower() in _NONFINITE_TEXT:
            raise _Invalid(f"expected a finite number, got {value.strip()}")
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, bool)):
            raise _Invalid("expected a string; quote the value in YAML")
    elif tp is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value).expanduser()
    else:
        raise TypeError(f"config fields of type {tp!r} are not supported")
    raise _Invalid(f"expected {_describe_type(tp)}")


def _check_constraints(value: Any, field: dataclasses.Field) -> None:
    """Applies the field's bounds and pattern to a value, or to each item of a list value."""
    checks = {
        "ge": (lambda v, b: v >= b, ">="),
        "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="),
        "lt": (lambda v, b: v < b, "<"),
    }
    bounds = {name: field.metadata[name] for name in _BOUNDS if name in field.metadata}
    pattern, port = field.metadata.get("pattern"), field.metadata.get("port")
    for item in value if isinstance(value, (tuple, list)) else (value,):
        if item is None:
            continue
        for name, bound in bounds.items():
            ok, symbol = checks[name]
            if not ok(item, bound):
                raise _Invalid(f"must be {symbol} {bound}")
        if pattern is not None and not re.fullmatch(pattern, str(item)):
            raise _Invalid(f"must match the regular expression {pattern}")
        if port is not None and item != "":
            _check_port(str(item), lowest=0 if port == "listen" else 1)


def _check_port(address: str, lowest: int) -> None:
    """`address` is host:port with a port from `lowest` to 65535."""
    text = address.rpartition(":")[2]
    if not text.isdigit() or not lowest <= int(text) <= 65535:
        listen = " (0: any free port)" if lowest == 0 else ""
        raise _Invalid(
            f"{address!r} has no valid port: expected host:port with a port from {lowest} to "
            f"65535{listen}"
        )


def _resolve(raw: _Raw, leaf: _Leaf) -> Any:
    value = _parse_text(raw.value, leaf.type) if raw.text else raw.value
    value = _convert(value, leaf.type)
    _check_constraints(value, leaf.field)
    return value


def _build(schema: type, prefix: str, values: dict[str, Any]) -> Any:
    kwargs = {}
    for name, tp in _schema(schema).items():
        kwargs[name] = (
            _build(tp, f"{prefix}{name}.", values) if _is_section(tp) else values[prefix + name]
        )
    try:
        return schema(**kwargs)
    except (ValueError, TypeError) as e:  # cross-field checks in a section's __post_init__
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {e}") from e


# ------------------------------------------------------------------------------------- public API


def load_config(
    schema: type[T],
    *,
    path: str | os.PathLike[str] | None = None,
    document: Mapping[str, Any] | None = None,
    document_source: str = "stored configuration",
    environ: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
    env_prefix: str = "REIDSTREAM_",
    presets: Iterable[str] = (),
) -> T:
    """Resolves a configuration from defaults, a YAML file, the environment and overrides.

    Args:
        schema: Root config dataclass; every field has a default.
        path: Optional YAML file whose nested mappings mirror the schema.
        document: The same nested mappings already in memory (e.g. a configuration stored in a
            checkpoint), in place of `path`.
        document_source: How error messages name `document`.
        environ: Environment to read `env_prefix` variables from; defaults to `os.environ`.
        overrides: ``"section.key=value"`` strings, applied last.
        env_prefix: Prefix of the environment variables that set keys.
        presets: ``"section.key=value"`` strings applied over the schema's defaults and under
            everything else: a command's own defaults (`reidstream demo`'s), which the file,
            the environment and the overrides still override.

    Returns:
        A validated instance of `schema`.

    Raises:
        ConfigError: Unreadable file, unknown keys or invalid values; the message lists them all.
    """
    layers: dict[str, _Raw] = _defaults(schema)
    errors: list[str] = []
    _overrides(schema, presets, layers, errors, source="the command's defaults")
    if path is not None and document is not None:
        raise TypeError("load_config takes a path or a document, not both")
    if path is not None:
        path = Path(path)
        _flatten(schema, _read_yaml(path), "", f"config file {str(path)!r}", layers, errors)
    if document is not None:
        _flatten(schema, document, "", document_source, layers, errors)
    _environment(schema, os.environ if environ is None else environ, env_prefix, layers, errors)
    _overrides(schema, overrides, layers, errors)

    leaves = _leaves(schema)
    values = {}
    for key, raw in layers.items():
        try:
            values[key] = _resolve(raw, leaves[key])
        except _Invalid as e:
            secret = leaves[key].field.metadata.get("secret")
            value = REDACTED if secret else repr(raw.value)
            shown = f" = {value}" if e.show_value else ""
            errors.append(f"{key}{shown} (from {raw.source}): {e}")
    if errors:
        raise ConfigError("\n".join(errors))
    return _build(schema, "", values)


#: What `dump_config` writes in place of a secret value.
REDACTED = "<redacted>"


def _plain(value: Any, redact: bool = False) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            hide = redact and f.metadata.get("secret") and item is not None
            out[f.name] = REDACTED if hide else _plain(item, redact)
        return out
    if redact and isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v, redact) for v in value]
    if isinstance(value, dict):
        return {_plain(k, redact): _plain(v, redact) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def config_to_dict(cfg: Any, *, redact: bool = False) -> dict[str, Any]:
    """The config as plain YAML/JSON-ready values (tuples become lists, paths strings).

    With `redact`, values of secret settings (passwords) are replaced by `REDACTED` and
    credentials inside other strings (URIs) are hidden by `redact_text`.
    """
    return _plain(cfg, redact)


def dump_config(cfg: Any, *, redact: bool = True) -> str:
    """The resolved config as YAML that `load_config(path=...)` reads back to an equal config.

    Secret leaves (``metadata={"secret": True, ...}``) are written as `REDACTED`, and credentials
    in any other value (a camera URL's password) as `redact_text` hides them, unless `redact` is
    false, so the file a run leaves beside its outputs holds no credentials.
    """
    return yaml.safe_dump(config_to_dict(cfg, redact=redact), sort_keys=False, allow_unicode=True)


def describe_config(schema: type) -> list[KeyInfo]:
    """Every leaf of `schema` with its type, default and help, in declaration order."""
    defaults = _defaults(schema)
    rows = []
    for key, leaf in _leaves(schema).items():
        rows.append(
            KeyInfo(
                key,
                _describe_type(leaf.type),
                _plain(defaults[key].value),
                leaf.field.metadata.get("help", ""),
            )
        )
        if (item := _section_item(leaf.type)) is not None:  # a list of sections: their keys
            rows += [dataclasses.replace(r, key=f"{key}[].{r.key}") for r in describe_config(item)]
    return rows


def _section_item(tp: Any) -> type | None:
    """The section type of a list-of-sections field (`tuple[CameraConfig, ...]`), else None."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list) and args and not _fixed_length(origin, args):
        return args[0] if _is_section(args[0]) else None
    return None


# ------------------------------------------------------------------------------------- redaction

#: What `redact_text` writes in place of a password, token or whole user-info part of a URI.
HIDDEN = "***"
#: Where a URI's user information starts: after `scheme://`.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
#: Query or fragment parameters that carry credentials (`?password=`, `&access_token=`, ...).
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;#][^=&\s]*(?:pass|pwd|token|secret|key|auth|sig|credential|session)[^=&\s]*=)"
    r"[^&\s#]*"
)
#: A run of text that may be one URI: only whitespace ends it, because a password written
#: unencoded may hold any other character ('/', '@', ':', quotes, ...).
_TOKEN = re.compile(r"\S+")


def _hide_user_info(token: str) -> str:
    """Hides the user information of a URI in `token`: everything up to the last '@' after the
    scheme, so that a password holding '/', '@' or ':' is hidden whole. Without a scheme, only
    `user:password@host` counts (an e-mail address has no ':' before its '@')."""
    at = token.rfind("@")
    if at < 0:
        return token
    # the scheme nearest before the '@': a URI nested in another's query is the one it belongs to
    scheme = next((m for m in reversed(list(_SCHEME.finditer(token, 0, at)))), None)
    start = scheme.end() if scheme else 0
    if at == start:
        return token
    info = token[start:at]
    user, colon, _ = info.partition(":")
    if not colon and (scheme is None or "/" in info):  # no password; '/' before '@': a path
        return token
    shown = f"{user}:{HIDDEN}" if colon and user and "/" not in user else HIDDEN
    return token[:start] + shown + token[at:]


def _redact_token(token: str) -> str:
    hidden = _SECRET_PARAMETER.sub(rf"\1{HIDDEN}", _hide_user_info(token))
    decoded = hidden
    for _ in range(3):  # percent-encoded (even twice) URIs and parameter names are found too
        if "%" not in decoded:
            break
        decoded = unquote(decoded)
        again = _SECRET_PARAMETER.sub(rf"\1{HIDDEN}", _hide_user_info(decoded))
        if again != decoded:
            return again
    return hidden


def redact_text(text: str) -> str:
    """`text` with the credentials of every URI in it hidden.

    Hidden are a URI's user information (``rtsp://admin:p/w@d:1@cam/`` -> ``rtsp://admin:***@cam/``;
    a token without password: ``https://***@host``), the same without a scheme
    (``admin:pw@cam:554``), and the values of query parameters named like a credential
    (``?password=``, ``&token=``, ``&api_key=``), also where they are percent-encoded. When in
    doubt it hides more: an '@' in a path after a ':' hides what stands before it.

    Written here rather than with `urllib.parse.urlsplit`, which ends the user information at the
    first '/' and so shows the rest of a password that holds one.
    """
    if "@" not in text and "=" not in text and "%" not in text:
        return text
    return _TOKEN.sub(lambda m: _redact_token(m.group()), text)


def redact_values(value: Any) -> Any:
    """`value` (a JSON-like tree of dicts, lists and scalars) with `redact_text` applied to every
    string in it, keys included; for reports and files written for people to read."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {redact_values(k): redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(v) for v in value]
    return value
