"""The published messages: versioned JSON documents, their JSON Schemas, encoding and decoding.

    IdentityLink  ──link_message──▶       Message(kind="link", key=global_id, value=JSON bytes)
    ClipEmbedding ──embedding_message──▶  Message(kind="embedding", key=camera_id, ...)
    TrackletClosed ──closed_message──▶    Message(kind="closed", key=camera_id, ...)
    bytes ──decode──▶ dict (schema named in its "schema" field) ──link_from_dict──▶ IdentityLink
                                                               ──embedding_from_dict──▶ ...

The schemas ship in the package (`pipeline/messages/schemas/*.json`, `schema_document(name)`)
and are the contract for consumers: `reidstream.identity_link/1`, and between workers and
matcher `reidstream.tracklet_embedding/1` and `reidstream.tracklet_closed/1`. A version is never
changed in place; an incompatible change gets a new version number beside the old one. Every
message carries a deterministic `event_id` (see `pipeline.messages.types`): delivery is
at-least-once and consumers drop duplicates by it. Embeddings travel as base64 little-endian
float32 (exact, and a third of the size of a JSON number list).
"""

from __future__ import annotations

import base64
import functools
import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import numpy as np

from pipeline.messages.types import ClipEmbedding, IdentityLink, TrackletClosed

__all__ = [
    "CLOSED_SCHEMA",
    "EMBEDDING_SCHEMA",
    "LINK_SCHEMA",
    "REJECT_REASONS",
    "Message",
    "MessageError",
    "closed_from_dict",
    "closed_message",
    "decode",
    "embedding_from_dict",
    "embedding_message",
    "link_from_dict",
    "link_message",
    "schema_document",
    "validate",
]

LINK_SCHEMA = "reidstream.identity_link/1"
EMBEDDING_SCHEMA = "reidstream.tracklet_embedding/1"
CLOSED_SCHEMA = "reidstream.tracklet_closed/1"
#: Schema name -> file of `pipeline/messages/schemas`.
_SCHEMA_FILES = {
    LINK_SCHEMA: "identity_link-1.json",
    EMBEDDING_SCHEMA: "tracklet_embedding-1.json",
    CLOSED_SCHEMA: "tracklet_closed-1.json",
}

#: "link" goes to the links topic; "embedding" and "closed" to the embeddings topic.
Kind = Literal["link", "embedding", "closed"]


#: Why a record was rejected (the `reason` of `MessageError` and of the rejection metric):
#:   tombstone          a null value
#:   undecodable        not a UTF-8 JSON object
#:   schema             an unknown schema, or a document that breaks its JSON Schema (a missing
#:                      field such as event_id, a value of the wrong type, an unknown field)
#:   invalid            follows its schema, but its values contradict each other (an end before
#:                      its start, dim against the embedding's length, a zero embedding)
#:   implausible_value  a non-finite number, or an embedding that is not of unit length
#:   implausible_time   a capture time outside the window around the consumer's clock
#:   wrong_model        an embedding of another model or dimension than the configured ones
REJECT_REASONS = (
    "tombstone",
    "undecodable",
    "schema",
    "invalid",
    "implausible_value",
    "implausible_time",
    "wrong_model",
)


class MessageError(ValueError):
    """A message that cannot be used: not valid JSON, an unknown schema, a document that does
    not follow it, or (checked by its consumer) implausible values.

    Attributes:
        reason: One of `REJECT_REASONS`.
    """

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"reason: expected one of {', '.join(REJECT_REASONS)}, got {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    """One encoded message on its way to a sink.

    Attributes:
        kind: "link" (an identity link), "embedding" (a worker's clip embedding) or "closed" (a
            worker's end of a tracklet); the sink maps it to its topic.
        key: Partition key: the global id of a link, the camera id of an embedding.
        value: The JSON document, UTF-8.
        event_id: The document's deterministic id.
        camera_id: Camera the message is about (metric label).
        frame_time: Capture time of the newest frame behind the message (for the frame-to-link
            latency).
    """

    kind: Kind
    key: str
    value: bytes
    event_id: str
    camera_id: str
    frame_time: float


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def link_document(link: IdentityLink, *, produced_at: float | None = None) -> dict[str, Any]:
    """The `reidstream.identity_link/1` document of `link`."""
    return {
        "schema": LINK_SCHEMA,
        "event_id": link.event_id,
        "global_id": link.global_id,
        "camera_id": link.camera_id,
        "track_id": link.track_id,
        "tracklet_id": link.tracklet_id,
        "start_time": link.start_time,
        "end_time": link.end_time,
        "similarity": link.similarity,
        "new_identity": link.is_new_identity,
        "best_similarity": link.best_similarity,
        "best_candidate": link.best_candidate,
        "produced_at": time.time() if produced_at is None else produced_at,
    }


def link_message(link: IdentityLink, *, produced_at: float | None = None) -> Message:
    """`link` encoded for publishing, keyed by its global id."""
    return Message(
        kind="link",
        key=link.global_id,
        value=_dumps(link_document(link, produced_at=produced_at)),
        event_id=link.event_id,
        camera_id=link.camera_id,
        frame_time=link.end_time,
    )


def embedding_message(embedding: ClipEmbedding, *, produced_at: float | None = None) -> Message:
    """A clip embedding encoded for publishing, keyed by its camera id."""
    vector = np.ascontiguousarray(embedding.embedding, dtype="<f4")
    document = {
        "schema": EMBEDDING_SCHEMA,
        "event_id": embedding.event_id,
        "camera_id": embedding.camera_id,
        "track_id": embedding.track_id,
        "tracklet_id": embedding.tracklet_id,
        "tracklet_start": embedding.tracklet_start,
        "start_frame": embedding.start_frame,
        "end_frame": embedding.end_frame,
        "start_time": embedding.start_time,
        "end_time": embedding.end_time,
        "model": embedding.model,
        "dim": int(vector.size),
        "embedding": base64.b64encode(vector.tobytes()).decode("ascii"),
        "produced_at": time.time() if produced_at is None else produced_at,
    }
    return Message(
        kind="embedding",
        key=embedding.camera_id,
        value=_dumps(document),
        event_id=embedding.event_id,
        camera_id=embedding.camera_id,
        frame_time=embedding.end_time,
    )


def _non_finite(constant: str) -> float:
    # JSON has no NaN or Infinity; Python's parser accepts them unless told otherwise.
    raise MessageError(f"non-finite number {constant} (not JSON)", reason="implausible_value")


def decode(value: bytes | str | None) -> dict[str, Any]:
    """Parses a message body; it must be a JSON object naming a known schema.

    Raises:
        MessageError: A null value (a tombstone), not UTF-8 JSON, a NaN or Infinity, not an
            object, or no known ``schema`` field; its `reason` says which.
    """
    if value is None:
        raise MessageError("a null value (a tombstone)", reason="tombstone")
    try:
        document = json.loads(value, parse_constant=_non_finite)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        raise MessageError(f"not a JSON document: {e}", reason="undecodable") from e
    if not isinstance(document, dict):
        raise MessageError(
            f"expected a JSON object, got {type(document).__name__}", reason="undecodable"
        )
    if document.get("schema") not in _SCHEMA_FILES:
        raise MessageError(
            f"schema {document.get('schema')!r}: expected one of {', '.join(_SCHEMA_FILES)}",
            reason="schema",
        )
    return document


def link_from_dict(document: dict[str, Any]) -> IdentityLink:
    """The `IdentityLink` of a decoded `reidstream.identity_link/1` document.

    Raises:
        MessageError: Another schema, a missing field or an invalid value.
    """
    _expect(document, LINK_SCHEMA)
    try:
        return IdentityLink(
            global_id=document["global_id"],
            camera_id=document["camera_id"],
            track_id=document["track_id"],
            tracklet_id=document["tracklet_id"],
            start_time=document["start_time"],
            end_time=document["end_time"],
            similarity=document["similarity"],
            best_similarity=document.get("best_similarity"),
            best_candidate=document.get("best_candidate"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MessageError(f"invalid {LINK_SCHEMA} document: {e!r}") from e


def embedding_from_dict(document: dict[str, Any]) -> ClipEmbedding:
    """The `ClipEmbedding` of a decoded `reidstream.tracklet_embedding/1` document.

    Raises:
        MessageError: Another schema, a missing field, a bad encoding or an invalid value
            (including a non-finite embedding).
    """
    _expect(document, EMBEDDING_SCHEMA)
    try:
        raw = base64.b64decode(document["embedding"], validate=True)
        vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not np.isfinite(vector).all():
            raise MessageError(
                f"{EMBEDDING_SCHEMA}: the embedding holds non-finite values",
                reason="implausible_value",
            )
        if vector.size != document["dim"]:
            raise ValueError(f"embedding holds {vector.size} values, dim says {document['dim']}")
        return ClipEmbedding(
            camera_id=document["camera_id"],
            track_id=document["track_id"],
            tracklet_id=document["tracklet_id"],
            start_frame=document["start_frame"],
            end_frame=document["end_frame"],
            start_time=document["start_time"],
            end_time=document["end_time"],
            embedding=vector,
            model=document["model"],
            tracklet_start=document["tracklet_start"],
        )
    except MessageError:
        raise
    except (KeyError, TypeError, ValueError) as e:  # binascii.Error is a ValueError
        raise MessageError(f"invalid {EMBEDDING_SCHEMA} document: {e}") from e


def closed_message(closed: TrackletClosed, *, produced_at: float | None = None) -> Message:
    """A tracklet's end encoded for publishing, keyed by its camera id (after its embeddings)."""
    document = {
        "schema": CLOSED_SCHEMA,
        "event_id": closed.event_id,
        "camera_id": closed.camera_id,
        "track_id": closed.track_id,
        "tracklet_id": closed.tracklet_id,
        "last_seen": closed.last_seen,
        "produced_at": time.time() if produced_at is None else produced_at,
    }
    return Message(
        kind="closed",
        key=closed.camera_id,
        value=_dumps(document),
        event_id=closed.event_id,
        camera_id=closed.camera_id,
        frame_time=closed.last_seen,
    )


def closed_from_dict(document: dict[str, Any]) -> TrackletClosed:
    """The `TrackletClosed` of a decoded `reidstream.tracklet_closed/1` document."""
    _expect(document, CLOSED_SCHEMA)
    try:
        return TrackletClosed(
            camera_id=document["camera_id"],
            track_id=document["track_id"],
            tracklet_id=document["tracklet_id"],
            last_seen=document["last_seen"],
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MessageError(f"invalid {CLOSED_SCHEMA} document: {e!r}") from e


def _expect(document: dict[str, Any], schema: str) -> None:
    if document.get("schema") != schema:
        raise MessageError(
            f"expected a {schema} document, got schema {document.get('schema')!r}",
            reason="schema",
        )


@functools.cache
def schema_document(name: str) -> dict[str, Any]:
    """The JSON Schema of message schema `name` (e.g. ``"reidstream.identity_link/1"``)."""
    if name not in _SCHEMA_FILES:
        raise MessageError(
            f"unknown schema {name!r}: expected one of {', '.join(_SCHEMA_FILES)}", reason="schema"
        )
    text = (
        resources.files("pipeline.messages")
        .joinpath("schemas", _SCHEMA_FILES[name])
        .read_text("utf-8")
    )
    return json.loads(text)


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema  # the producer side never needs it; consumers that validate do

    return jsonschema.Draft202012Validator(
        schema_document(name), format_checker=jsonschema.FormatChecker()
    )


def validate(document: dict[str, Any]) -> None:
    """Checks a decoded document against the JSON Schema its ``schema`` field names.

    Raises:
        MessageError: The document breaks its schema; the message says where and how.
    """
    name = document.get("schema")
    if name not in _SCHEMA_FILES:
        raise MessageError(
            f"schema {name!r}: expected one of {', '.join(_SCHEMA_FILES)}", reason="schema"
        )
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(document)"
        raise MessageError(
            f"{name} document breaks its schema at {where}: {errors[0].message}", reason="schema"
        )
