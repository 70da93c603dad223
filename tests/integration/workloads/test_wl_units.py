"""The pure pieces of the workload simulation: hashes, parsing, filters, allocators, timers."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.clock import FakeClock
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.nodes import parse_node_spec
from servicegroup.kubesim.workloads.podhash import (
    SAFE_ALPHABET,
    fnv32a,
    revision_hash,
    template_hash,
)
from servicegroup.kubesim.workloads.podips import PodIPAllocator
from servicegroup.kubesim.workloads.queue import KeyQueue
from servicegroup.kubesim.workloads.scheduler import (
    NodeInfo,
    affinity_matches,
    static_filter,
    tolerates,
    unschedulable_message,
)
from servicegroup.kubesim.workloads.timers import TimerHeap

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
}


def test_fnv32a_matches_the_reference_vectors() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_template_hash_is_stable_and_safe() -> None:
    first = template_hash(TEMPLATE)
    assert first == template_hash({**TEMPLATE})
    assert 1 <= len(first) <= 10
    assert set(first) <= set(SAFE_ALPHABET)


def test_template_hash_ignores_its_own_label_and_changes_with_the_template() -> None:
    labelled = {
        **TEMPLATE,
        "metadata": {"labels": {"app": "web", "pod-template-hash": "xyz"}},
    }
    assert template_hash(labelled) == template_hash(TEMPLATE)
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "nginx:1.26"}]}}
    assert template_hash(changed) != template_hash(TEMPLATE)


def test_collision_count_changes_the_hash() -> None:
    assert template_hash(TEMPLATE, 1) != template_hash(TEMPLATE)
    assert template_hash(TEMPLATE, 0) == template_hash(TEMPLATE)
    assert revision_hash({"a": 1}, 2) != revision_hash({"a": 1})


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=5))
def test_template_hash_never_depends_on_key_order(labels: dict[str, str]) -> None:
    forward = {"metadata": {"labels": dict(labels)}, "spec": {}}
    backward = {"spec": {}, "metadata": {"labels": dict(reversed(list(labels.items())))}}
    assert template_hash(forward) == template_hash(backward)


def test_parse_node_spec() -> None:
    spec = parse_node_spec("edge-1:zone=a, unit=x")
    assert spec.name == "edge-1"
    assert dict(spec.labels) == {"zone": "a", "unit": "x"}
    assert parse_node_spec("plain").labels == {}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_node_spec("n:novalue")
    with pytest.raises(ValueError, match="twice"):
        parse_node_spec("n:a=1,a=2")
    with pytest.raises(ValueError, match="name is required"):
        parse_node_spec(":a=1")


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, True),
        ({"key": "k", "value": "v"}, True),
        ({"key": "k", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),
        ({"key": "k", "value": "other"}, False),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerations(toleration: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, {"key": "k", "value": "v", "effect": "NoSchedule"}) is expected


def _node(name: str = "n", **labels: str) -> NodeInfo:
    return NodeInfo(name=name, labels=labels, taints=(), unschedulable=False, max_pods=110)


def test_required_node_affinity_terms_are_ored_and_expressions_anded() -> None:
    spec = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                                {"key": "gpu", "operator": "DoesNotExist"},
                            ]
                        },
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["x"]}
                            ]
                        },
                    ]
                }
            }
        }
    }
    assert affinity_matches(spec, _node(zone="a"))
    assert not affinity_matches(spec, _node(zone="a", gpu="1"))
    assert not affinity_matches(spec, _node(zone="c"))
    assert affinity_matches(spec, _node("x", zone="c"))
    numeric = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}
                    ]
                }
            }
        }
    }
    assert affinity_matches(numeric, _node(cores="8"))
    assert not affinity_matches(numeric, _node(cores="2"))


def test_filters_run_in_upstream_order() -> None:
    tainted = NodeInfo(
        "t", {}, ({"key": "dedicated", "value": "db", "effect": "NoSchedule"},), True, 110
    )
    spec = {"nodeSelector": {"zone": "a"}}
    assert static_filter(spec, tainted) == "node(s) were unschedulable"
    uncordoned = tainted._replace(unschedulable=False)
    assert static_filter(spec, uncordoned) == "node(s) had untolerated taint {dedicated: db}"
    assert static_filter(spec, _node()) == "node(s) didn't match Pod's node affinity/selector"
    assert static_filter(spec, _node(zone="a")) is None


def test_unschedulable_message_is_kube_schedulers() -> None:
    reasons = Counter(
        {
            "node(s) didn't match Pod's node affinity/selector": 2,
            "node(s) were unschedulable": 1,
        }
    )
    assert unschedulable_message(3, reasons) == (
        "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) were unschedulable. preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling."
    )
    assert unschedulable_message(0, Counter()) == "no nodes available to schedule pods"


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (2, 10, True, 2),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("0%", 4, True, 0),
        ("3", 1, False, 3),
    ],
)
def test_int_or_percent(value: int | str, total: int, round_up: bool, expected: int) -> None:
    assert objects.int_or_percent(value, total, round_up=round_up) == expected


def test_pod_ips_are_unique_stable_and_released() -> None:
    ips = PodIPAllocator()
    first = ips.allocate("10.244.7.0/24", uid="a")
    second = ips.allocate("10.244.7.0/24", uid="b")
    assert first == "10.244.7.2"
    assert second == "10.244.7.3"
    assert ips.allocate("10.244.7.0/24", uid="a") == first
    ips.release("a")
    assert ips.in_use("10.244.7.0/24") == 1
    # A freed address is not handed out again at once.
    assert ips.allocate("10.244.7.0/24", uid="c") == "10.244.7.4"
    assert ips.reserve("10.244.7.0/24", "10.244.7.3", uid="other") is False
    assert ips.reserve("10.244.7.0/24", "10.244.9.9", uid="x") is False


def test_a_full_block_yields_no_address() -> None:
    ips = PodIPAllocator()
    got = [ips.allocate("10.0.0.0/29", uid=str(i)) for i in range(6)]
    assert got[:5] == [f"10.0.0.{n}" for n in range(2, 7)]
    assert got[5] is None


async def test_timer_heap_fires_on_the_fake_clock_in_deadline_order() -> None:
    clock = FakeClock()
    timers = TimerHeap(clock=clock)
    fired: list[str] = []
    async with asyncio.TaskGroup() as tasks:
        runner = tasks.create_task(timers.run(), name="wl-test-timers")
        timers.call_later(5, lambda: fired.append("late"))
        await asyncio.sleep(0)
        # An earlier deadline scheduled while the runner sleeps on a later one still wins.
        timers.call_later(1, lambda: fired.append("early"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert fired == []
        clock.advance(1)
        await _until(lambda: fired == ["early"])
        clock.advance(4)
        await _until(lambda: fired == ["early", "late"])
        runner.cancel()


async def test_key_queue_collapses_keys_and_keeps_the_earliest_delay() -> None:
    clock = FakeClock()
    timers = TimerHeap(clock=clock)
    queue: KeyQueue[str] = KeyQueue(timers=timers)
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert queue.drain() == ["a", "b"]
    queue.add_after("c", 10)
    queue.add_after("c", 2)
    queue.add_after("c", 5)
    assert queue.delayed == 1
    clock.advance(2)
    assert timers.fire_due() == 1
    assert queue.drain() == ["c"]
    clock.advance(10)
    timers.fire_due()
    assert queue.drain() == []


async def _until(predicate: object) -> None:
    for _ in range(200):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")
