"""The wrapper's watch cache: its own RVs, exact resumption, 410, selector transitions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.kube.resources import ENDPOINTSLICES, SERVICES
from servicegroup.wrapper.cache import ResourceExpired, Revisions, WatchCache, wall_clock_start
from servicegroup.wrapper.selectors import Predicate, parse_label_selector

START = 1_000


def cache(capacity: int = 100, revisions: Revisions | None = None) -> WatchCache:
    return WatchCache(
        ref=ENDPOINTSLICES, revisions=revisions or Revisions(start=START), capacity=capacity
    )


def obj(name: str, version: int = 0, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": f"upstream-{version}",
            "labels": labels or {},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.0.0.{version}"]}],
    }


def decode(lines: list[tuple[str, bytes]]) -> list[tuple[str, str, str]]:
    out = []
    for kind, line in lines:
        event = orjson.loads(line)
        assert event["type"] == kind
        meta = event["object"]["metadata"]
        out.append((kind, meta["name"], meta["resourceVersion"]))
    return out


def test_changes_get_our_own_increasing_rvs_and_unchanged_forms_record_nothing() -> None:
    c = cache()
    first = c.upsert("ns/a", obj("a", 1))
    assert first is not None and first.rv == START + 1 and first.type == "ADDED"
    served = c.get("ns/a")
    assert served is not None
    assert served["metadata"]["resourceVersion"] == str(START + 1)
    assert list(served)[:3] == ["kind", "apiVersion", "metadata"]
    # A new upstream RV with the same content is not a change of the served form.
    same = obj("a", 1)
    same["metadata"]["resourceVersion"] = "upstream-99"
    assert c.upsert("ns/a", same) is None
    second = c.upsert("ns/a", obj("a", 2))
    assert second is not None and second.type == "MODIFIED" and second.rv == START + 2
    assert c.delete("ns/a") is not None
    assert c.delete("ns/a") is None
    assert c.resource_version == START + 3


def test_revisions_are_shared_across_resources() -> None:
    revisions = Revisions(start=START)
    slices = cache(revisions=revisions)
    services = WatchCache(ref=SERVICES, revisions=revisions)
    slices.upsert("ns/a", obj("a"))
    services.upsert("ns/s", {"metadata": {"name": "s", "namespace": "ns"}})
    assert slices.resource_version == services.resource_version == START + 2


def test_wall_clock_start_is_above_any_realistic_etcd_revision() -> None:
    assert wall_clock_start() > 1_600_000_000_000_000


def test_watch_resumed_from_a_list_rv_gets_exactly_the_missed_events() -> None:
    c = cache()
    c.upsert("ns/a", obj("a", 1))
    listed_rv = c.resource_version
    c.upsert("ns/b", obj("b", 1))
    c.upsert("ns/a", obj("a", 2))
    c.delete("ns/b")
    watcher = c.watch(resource_version=str(listed_rv), predicate=Predicate(), send_initial=None)
    assert watcher.take_initial() == []
    assert decode(watcher.take()) == [
        ("ADDED", "b", str(START + 2)),
        ("MODIFIED", "a", str(START + 3)),
        ("DELETED", "b", str(START + 4)),
    ]
    assert watcher.take() == []
    c.upsert("ns/c", obj("c"))
    assert watcher.pending
    assert decode(watcher.take()) == [("ADDED", "c", str(START + 5))]


def test_watch_from_zero_sends_the_state_oldest_first() -> None:
    c = cache()
    c.upsert("ns/a", obj("a", 1))
    c.upsert("ns/b", obj("b", 1))
    c.upsert("ns/a", obj("a", 2))  # a is now newer than b
    watcher = c.watch(resource_version="0", predicate=Predicate(), send_initial=None)
    names = [orjson.loads(line)["object"]["metadata"]["name"] for line in watcher.take_initial()]
    assert names == ["b", "a"]
    assert watcher.take() == []
    assert watcher.initial_rv == c.resource_version


@pytest.mark.parametrize("rv", [str(START - 1), str(START + 10)])
def test_rvs_below_the_floor_or_never_issued_are_expired(rv: str) -> None:
    c = cache()
    c.upsert("ns/a", obj("a"))
    with pytest.raises(ResourceExpired) as info:
        c.watch(resource_version=rv, predicate=Predicate(), send_initial=None)
    assert "too old resource version" in str(info.value)


def test_malformed_rv_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid resource version"):
        cache().watch(resource_version="abc", predicate=Predicate(), send_initial=None)


def test_compaction_raises_the_floor_and_keeps_capacity_events() -> None:
    c = cache(capacity=3)
    for i in range(6):
        c.upsert(f"ns/o{i}", obj(f"o{i}"))
    # 6 events reached 2x capacity: the oldest 3 went, the floor is the last dropped RV.
    assert c.floor == START + 3
    with pytest.raises(ResourceExpired):
        c.watch(resource_version=str(START + 2), predicate=Predicate(), send_initial=None)
    watcher = c.watch(resource_version=str(START + 3), predicate=Predicate(), send_initial=None)
    assert [name for _, name, _ in decode(watcher.take())] == ["o3", "o4", "o5"]


def test_a_watcher_behind_the_compacted_log_is_closed() -> None:
    c = cache(capacity=2)
    watcher = c.watch(resource_version="", predicate=Predicate(), send_initial=False)
    for i in range(4):
        c.upsert(f"ns/o{i}", obj(f"o{i}"))
    assert watcher.take() == []
    assert watcher.closed and watcher.behind
    assert c.watchers == 0


def test_selector_transitions_follow_the_api_server() -> None:
    c = cache()
    predicate = Predicate(labels=parse_label_selector("app=web"))
    watcher = c.watch(resource_version="", predicate=predicate, send_initial=False)
    c.upsert("ns/a", obj("a", 1, {"app": "db"}))  # never matched: nothing
    c.upsert("ns/a", obj("a", 2, {"app": "web"}))  # starts matching: ADDED
    c.upsert("ns/a", obj("a", 3, {"app": "web"}))  # still matching: MODIFIED
    c.upsert("ns/a", obj("a", 4, {"app": "db"}))  # stops matching: DELETED, old content
    events = watcher.take()
    assert decode(events) == [
        ("ADDED", "a", str(START + 2)),
        ("MODIFIED", "a", str(START + 3)),
        ("DELETED", "a", str(START + 4)),
    ]
    deleted = orjson.loads(events[-1][1])["object"]
    assert deleted["metadata"]["labels"] == {"app": "web"}
    assert deleted["endpoints"] == [{"addresses": ["10.0.0.3"]}]


def test_send_initial_events_from_an_rv_serves_the_current_state() -> None:
    c = cache()
    c.upsert("ns/a", obj("a"))
    rv = c.resource_version
    c.upsert("ns/b", obj("b"))
    watcher = c.watch(resource_version=str(rv), predicate=Predicate(), send_initial=True)
    assert len(watcher.take_initial()) == 2
    assert watcher.take() == []


def test_close_wakes_and_forgets_every_watcher() -> None:
    c = cache()
    watchers = [
        c.watch(resource_version="", predicate=Predicate(), send_initial=False) for _ in range(3)
    ]
    assert c.watchers == 3
    c.close()
    assert c.watchers == 0
    assert all(w.closed and w.pending for w in watchers)


_ops = st.lists(
    st.tuples(st.sampled_from(["up", "del"]), st.sampled_from("abcd"), st.integers(0, 3)),
    max_size=30,
)


@settings(max_examples=60)
@given(before=_ops, after=_ops, capacity=st.integers(1, 8))
def test_list_plus_resumed_watch_always_equals_the_final_state(
    before: list[tuple[str, str, int]], after: list[tuple[str, str, int]], capacity: int
) -> None:
    c = cache(capacity=capacity)

    def apply(ops: list[tuple[str, str, int]]) -> None:
        for op, name, version in ops:
            if op == "up":
                c.upsert(f"ns/{name}", obj(name, version))
            else:
                c.delete(f"ns/{name}")

    apply(before)
    state = {o["metadata"]["name"]: o for o in c.objects()}
    listed = c.resource_version
    apply(after)
    try:
        watcher = c.watch(resource_version=str(listed), predicate=Predicate(), send_initial=None)
    except ResourceExpired:
        assert listed < c.floor  # only when the log really lost events after `listed`
        return
    for _, line in watcher.take():
        event = orjson.loads(line)
        name = event["object"]["metadata"]["name"]
        if event["type"] == "DELETED":
            del state[name]
        else:
            state[name] = event["object"]
    assert state == {o["metadata"]["name"]: o for o in c.objects()}
