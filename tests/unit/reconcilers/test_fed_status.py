"""Federated status: merged states and per-cluster conditions, member reports, merge patches."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from servicegroup.grid import conditions as cond
from servicegroup.reconcilers.federation_status import (
    ClusterReport,
    apply_merge_patch,
    cluster_condition,
    condition_type,
    federated_status,
    is_federated_key,
    keep_federated,
    member_status,
    merge_patch_diff,
    state_key,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ready(
    status: str = "True", reason: str = "AllUnitsReady", message: str = "1/1"
) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-12-31T00:00:00Z",
    }


def copy_with(
    states: dict[str, Any], *, generation: int = 2, observed: int | None = 2
) -> dict[str, Any]:
    status: dict[str, Any] = {"states": states, "conditions": [ready()]}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "demo", "generation": generation}, "status": status}


def test_keys() -> None:
    assert state_key("clusternet-a", "zone1") == "clusternet-a/zone1"
    assert is_federated_key("clusternet-a/zone1")
    assert not is_federated_key("zone1")
    assert condition_type("clusternet-a") == "federation.superedge.io/clusternet-a"


def test_same_unit_in_two_clusters_gets_two_keys() -> None:
    previous = {
        "observedGeneration": 4,
        "units": 1,
        "states": {"zone1": {"replicas": 7}},  # the hub's own unit: kept
        "conditions": [ready("False", "NoNodeUnits", "none")],
    }
    reports = [
        ClusterReport("clusternet-b", copy_with({"zone1": {"replicas": 3}})),
        ClusterReport("clusternet-a", copy_with({"zone1": {"replicas": 2}})),
    ]
    status = federated_status(previous, reports, has_states=True, generation=4, now=NOW)
    assert status["states"] == {
        "zone1": {"replicas": 7},
        "clusternet-a/zone1": {"replicas": 2},
        "clusternet-b/zone1": {"replicas": 3},
    }
    types = [c["type"] for c in status["conditions"]]
    assert types == [
        "Ready",
        "federation.superedge.io/clusternet-a",
        "federation.superedge.io/clusternet-b",
    ]
    assert status["conditions"][0] == previous["conditions"][0]
    assert status["units"] == 1
    assert previous["states"] == {"zone1": {"replicas": 7}}  # input untouched


def test_an_unchanged_world_gives_an_identical_status() -> None:
    reports = [ClusterReport("clusternet-a", copy_with({"zone1": {"replicas": 2}}))]
    first = federated_status({}, reports, has_states=True, generation=1, now=NOW)
    later = NOW + timedelta(hours=1)
    second = federated_status(first, reports, has_states=True, generation=1, now=later)
    assert second == first
    assert merge_patch_diff(first, second) == {}


def test_vanished_clusters_and_units_disappear() -> None:
    reports = [
        ClusterReport("clusternet-a", copy_with({"zone1": {}, "zone2": {}})),
        ClusterReport("clusternet-b", copy_with({"zone3": {}})),
    ]
    first = federated_status({}, reports, has_states=True, generation=1, now=NOW)
    second = federated_status(
        first,
        [ClusterReport("clusternet-a", copy_with({"zone2": {}}))],
        has_states=True,
        generation=1,
        now=NOW,
    )
    assert second["states"] == {"clusternet-a/zone2": {}}
    assert [c["type"] for c in second["conditions"]] == ["federation.superedge.io/clusternet-a"]


def test_service_grids_have_no_states() -> None:
    reports = [ClusterReport("clusternet-a", copy_with({}))]
    status = federated_status({}, reports, has_states=False, generation=1, now=NOW)
    assert "states" not in status
    assert status["conditions"][0]["status"] == "True"


def test_cluster_condition_cases() -> None:
    ns = "clusternet-a"
    problem = cond.ConditionSpec("", "False", "CopyRejected", "no")
    assert cluster_condition(ClusterReport(ns, None, problem)) == cond.ConditionSpec(
        "federation.superedge.io/clusternet-a", "False", "CopyRejected", "no"
    )
    assert cluster_condition(ClusterReport(ns, None)).reason == "CopyPending"
    gone = copy_with({})
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert cluster_condition(ClusterReport(ns, gone)).reason == "CopyDeleting"
    stale = copy_with({}, generation=3, observed=2)
    waiting = cluster_condition(ClusterReport(ns, stale))
    assert (waiting.status, waiting.reason) == ("Unknown", "WaitingForMember")
    silent = {"metadata": {"generation": 1}}
    assert cluster_condition(ClusterReport(ns, silent)).reason == "WaitingForMember"
    fine = cluster_condition(ClusterReport(ns, copy_with({})))
    assert (fine.status, fine.reason, fine.message) == ("True", "AllUnitsReady", "1/1")


def test_keep_federated() -> None:
    previous = {
        "states": {"zone1": {"r": 1}, "clusternet-a/zone1": {"r": 2}},
        "conditions": [ready(), {"type": "federation.superedge.io/clusternet-a", "status": "True"}],
    }
    own = {"units": 0, "states": {}, "conditions": [ready("False", "NoNodeUnits")]}
    kept = keep_federated(previous=previous, status=own)
    assert kept["states"] == {"clusternet-a/zone1": {"r": 2}}
    assert [c["type"] for c in kept["conditions"]] == [
        "Ready",
        "federation.superedge.io/clusternet-a",
    ]
    assert own["states"] == {}  # not mutated
    assert keep_federated(previous={"states": {"zone1": {}}}, status=own) is own
    assert keep_federated(previous=None, status=own) is own


def test_keep_federated_and_federated_status_agree() -> None:
    """The grid reconciler and federation produce the same document: neither writes again."""
    reports = [ClusterReport("clusternet-a", copy_with({"zone1": {"r": 2}}))]
    own = {
        "observedGeneration": 1,
        "units": 1,
        "states": {"zone1": {"r": 1}},
        "conditions": [ready()],
    }
    merged = federated_status(own, reports, has_states=True, generation=1, now=NOW)
    assert keep_federated(previous=merged, status=copy.deepcopy(own)) == merged


def test_member_status_from_local_grid() -> None:
    copy_obj = {"metadata": {"generation": 5}, "status": {"observedGeneration": 4}}
    local = {
        "metadata": {"generation": 2},
        "status": {"observedGeneration": 2, "states": {"zone1": {}}, "conditions": [ready()]},
    }
    current = member_status(copy_obj, local, has_states=True, in_sync=True, now=NOW)
    assert current["observedGeneration"] == 5
    assert current["states"] == {"zone1": {}}
    behind = member_status(copy_obj, local, has_states=True, in_sync=False, now=NOW)
    assert behind["observedGeneration"] == 4


def test_member_status_without_local_grid() -> None:
    copy_obj = {"metadata": {"generation": 5}, "spec": {"gridUniqKey": "zone"}}
    status = member_status(copy_obj, None, has_states=True, in_sync=True, now=NOW)
    assert status["observedGeneration"] == 5
    assert status["states"] == {}
    assert status["units"] == 0
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Ready",
        "False",
        "NoNodeUnits",
    )
    problem = cond.ConditionSpec("Ready", "False", "LocalGridConflict", "taken")
    conflicted = member_status(
        copy_obj, None, has_states=False, in_sync=True, problem=problem, now=NOW
    )
    assert conflicted["conditions"][0]["reason"] == "LocalGridConflict"
    assert "states" not in conflicted


_SCALARS = st.one_of(st.booleans(), st.integers(-3, 3), st.text(max_size=3))
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
_DOCS = st.dictionaries(st.text(max_size=3), _JSON, max_size=5)


@given(old=_DOCS, new=_DOCS)
def test_merge_patch_diff_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    patch = merge_patch_diff(old, new)
    assert apply_merge_patch(old, patch) == new
    assert merge_patch_diff(new, new) == {}


def test_merge_patch_diff_is_minimal() -> None:
    old = {"states": {"a/z": {"r": 1, "gone": 2}, "z": {"r": 1}}, "units": 1}
    new = {"states": {"a/z": {"r": 2}, "z": {"r": 1}}, "units": 1}
    assert merge_patch_diff(old, new) == {"states": {"a/z": {"r": 2, "gone": None}}}
    assert merge_patch_diff({"x": 1}, {"x": True}) == {"x": True}
