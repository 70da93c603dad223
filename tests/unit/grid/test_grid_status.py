"""Status: per-unit states, readiness, conditions with stable transition times, change check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from servicegroup.api.models import ServiceGridStatus, WorkloadGridStatus
from servicegroup.grid import conditions as cond
from servicegroup.grid.status import (
    build_service_status,
    build_status,
    status_changed,
    unit_ready,
    unit_state,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def deployment(
    *, replicas: int | None = 2, ready: int = 2, updated: int = 2, generation: int = 1,
    observed: int | None = 1,
) -> dict[str, Any]:  # fmt: skip
    spec = {} if replicas is None else {"replicas": replicas}
    status: dict[str, Any] = {
        "replicas": replicas or 1,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "availableReplicas": ready,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
                "lastTransitionTime": "2021-06-17T07:33:50Z",
                "lastUpdateTime": "2021-06-17T07:33:50Z",
            }
        ],
    }
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "d", "generation": generation}, "spec": spec, "status": status}


def test_deployment_state_has_the_upstream_fields() -> None:
    child = deployment()
    child["status"]["collisionCount"] = 1
    state = unit_state(child, kind="Deployment")
    assert state == {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "conditions": child["status"]["conditions"],
    }
    assert state["conditions"] is not child["status"]["conditions"]


def test_statefulset_state_is_its_status_minus_noise() -> None:
    status = {"replicas": 3, "readyReplicas": 3, "currentRevision": "s-1", "collisionCount": 0}
    state = unit_state({"status": status}, kind="StatefulSet")
    assert state == {"replicas": 3, "readyReplicas": 3, "currentRevision": "s-1"}
    with pytest.raises(ValueError):
        unit_state({"status": status}, kind="Service")


@pytest.mark.parametrize(
    ("child", "kind", "ready"),
    [
        (deployment(), "Deployment", True),
        (deployment(ready=1), "Deployment", False),
        (deployment(ready=3), "Deployment", False),  # surge: more than desired
        (deployment(updated=1), "Deployment", False),  # rollout in progress
        (deployment(updated=1), "StatefulSet", True),  # OnDelete: updated may lag
        (deployment(generation=2, observed=1), "Deployment", False),
        (deployment(observed=None), "Deployment", False),
        (deployment(replicas=None, ready=1, updated=1), "Deployment", True),  # default 1
        (deployment(replicas=0, ready=0, updated=0), "Deployment", True),
        ({"metadata": {}, "spec": {"replicas": 1}}, "Deployment", False),
    ],
)
def test_unit_ready(child: dict[str, Any], kind: str, ready: bool) -> None:
    assert unit_ready(child, kind=kind) is ready


def test_hpa_replicas_are_read_from_the_live_child() -> None:
    child = deployment(replicas=5, ready=5, updated=5)
    assert unit_ready(child, kind="Deployment")


def build(**kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "child_kind": "Deployment",
        "generation": 4,
        "units": [],
        "children": {},
        "now": T0,
        "grid_uniq_key": "zone",
    }
    args.update(kwargs)
    return build_status(**args)


def conditions_by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_all_ready() -> None:
    status = build(units={"a", "b"}, children={"a": deployment(), "b": deployment()})
    assert status["observedGeneration"] == 4
    assert status["units"] == 2
    assert status["readyUnits"] == 2
    assert set(status["states"]) == {"a", "b"}
    assert status["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "AllUnitsReady",
            "message": "2/2 NodeUnits ready",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 4,
        }
    ]
    # The output is a valid status for our CRD's model.
    WorkloadGridStatus.model_validate(status)


def test_units_without_child_and_vanished_units() -> None:
    status = build(units=["a", "b"], children={"a": deployment(ready=0), "gone": deployment()})
    assert set(status["states"]) == {"a"}  # b has no child, gone vanished
    assert status["units"] == 2
    assert status["readyUnits"] == 0
    ready = conditions_by_type(status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "UnitsNotReady")
    assert ready["message"] == "0/2 NodeUnits ready; waiting for: a, b"


def test_no_node_units() -> None:
    ready = conditions_by_type(build())["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", cond.NO_NODE_UNITS)
    assert "'zone'" in ready["message"]


def test_failures_get_their_own_conditions() -> None:
    missing = 'spec.templates[b]: Not found: "x"'
    failures = [
        cond.UnitFailure("b", cond.TEMPLATE_NOT_FOUND, cond.MISSING_TEMPLATE, missing),
        cond.UnitFailure("c", cond.CHILD_CONFLICT, cond.NOT_CONTROLLED, "Deployment g-c exists"),
        cond.UnitFailure("a", cond.APPLY_FAILED, "Invalid", "spec.replicas: must be >= 0"),
    ]
    status = build(units=["a", "b", "c"], children={"a": deployment()}, failures=failures)
    by_type = conditions_by_type(status)
    assert [c["type"] for c in status["conditions"]] == [
        "Ready", "TemplateNotFound", "ChildConflict", "ApplyFailed",
    ]  # fmt: skip
    assert by_type["Ready"]["reason"] == cond.UNITS_FAILED
    assert by_type["Ready"]["message"] == "1/3 NodeUnits ready; failed: a, b, c"
    assert by_type["TemplateNotFound"]["message"] == 'b: spec.templates[b]: Not found: "x"'
    assert by_type["ChildConflict"]["reason"] == "NotControlledByGrid"
    assert by_type["ApplyFailed"]["reason"] == "Invalid"
    assert all(by_type[t]["status"] == "True" for t in cond.FAILURE_TYPES[1:])
    WorkloadGridStatus.model_validate(status)


def test_invalid_spec_overrides_readiness() -> None:
    failures = [
        cond.UnitFailure(
            "", cond.INVALID_SPEC, cond.VALIDATION_FAILED, "spec.gridUniqKey: Required value"
        )
    ]
    status = build(units=["a"], children={"a": deployment()}, failures=failures)
    by_type = conditions_by_type(status)
    assert by_type["Ready"]["reason"] == "InvalidSpec"
    assert by_type["InvalidSpec"]["message"] == "spec.gridUniqKey: Required value"
    assert status["states"]["a"]["readyReplicas"] == 2  # the existing child is still shown


def test_last_transition_time_kept_while_status_holds() -> None:
    first = build(units=["a"], children={"a": deployment(ready=0)})
    second = build(units=["a", "b"], children={"a": deployment(ready=1)}, previous=first, now=T1)
    ready = conditions_by_type(second)["Ready"]
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # still False
    assert ready["message"] == "0/2 NodeUnits ready; waiting for: a, b"
    third = build(units=["a"], children={"a": deployment()}, previous=second, now=T1)
    ready = conditions_by_type(third)["Ready"]
    assert ready["status"] == "True"
    assert ready["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_resolved_failures_disappear() -> None:
    failing = build(
        units=["a"], children={},
        failures=[cond.UnitFailure("a", cond.APPLY_FAILED, cond.APPLY_ERROR, "boom")],
    )  # fmt: skip
    assert "ApplyFailed" in conditions_by_type(failing)
    fixed = build(units=["a"], children={"a": deployment()}, previous=failing, now=T1)
    assert set(conditions_by_type(fixed)) == {"Ready"}


def test_same_inputs_give_no_change() -> None:
    kwargs: dict[str, Any] = {
        "units": ["a", "b"],
        "children": {"a": deployment(), "b": deployment(ready=1)},
    }
    first = build(**kwargs)
    again = build(**kwargs, previous=first, now=T1)
    assert again == first
    assert not status_changed(first, again)
    assert status_changed(
        first, build(units=["a"], children={"a": deployment()}, previous=first, now=T1)
    )
    assert status_changed(None, first)
    assert status_changed({"states": {}}, first)


def test_status_changed_ignores_empty_versus_absent() -> None:
    new = {"observedGeneration": 1, "conditions": [], "units": 0, "readyUnits": 0, "states": {}}
    assert not status_changed({"observedGeneration": 1, "units": 0, "readyUnits": 0}, new)
    assert status_changed({"observedGeneration": 0, "units": 0, "readyUnits": 0}, new)


def test_service_status() -> None:
    service = {"metadata": {"name": "s-svc"}}
    ok = build_service_status(generation=2, service=service, now=T0)
    assert ok == {
        "observedGeneration": 2,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ServiceApplied",
                "message": "Service s-svc is up to date",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 2,
            }
        ],
    }
    ServiceGridStatus.model_validate(ok)
    missing = build_service_status(generation=2, service=None, previous=ok, now=T1)
    assert conditions_by_type(missing)["Ready"]["reason"] == cond.SERVICE_MISSING
    assert conditions_by_type(missing)["Ready"]["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    not_ours = cond.UnitFailure(
        "", cond.CHILD_CONFLICT, cond.NOT_CONTROLLED, "Service s-svc is not ours"
    )
    conflict = build_service_status(generation=2, service=None, now=T0, failures=[not_ours])
    by_type = conditions_by_type(conflict)
    assert by_type["Ready"]["reason"] == cond.SERVICE_FAILED
    assert by_type["ChildConflict"]["message"] == "Service s-svc is not ours"
    invalid = build_service_status(
        generation=2, service=None, now=T0,
        failures=[cond.UnitFailure("", cond.INVALID_SPEC, cond.VALIDATION_FAILED, "bad")],
    )  # fmt: skip
    assert conditions_by_type(invalid)["Ready"]["reason"] == cond.INVALID_SPEC
