"""Messages: what is published follows the shipped JSON Schemas and decodes back exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.messages.encoding import (
    CLOSED_SCHEMA,
    EMBEDDING_SCHEMA,
    LINK_SCHEMA,
    MessageError,
    closed_from_dict,
    closed_message,
    decode,
    embedding_from_dict,
    embedding_message,
    link_from_dict,
    link_message,
    schema_document,
    validate,
)
from pipeline.messages.types import ClipEmbedding, IdentityLink, TrackletClosed

LINK = IdentityLink("ab12-7", "cam-2", 4, "cam-2.x.9", 1_700_000_000.5, 1_700_000_003.25, 0.81)
NEW = IdentityLink("ab12-8", "cam-1", 1, "cam-1.x.1", 1_700_000_000.0, 1_700_000_001.0)
#: A new identity whose best candidate was refused (e.g. seen elsewhere at the same time).
REFUSED = IdentityLink("ab12-9", "cam-1", 2, "cam-1.x.2", 1_700_000_000.0, 1_700_000_001.0,
                       None, 0.88, "ab12-7")  # fmt: skip


def embedding(vector: np.ndarray | None = None) -> ClipEmbedding:
    vector = (
        np.random.default_rng(0).standard_normal(64).astype(np.float32)
        if vector is None
        else vector
    )
    return ClipEmbedding("cam-3", 2, "cam-3.x.4", 10, 17, 1_700_000_001.0, 1_700_000_001.7,
                         vector, "ap3d_r18:demo.pt")  # fmt: skip


@pytest.mark.parametrize("link", [LINK, NEW, REFUSED])
def test_link_message_follows_its_schema_and_round_trips(link):
    message = link_message(link, produced_at=1_700_000_004.0)
    assert (message.kind, message.key, message.camera_id) == (
        "link",
        link.global_id,
        link.camera_id,
    )
    assert message.event_id == link.event_id and message.frame_time == link.end_time
    document = decode(message.value)
    validate(document)
    assert document["schema"] == LINK_SCHEMA and document["event_id"] == link.event_id
    assert document["new_identity"] is (link.similarity is None)
    assert link_from_dict(document) == link


def test_embedding_message_is_exact_and_keyed_by_camera():
    source = embedding()
    message = embedding_message(source, produced_at=1.0)
    assert (message.kind, message.key, message.event_id) == ("embedding", "cam-3", source.event_id)
    document = decode(message.value)
    validate(document)
    assert document["schema"] == EMBEDDING_SCHEMA and document["dim"] == 64
    back = embedding_from_dict(document)
    np.testing.assert_array_equal(back.embedding, source.embedding)  # bit-exact float32
    assert (back.tracklet_id, back.start_frame, back.end_frame, back.model) == (
        "cam-3.x.4",
        10,
        17,
        "ap3d_r18:demo.pt",
    )
    assert back.event_id == source.event_id


def test_event_ids_are_deterministic_and_distinct():
    again = IdentityLink(*[getattr(LINK, f) for f in
                           ("global_id", "camera_id", "track_id", "tracklet_id", "start_time",
                            "end_time", "similarity")])  # fmt: skip
    assert again.event_id == LINK.event_id
    assert NEW.event_id != LINK.event_id
    later = embedding_message(embedding(), produced_at=99.0)
    assert later.event_id == embedding_message(embedding(), produced_at=1.0).event_id


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.pop("global_id"), "global_id"),
        (lambda d: d.update(similarity=1.5), "similarity"),
        (lambda d: d.update(camera_id="cam 1"), "camera_id"),
        (lambda d: d.update(extra=1), "Additional properties"),
        (lambda d: d.update(event_id="not-a-uuid"), "event_id"),
    ],
)
def test_schema_validation_names_the_problem(change, where):
    document = decode(link_message(LINK).value)
    change(document)
    with pytest.raises(MessageError, match=where):
        validate(document)


def test_bad_bodies_are_message_errors():
    with pytest.raises(MessageError, match="not a JSON document"):
        decode(b"\xff{")
    with pytest.raises(MessageError, match="expected a JSON object"):
        decode(b"[1, 2]")
    with pytest.raises(MessageError, match="schema 'other/1'"):
        decode(json.dumps({"schema": "other/1"}))
    document = decode(embedding_message(embedding()).value)
    with pytest.raises(MessageError, match=r"expected a reidstream\.identity_link/1 document"):
        link_from_dict(document)
    with pytest.raises(MessageError, match="dim says 63"):
        embedding_from_dict(document | {"dim": 63})
    nan = np.full(64, np.nan, np.float32).tobytes()
    import base64

    with pytest.raises(MessageError, match="finite") as caught:
        embedding_from_dict(document | {"embedding": base64.b64encode(nan).decode()})
    assert caught.value.reason == "implausible_value"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"\xff{", "undecodable"),
        (b'{"schema": ', "undecodable"),
        (b"[1, 2]", "undecodable"),
        (b'{"schema": "other/1"}', "schema"),
        (b'{"schema": "reidstream.tracklet_closed/1", "last_seen": NaN}', "implausible_value"),
        (
            b'{"schema": "reidstream.tracklet_closed/1", "last_seen": -Infinity}',
            "implausible_value",
        ),
    ],
)
def test_a_body_that_cannot_be_decoded_says_why(value, reason):
    with pytest.raises(MessageError) as caught:
        decode(value)
    assert caught.value.reason == reason


def test_documents_that_break_their_schema_or_contradict_themselves_say_why():
    document = decode(embedding_message(embedding()).value)
    for change in ({"event_id": None}, {"track_id": "4"}, {"dim": 1.5}):
        with pytest.raises(MessageError) as caught:
            validate(document | change)
        assert caught.value.reason == "schema", change
    missing = {k: v for k, v in document.items() if k != "event_id"}
    with pytest.raises(MessageError, match="event_id") as caught:
        validate(missing)
    assert caught.value.reason == "schema"
    with pytest.raises(MessageError) as caught:
        embedding_from_dict(document | {"end_time": document["start_time"] - 1})
    assert caught.value.reason == "invalid"
    with pytest.raises(MessageError) as caught:
        link_from_dict(document)
    assert caught.value.reason == "schema"


def test_schemas_ship_in_the_package_and_name_themselves():
    for name in (LINK_SCHEMA, EMBEDDING_SCHEMA, CLOSED_SCHEMA):
        schema = schema_document(name)
        assert schema["title"] == name
        assert schema["properties"]["schema"] == {"const": name}
        optional = {"best_similarity", "best_candidate"} if name == LINK_SCHEMA else set()
        assert set(schema["required"]) == set(schema["properties"]) - optional


def test_links_without_the_best_candidate_still_validate_and_decode():
    """Links of producers from before best_similarity existed stay valid."""
    document = decode(link_message(LINK).value)
    assert document["best_similarity"] is None and document["best_candidate"] is None
    del document["best_similarity"], document["best_candidate"]
    validate(document)
    assert link_from_dict(document) == LINK


def test_a_new_identity_carries_its_refused_best_candidate():
    document = decode(link_message(REFUSED).value)
    assert document["new_identity"] is True and document["similarity"] is None
    assert (document["best_similarity"], document["best_candidate"]) == (0.88, "ab12-7")
    with pytest.raises(MessageError, match="best_similarity"):
        validate(document | {"best_similarity": 1.5})
    with pytest.raises(MessageError, match="both set or both None"):
        link_from_dict(document | {"best_candidate": None})


def test_tracklet_closed_message_round_trips_keyed_by_camera():
    closed = TrackletClosed("cam-3", 2, "cam-3.x.4", 1_700_000_009.5)
    message = closed_message(closed, produced_at=1.0)
    assert (message.kind, message.key, message.event_id) == ("closed", "cam-3", closed.event_id)
    document = decode(message.value)
    validate(document)
    assert document["schema"] == CLOSED_SCHEMA
    assert closed_from_dict(document) == closed
    assert closed.event_id == TrackletClosed("cam-3", 2, "cam-3.x.4", 5.0).event_id  # once


def test_an_embedding_carries_where_its_tracklet_started():
    source = embedding()
    early = ClipEmbedding(**{**_fields(source), "tracklet_start": 1_700_000_000.2})
    back = embedding_from_dict(decode(embedding_message(early).value))
    assert back.tracklet_start == 1_700_000_000.2
    assert embedding().tracklet_start == embedding().start_time  # none given: the clip's start
    with pytest.raises(ValueError, match="tracklet_start"):
        ClipEmbedding(**{**_fields(source), "tracklet_start": source.start_time + 1})


def _fields(e: ClipEmbedding) -> dict:
    names = ("camera_id", "track_id", "tracklet_id", "start_frame", "end_frame", "start_time",
             "end_time", "embedding", "model")  # fmt: skip
    return {n: getattr(e, n) for n in names}
