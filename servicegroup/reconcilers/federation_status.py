"""Federated status: the copies' states merged into the original, and what a member reports.

Owns: the formats of the federated parts of a hub original's status, `federated_status` (the
merge), `keep_federated` (what the grid reconcilers call so their own status writes keep the
federated parts), `member_status` (the status a member writes on its copy) and
`merge_patch_diff` (the smallest JSON merge patch between two documents).

The federated parts of an original's status (DeploymentGrid / StatefulSetGrid / ServiceGrid):
- `status.states["{cluster namespace}/{NodeUnit}"]`: the state of that NodeUnit's child in the
  managed cluster whose hub namespace is `{cluster namespace}` (the namespace labelled
  `clusters.clusternet.io/cluster-id` that holds the cluster's copy). A NodeUnit value is a
  label value and can never contain "/", so these keys never collide with the hub's own
  units (plain `{NodeUnit}` keys, written by the hub's grid reconciler), and two clusters
  with a unit of the same name get two keys: nothing is overwritten, silently or otherwise.
  Workload kinds only (a ServiceGrid has no states).
- one condition per cluster namespace, type `federation.superedge.io/{cluster namespace}`,
  after the grid's own conditions, sorted by type:
  - `False CopyConflict` / `False CopyRejected`: the hub could not write the copy;
  - `Unknown CopyPending`: the copy is being created;
  - `False CopyDeleting`: the copy is being deleted (it will be recreated);
  - `Unknown WaitingForMember`: the member has not reported on the copy's current generation
    (not running there, unreachable, or still working);
  - otherwise the member's own `Ready` condition (status, reason, message), e.g.
    `True AllUnitsReady` or `False NoNodeUnits` (no node of that cluster carries the key).
The grid's own `units`, `readyUnits` and `Ready` describe the hub's own NodeUnits only.

Invariants: pure and deterministic (an unchanged world gives an identical status, hence no
write); inputs are never mutated; outputs share no dict with inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from servicegroup.grid import conditions as cond
from servicegroup.grid.render import json_copy
from servicegroup.reconcilers.federation_render import (
    deleting,
    generation_of,
)

CONDITION_PREFIX = "federation.superedge.io/"

# Per-cluster condition reasons set by the hub (others come from the member's Ready).
COPY_CONFLICT = "CopyConflict"
COPY_REJECTED = "CopyRejected"
COPY_PENDING = "CopyPending"
COPY_DELETING = "CopyDeleting"
WAITING_FOR_MEMBER = "WaitingForMember"
# The member's Ready reasons when it has no local grid to report on.
LOCAL_GRID_CONFLICT = "LocalGridConflict"
LOCAL_GRID_REJECTED = "LocalGridRejected"

Obj = Mapping[str, Any]


def state_key(cluster_namespace: str, unit: str) -> str:
    """`status.states` key of `unit` of the cluster whose hub namespace is `cluster_namespace`."""
    return f"{cluster_namespace}/{unit}"


def is_federated_key(key: str) -> bool:
    return "/" in key


def condition_type(cluster_namespace: str) -> str:
    return CONDITION_PREFIX + cluster_namespace


def is_federated_condition(condition: Any) -> bool:
    return isinstance(condition, Mapping) and str(condition.get("type", "")).startswith(
        CONDITION_PREFIX
    )


class ClusterReport(NamedTuple):
    """What the hub knows about one cluster's copy of an original."""

    namespace: str  # the cluster's hub namespace
    copy: Obj | None  # the live copy, controlled by the original (None: not there yet)
    problem: cond.ConditionSpec | None = None  # the hub could not write the copy


def cluster_condition(report: ClusterReport) -> cond.ConditionSpec:
    """The per-cluster condition (see the module docstring)."""
    ctype = condition_type(report.namespace)
    if report.problem is not None:
        return report.problem._replace(type=ctype)
    copy = report.copy
    if copy is None:
        return cond.ConditionSpec(
            ctype, "Unknown", COPY_PENDING, f"the copy in {report.namespace} is being created"
        )
    if deleting(copy):
        return cond.ConditionSpec(
            ctype, "False", COPY_DELETING, f"the copy in {report.namespace} is being deleted"
        )
    status = copy.get("status")
    status = status if isinstance(status, Mapping) else {}
    generation = generation_of(copy)
    observed = status.get("observedGeneration")
    ready = cond.find_condition(status.get("conditions"), cond.READY)
    if (generation is not None and observed != generation) or ready is None:
        return cond.ConditionSpec(
            ctype,
            "Unknown",
            WAITING_FOR_MEMBER,
            f"the member cluster of {report.namespace} has not reported on generation "
            f"{generation} of its copy yet",
        )
    ready_status = str(ready.get("status") or "Unknown")
    if ready_status not in ("True", "False", "Unknown"):
        ready_status = "Unknown"
    return cond.ConditionSpec(
        ctype,
        ready_status,
        str(ready.get("reason") or WAITING_FOR_MEMBER),
        str(ready.get("message") or ""),
    )


def _states_of(copy: Obj | None) -> Mapping[str, Any]:
    status = copy.get("status") if copy is not None else None
    states = status.get("states") if isinstance(status, Mapping) else None
    return states if isinstance(states, Mapping) else {}


def federated_status(
    previous: Obj | None,
    reports: Iterable[ClusterReport],
    *,
    has_states: bool,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """`previous` (the original's status) with its federated parts rebuilt from `reports`.

    Everything else in `previous` is kept as is. Keys are added only when there is something
    to put in them, so an original with no cluster gets exactly `previous` back.
    """
    prev = previous or {}
    out: dict[str, Any] = json_copy(dict(prev))
    ordered = sorted(reports, key=lambda r: r.namespace)

    if has_states:
        old_states = prev.get("states")
        old_states = old_states if isinstance(old_states, Mapping) else {}
        states = {k: json_copy(v) for k, v in old_states.items() if not is_federated_key(k)}
        for report in ordered:
            if report.problem is not None:
                continue
            for unit, state in sorted(_states_of(report.copy).items()):
                states[state_key(report.namespace, str(unit))] = json_copy(state)
        if states or "states" in prev:
            out["states"] = states

    old_conditions = prev.get("conditions")
    old_conditions = old_conditions if isinstance(old_conditions, list) else []
    own = [json_copy(c) for c in old_conditions if not is_federated_condition(c)]
    federated = cond.merge_conditions(
        [c for c in old_conditions if is_federated_condition(c)],
        [cluster_condition(r) for r in ordered],
        generation=generation,
        now=now,
    )
    if own or federated or "conditions" in prev:
        out["conditions"] = own + federated
    return out


def keep_federated(*, previous: Obj | None, status: dict[str, Any]) -> dict[str, Any]:
    """`status` (a grid reconciler's new status) plus the federated parts of `previous`.

    The hub's grid reconcilers replace a grid's whole status; on a federated original that
    would erase what federation merged in, and the two would rewrite each other forever.
    Returns `status` itself when `previous` has no federated part.
    """
    prev = previous or {}
    old_states = prev.get("states")
    federated_states = (
        {k: json_copy(v) for k, v in old_states.items() if is_federated_key(str(k))}
        if isinstance(old_states, Mapping)
        else {}
    )
    old_conditions = prev.get("conditions")
    federated_conditions = (
        [json_copy(c) for c in old_conditions if is_federated_condition(c)]
        if isinstance(old_conditions, list)
        else []
    )
    if not federated_states and not federated_conditions:
        return status
    out = dict(status)
    if federated_states:
        own = status.get("states")
        out["states"] = {**(own if isinstance(own, Mapping) else {}), **federated_states}
    if federated_conditions:
        own_conditions = status.get("conditions")
        out["conditions"] = [
            *(own_conditions if isinstance(own_conditions, list) else []),
            *federated_conditions,
        ]
    return out


def member_status(
    copy: Obj,
    local: Obj | None,
    *,
    has_states: bool,
    in_sync: bool,
    problem: cond.ConditionSpec | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The status a member writes on its copy.

    - `local` given: the local grid's status, with `observedGeneration` set to the copy's
      generation when `in_sync` (the local grid has the copy's spec and its own status is
      current), else kept from the copy's previous status: the hub then knows the report is
      about an older spec.
    - no `local`: `problem` (why there is none, as the Ready condition) or, by default,
      `NoNodeUnits`; no states; observedGeneration is the copy's generation.
    """
    previous = copy.get("status")
    previous = previous if isinstance(previous, Mapping) else {}
    generation = generation_of(copy)
    if local is not None:
        local_status = local.get("status")
        status: dict[str, Any] = (
            json_copy(dict(local_status)) if isinstance(local_status, Mapping) else {}
        )
        status.pop("observedGeneration", None)
        if in_sync and generation is not None:
            status["observedGeneration"] = generation
        elif isinstance(previous.get("observedGeneration"), int):
            status["observedGeneration"] = previous["observedGeneration"]
        return status
    if problem is None:
        spec = copy.get("spec")
        key = spec.get("gridUniqKey") if isinstance(spec, Mapping) else ""
        problem = cond.ConditionSpec(
            cond.READY,
            "False",
            cond.NO_NODE_UNITS,
            f"no node of this cluster has a non-empty label {key!r}",
        )
    old_conditions = previous.get("conditions")
    status = {}
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = cond.merge_conditions(
        old_conditions if isinstance(old_conditions, list) else None,
        [problem._replace(type=cond.READY)],
        generation=generation,
        now=now,
    )
    if has_states:
        status.update(units=0, readyUnits=0, states={})
    return status


# ------------------------------------------------------------------------------ patches


def _same(a: Any, b: Any) -> bool:
    # Canonical JSON: True is not 1, and key order does not matter.
    return bool(
        orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    )


def merge_patch_diff(old: Obj, new: Obj) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `old` into `new`; {} when they are equal.

    `new` must not contain null values (a merge patch cannot set a null); status documents
    never do.
    """
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key in old:
            before = old[key]
            if isinstance(value, Mapping) and isinstance(before, Mapping):
                sub = merge_patch_diff(before, value)
                if sub:
                    patch[key] = sub
                continue
            if _same(before, value):
                continue
        patch[key] = json_copy(value)
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 applied to plain data (what the API server does with a merge patch)."""
    if not isinstance(patch, Mapping):
        return json_copy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
