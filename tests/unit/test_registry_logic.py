"""Registry key layout and the instance tracker (pure)."""

from __future__ import annotations

import pytest

from rpcfw.etcd.api import KeyValue, WatchEvent, WatchEventType
from rpcfw.registry import Instance, InstanceTracker, instance_key, parse_instance, service_prefix
from rpcfw.registry.base import Registration

P = "/rpcfw/services"


def inst(i: int, **kw: object) -> Instance:
    return Instance("echo.v1.Echo", f"id{i}", "127.0.0.1", 5000 + i, **kw)  # type: ignore[arg-type]


def test_instance_round_trips_through_its_key_and_json() -> None:
    a = inst(1, weight=3, zone="z1", version="v2", metadata={"k": "v"})
    key = instance_key(P, a)
    assert key == "/rpcfw/services/echo.v1.Echo/id1"
    assert key.startswith(service_prefix(P, "echo.v1.Echo"))
    assert parse_instance(P, key, a.to_json()) == a
    endpoint = a.endpoint()
    assert (endpoint.host, endpoint.port, endpoint.weight) == ("127.0.0.1", 5001, 3)
    assert endpoint.attributes["zone"] == "z1"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("/other/echo/id", b'{"address":"h","port":1}', "is not under"),
        ("/rpcfw/services/noid", b'{"address":"h","port":1}', "expected"),
        ("/rpcfw/services/s/id", b"not json", "malformed"),
        ("/rpcfw/services/s/id", b'{"address":"h"}', "malformed"),
        ("/rpcfw/services/s/id", b'{"address":"h","port":0}', "bad address"),
    ],
)
def test_malformed_registry_entry_is_rejected_with_the_reason(
    key: str, value: bytes, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_instance(P, key, value)


def kv(i: int, rev: int, **kw: object) -> KeyValue:
    a = inst(i, **kw)
    return KeyValue(instance_key(P, a), a.to_json(), rev)


def test_tracker_snapshot_then_events_gives_the_diff_and_keeps_the_revision() -> None:
    tracker = InstanceTracker(P)
    diff = tracker.reset(10, [kv(1, 5), kv(2, 6)])
    assert len(diff.added) == 2 and tracker.revision == 10
    a3 = inst(3)
    a1w = inst(1, weight=5)
    diff = tracker.apply(
        [
            WatchEvent(WatchEventType.PUT, instance_key(P, a3), a3.to_json(), 11),
            WatchEvent(WatchEventType.PUT, instance_key(P, a1w), a1w.to_json(), 12),
            WatchEvent(WatchEventType.DELETE, instance_key(P, inst(2)), b"", 13),
        ]
    )
    assert diff.added == (instance_key(P, a3),)
    assert diff.updated == (instance_key(P, a1w),)
    assert diff.removed == (instance_key(P, inst(2)),)
    assert tracker.revision == 13
    assert [e.port for e in tracker.endpoints()] == [5001, 5003]


def test_tracker_ignores_replayed_events_and_bad_entries() -> None:
    tracker = InstanceTracker(P)
    tracker.reset(10, [kv(1, 5), KeyValue("/rpcfw/services/echo.v1.Echo/bad", b"{", 6)])
    assert len(tracker.instances) == 1
    stale = WatchEvent(WatchEventType.DELETE, instance_key(P, inst(1)), b"", 9)
    assert not tracker.apply([stale])
    assert len(tracker.instances) == 1
    assert not tracker.reset(10, [kv(1, 5)])  # same snapshot again: nothing changed


def test_registration_builds_one_instance_per_service() -> None:
    reg = Registration(weight=2, zone="z", advertise_host="10.1.2.3")
    out = reg.instances(["a.A", "b.B"], "0.0.0.0", 7000)
    assert [(i.service, i.address, i.port, i.instance_id, i.weight) for i in out] == [
        ("a.A", "10.1.2.3", 7000, "10.1.2.3:7000", 2),
        ("b.B", "10.1.2.3", 7000, "10.1.2.3:7000", 2),
    ]
