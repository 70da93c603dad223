"""ServiceGridReconciler: one Service, topologyKeys, ownership, status."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from servicegroup.controller import Result, TerminalError
from servicegroup.kube.errors import ApiError
from servicegroup.reconcilers import reasons


def service_grid(name: str = "sg", key: str = "zone") -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "ServiceGrid",
        "metadata": {"name": name, "namespace": "default", "annotations": {"a": "b"}},
        "spec": {
            "gridUniqKey": key,
            "template": {
                "selector": {"appGrid": "echo"},
                "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
            },
        },
    }


@pytest.fixture
def h(make_harness: Any) -> Any:
    return make_harness(kind=None)


async def test_service_is_applied_with_topology_keys_then_settles(h: Any) -> None:
    h.grid(service_grid())
    h.sync()
    assert await h.reconcile("sg") == Result()
    [apply] = h.server.writes_of("apply")
    assert apply.name == "sg-svc"
    assert apply.body["metadata"]["annotations"]["topologyKeys"] == '["zone"]'
    assert apply.body["metadata"]["annotations"]["a"] == "b"
    assert apply.body["spec"]["ports"][0]["port"] == 80
    ready = h.condition("sg", "Ready")
    assert ready is not None and ready["status"] == "True"
    assert h.recorder.reasons() == [reasons.CREATED]

    h.sync()
    writes = len(h.server.writes)
    assert await h.reconcile("sg") == Result()
    assert len(h.server.writes) == writes


async def test_foreign_service_is_never_modified(h: Any) -> None:
    h.grid(service_grid())
    foreign = h.child({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sg-svc"}})
    h.sync()
    await h.reconcile("sg")
    assert h.server.writes_of("apply") == []
    assert h.server.get("Service", "sg-svc") == foreign
    conflict = h.condition("sg", "ChildConflict")
    assert conflict is not None and "Service sg-svc exists" in conflict["message"]
    ready = h.condition("sg", "Ready")
    assert ready is not None and ready["reason"] == "ServiceFailed"
    assert h.recorder.reasons("Warning") == [reasons.CHILD_CONFLICT]


async def test_rejected_service_is_reported_and_not_hot_looped(h: Any) -> None:
    h.grid(service_grid())
    h.sync()
    h.server.fail("apply", "sg-svc", ApiError(422, "Invalid", "spec.ports: Required value"))
    result = await h.reconcile("sg")
    assert result.requeue_after == pytest.approx(300.0)
    failed = h.condition("sg", "ApplyFailed")
    assert failed is not None and failed["reason"] == "Invalid"
    h.sync()
    writes = len(h.server.writes)
    await h.reconcile("sg")
    assert len(h.server.writes) == writes


async def test_invalid_service_grid(h: Any) -> None:
    h.grid(service_grid(name="9starts-with-digit"))
    h.sync()
    with pytest.raises(TerminalError):
        await h.reconcile("9starts-with-digit")
    invalid = h.condition("9starts-with-digit", "InvalidSpec")
    assert invalid is not None and "DNS-1035" in invalid["message"]
    assert h.server.writes_of("apply") == []


async def test_grid_annotation_change_reaches_the_service(h: Any) -> None:
    h.grid(service_grid())
    h.sync()
    await h.reconcile("sg")
    h.sync()
    grid = copy.deepcopy(h.server.get("ServiceGrid", "sg"))
    grid["metadata"]["annotations"]["a"] = "c"
    h.server.put(grid)
    h.sync()
    await h.reconcile("sg")
    assert h.server.writes_of("apply")[-1].body["metadata"]["annotations"]["a"] == "c"
    assert h.recorder.reasons()[-1] == reasons.UPDATED
