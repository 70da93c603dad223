"""Ownership, the child transform, and write expectations."""

from __future__ import annotations

from typing import Any

from servicegroup.clock import FakeClock
from servicegroup.reconcilers.children import (
    CHILD_TRANSFORM,
    WriteExpectations,
    grid_controller_of,
)


def owned(kind: str = "DeploymentGrid", api_version: str = "superedge.io/v1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "d",
            "namespace": "ns",
            "resourceVersion": "3",
            "managedFields": [{"manager": "x"}],
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "1"},
                {
                    "apiVersion": api_version,
                    "kind": kind,
                    "name": "g",
                    "uid": "2",
                    "controller": True,
                },
            ],
        },
        "spec": {"replicas": 1},
        "status": {"replicas": 1},
    }


def test_grid_controller_checks_group_and_kind() -> None:
    assert grid_controller_of(owned())["name"] == "g"
    assert grid_controller_of(owned(), kind="DeploymentGrid")["uid"] == "2"
    assert grid_controller_of(owned(), kind="StatefulSetGrid") == {}
    assert grid_controller_of(owned(api_version="example.com/v1")) == {}
    assert grid_controller_of(owned(kind="ReplicaSet")) == {}
    assert grid_controller_of({"metadata": {}}) == {}


def test_child_transform_keeps_grid_children_whole_and_trims_the_rest() -> None:
    ours = CHILD_TRANSFORM(owned())
    assert ours["spec"] == {"replicas": 1} and "status" in ours
    assert "managedFields" not in ours["metadata"]
    foreign = CHILD_TRANSFORM(owned(api_version="example.com/v1"))
    assert set(foreign) == {"apiVersion", "kind", "metadata"}
    assert "managedFields" not in foreign["metadata"]
    assert foreign["metadata"]["ownerReferences"]  # enough to see who controls it
    original = owned()
    CHILD_TRANSFORM(original)
    assert "managedFields" in original["metadata"]  # never mutates its input


def obj(rv: str) -> dict[str, Any]:
    return {"metadata": {"name": "x", "resourceVersion": rv}}


def test_expectations_answer_our_write_until_the_cache_moves() -> None:
    clock = FakeClock()
    e = WriteExpectations(clock=clock, ttl=30.0)
    cached = obj("1")
    after = obj("2")
    e.wrote("ns/x", before=cached, after=after)
    assert e.view("ns/x", cached) is after  # cache still shows the old version
    assert e.view("ns/x", obj("2")) == obj("2")  # cache caught up: the cache again
    assert len(e) == 0

    # Created (absent before): absent in the cache means "not seen yet".
    e.wrote("ns/y", before=None, after=after)
    assert e.view("ns/y", None) is after
    # Deleted: the cache still showing the object means "not seen yet".
    e.deleted("ns/z", before=cached)
    assert e.view("ns/z", cached) is None
    assert e.view("ns/z", None) is None and len(e) == 1

    # Expectations expire: a lost event cannot hide the cache forever.
    clock.advance(30.0)
    assert e.view("ns/y", None) is None


def test_a_write_over_our_own_unseen_write_keeps_waiting_for_the_cache() -> None:
    clock = FakeClock()
    e = WriteExpectations(clock=clock)
    cached = obj("1")
    first, second = obj("2"), obj("3")
    e.wrote("k", before=cached, after=first)
    seen = e.view("k", cached)
    e.wrote("k", before=seen, after=second)
    assert e.view("k", cached) is second  # still waiting for the cache to leave rv 1
    assert e.view("k", obj("2")) == obj("2")
