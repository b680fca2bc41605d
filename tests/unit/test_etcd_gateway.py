"""Pure helpers of the etcd adapter's JSON-gateway layer (no etcd, no IO)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw.etcd import WatchEvent, WatchEventType
from rpcfw.etcd._gateway import (
    EndpointRotation,
    GatewayError,
    JsonObjectStream,
    as_int,
    b64,
    decode_b64,
    normalize_endpoint,
    parse_keepalive,
    parse_watch,
    prefix_range_end,
    unwrap_stream_message,
)


def test_as_int_reads_int64_strings_and_absent_defaults() -> None:
    assert as_int("7587883254938171906") == 7587883254938171906
    assert as_int(12) == 12
    assert as_int(None) == 0
    assert as_int("") == 0
    with pytest.raises(ValueError):
        as_int(1.5)


def test_base64_round_trip_and_absent_is_empty() -> None:
    assert decode_b64(b64(b"\x00\xffkey")) == b"\x00\xffkey"
    assert b64("/svc/a") == "L3N2Yy9h"
    assert decode_b64(None) == b""
    assert decode_b64("") == b""
    with pytest.raises(ValueError):
        decode_b64("not base64!")


def test_prefix_range_end() -> None:
    assert prefix_range_end(b"/svc/") == b"/svc0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\0"
    assert prefix_range_end(b"") == b"\0"


def test_normalize_endpoint() -> None:
    assert normalize_endpoint("127.0.0.1:2379") == "127.0.0.1:2379"
    assert normalize_endpoint(" http://127.0.0.1:2379/ ") == "127.0.0.1:2379"
    for bad in ("127.0.0.1", "https://h:1", "h:port", ":2379"):
        with pytest.raises(ValueError):
            normalize_endpoint(bad)


def test_endpoint_rotation_sticks_to_working_endpoint_and_moves_on_failure() -> None:
    rot = EndpointRotation(["a:1", "b:2", "c:3", "a:1"])
    assert rot.endpoints == ("a:1", "b:2", "c:3")
    assert rot.order() == ["a:1", "b:2", "c:3"]
    rot.failed("a:1")
    assert rot.order() == ["b:2", "c:3", "a:1"]
    rot.failed("a:1")  # not current: no change
    assert rot.current == "b:2"
    rot.failed("b:2")
    rot.failed("c:3")
    assert rot.current == "a:1"  # wraps around
    rot.succeeded("c:3")
    assert rot.order() == ["c:3", "a:1", "b:2"]
    with pytest.raises(ValueError):
        EndpointRotation([])


def test_json_stream_splits_back_to_back_objects_in_one_chunk() -> None:
    stream = JsonObjectStream()
    assert stream.feed(b'{"a":1}{"b":{"c":[1,{"d":2}]}}\n{"e":"}{\\"x"}') == [
        {"a": 1},
        {"b": {"c": [1, {"d": 2}]}},
        {"e": '}{"x'},
    ]
    assert not stream.pending


def test_json_stream_rejects_garbage_between_objects() -> None:
    with pytest.raises(ValueError):
        JsonObjectStream().feed(b'{"a":1}x')


@given(
    objs=st.lists(
        st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8))),
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    sep=st.sampled_from(["", "\n", " \r\n"]),
)
def test_json_stream_any_chunking_gives_the_same_objects(
    objs: list[dict[str, object]], cuts: list[int], sep: str
) -> None:
    data = sep.join(json.dumps(o, ensure_ascii=False) for o in objs).encode()
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    stream = JsonObjectStream()
    out = [obj for chunk in chunks for obj in stream.feed(chunk)]
    assert out == objs
    assert not stream.pending


def test_unwrap_stream_message_result_and_error() -> None:
    assert unwrap_stream_message({"result": {"TTL": "2"}}) == {"TTL": "2"}
    with pytest.raises(GatewayError) as info:
        unwrap_stream_message(
            {"error": {"grpc_code": 14, "http_code": 503, "message": "transport is closing"}}
        )
    assert info.value.unavailable
    with pytest.raises(GatewayError) as info:
        unwrap_stream_message({"error": {"grpc_code": 3, "http_code": 400, "message": "bad"}})
    assert not info.value.unavailable


def test_parse_watch_events_and_defaults() -> None:
    msg = parse_watch(
        {
            "header": {"revision": "9"},
            "events": [
                {"kv": {"key": b64("/s/a"), "value": b64("v"), "mod_revision": "8"}},
                {"type": "DELETE", "kv": {"key": b64("/s/b"), "mod_revision": "9"}},
            ],
        }
    )
    assert msg.revision == 9
    assert not msg.created and not msg.canceled and msg.compact_revision == 0
    assert msg.events == [
        WatchEvent(WatchEventType.PUT, "/s/a", b"v", 8),
        WatchEvent(WatchEventType.DELETE, "/s/b", b"", 9),
    ]


def test_parse_watch_created_and_compacted() -> None:
    created = parse_watch({"header": {"revision": "3"}, "created": True})
    assert created.created and created.events == []
    compacted = parse_watch({"header": {}, "canceled": True, "compact_revision": "4"})
    assert compacted.canceled and compacted.compact_revision == 4


def test_parse_keepalive_ttl_absent_means_lease_gone() -> None:
    assert parse_keepalive({"ID": "1", "TTL": "2"}) == 2
    assert parse_keepalive({"ID": "1"}) == 0
