"""A grid's status from its children in the cache (SPEC A4, B1): states, counts, conditions.

Owns: `unit_state`, `unit_ready`, `build_status` (DeploymentGrid / StatefulSetGrid),
`build_service_status` (ServiceGrid) and `status_changed`.

Status shape (DeploymentGrid / StatefulSetGrid):
  observedGeneration  the grid's metadata.generation this status describes
  conditions          see grid/conditions.py (Ready + one per failure type)
  units               number of current NodeUnits
  readyUnits          current NodeUnits whose child is ready
  states              current NodeUnit -> its child's status; a unit without a child and a
                      vanished unit are not listed
ServiceGrid: observedGeneration and conditions only.

Per-unit state:
- Deployment: `replicas`, `updatedReplicas`, `readyReplicas`, `availableReplicas`,
  `unavailableReplicas`, `observedGeneration`, `conditions` (incl. Available), as present.
- StatefulSet: its status as is, minus `collisionCount` (an internal counter of hash
  collisions of the controller's revisions, meaningless to a reader of the grid).

A unit is *ready* when its child exists and
- `status.observedGeneration >= metadata.generation` (the workload controller has seen the
  current spec; a child without a generation counts as seen), and
- `status.readyReplicas` (absent = 0) equals `spec.replicas` (absent = 1, the API default;
  read from the live child so an HPA's replica count is honoured), and
- for a Deployment, also `status.updatedReplicas` equals `spec.replicas` (the rollout is done:
  during a rollout the old ReplicaSet's pods are ready but not what the template says).
  StatefulSets are not held to it: with the OnDelete strategy it may never be reached.

Invariants: pure; the output depends only on the inputs (lastTransitionTime is carried over
from `previous` while a condition's status holds), so an unchanged world gives an identical
status and `status_changed` is False: no write.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from servicegroup.grid import conditions as cond
from servicegroup.grid.render import json_copy

_DEPLOYMENT_STATE_KEYS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
    "conditions",
)
_STATEFULSET_NOISE = frozenset({"collisionCount"})


def _status(child: Mapping[str, Any]) -> Mapping[str, Any]:
    status = child.get("status")
    return status if isinstance(status, Mapping) else {}


def unit_state(child: Mapping[str, Any], *, kind: str) -> dict[str, Any]:
    """What `status.states[unit]` shows for this child (a copy)."""
    status = _status(child)
    if kind == "Deployment":
        return {k: json_copy(status[k]) for k in _DEPLOYMENT_STATE_KEYS if k in status}
    if kind == "StatefulSet":
        return {k: json_copy(v) for k, v in status.items() if k not in _STATEFULSET_NOISE}
    raise ValueError(f"no unit state for kind {kind!r}")


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def unit_ready(child: Mapping[str, Any], *, kind: str) -> bool:
    """See the module docstring for the exact rule."""
    status = _status(child)
    generation = (child.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and (not isinstance(observed, int) or observed < generation):
        return False
    spec = child.get("spec") or {}
    desired = _int(spec.get("replicas"), 1)
    if _int(status.get("readyReplicas"), 0) != desired:
        return False
    return kind != "Deployment" or _int(status.get("updatedReplicas"), 0) == desired


def build_status(
    *,
    child_kind: str,
    generation: int | None,
    units: Collection[str],
    children: Mapping[str, Mapping[str, Any]],
    failures: Iterable[cond.UnitFailure] = (),
    previous: Mapping[str, Any] | None = None,
    now: datetime,
    grid_uniq_key: str = "",
) -> dict[str, Any]:
    """Status of a DeploymentGrid / StatefulSetGrid.

    `children` maps a unit to its live child (already checked to be controlled by the grid);
    entries for units not in `units` are ignored. `failures` are per-unit failures and, with
    unit "", grid-wide ones (InvalidSpec). `previous` is the current `status` of the grid.
    """
    failures = list(failures)
    current = sorted(set(units))
    states: dict[str, dict[str, Any]] = {}
    ready: list[str] = []
    for unit in current:
        child = children.get(unit)
        if child is None:
            continue
        states[unit] = unit_state(child, kind=child_kind)
        if unit_ready(child, kind=child_kind):
            ready.append(unit)
    failed_units = sorted({f.unit for f in failures if f.unit and f.unit in set(current)})
    readiness = _workload_ready(current, ready, failed_units, failures, grid_uniq_key)
    conditions = merge_conditions(previous, [readiness, *cond.failure_conditions(failures)],
                                  generation=generation, now=now)  # fmt: skip
    status: dict[str, Any] = {}
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = conditions
    status["units"] = len(current)
    status["readyUnits"] = len(ready)
    status["states"] = states
    return status


def _workload_ready(
    current: list[str],
    ready: list[str],
    failed_units: list[str],
    failures: list[cond.UnitFailure],
    key: str,
) -> cond.ConditionSpec:
    if any(f.type == cond.INVALID_SPEC and not f.unit for f in failures):
        return cond.ConditionSpec(
            cond.READY, "False", cond.INVALID_SPEC, "the spec is invalid: see InvalidSpec"
        )
    if not current:
        where = f"label {key!r}" if key else "the gridUniqKey label"
        return cond.ConditionSpec(
            cond.READY, "False", cond.NO_NODE_UNITS, f"no node has a non-empty {where}"
        )
    counts = f"{len(ready)}/{len(current)} NodeUnits ready"
    if failed_units:
        return cond.ConditionSpec(
            cond.READY, "False", cond.UNITS_FAILED,
            f"{counts}; failed: {cond.list_units(failed_units)}",
        )  # fmt: skip
    if len(ready) < len(current):
        waiting = [u for u in current if u not in set(ready)]
        return cond.ConditionSpec(
            cond.READY, "False", cond.UNITS_NOT_READY,
            f"{counts}; waiting for: {cond.list_units(waiting)}",
        )  # fmt: skip
    return cond.ConditionSpec(cond.READY, "True", cond.ALL_UNITS_READY, counts)


def build_service_status(
    *,
    generation: int | None,
    service: Mapping[str, Any] | None,
    failures: Iterable[cond.UnitFailure] = (),
    previous: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """Status of a ServiceGrid: Ready when its Service exists and nothing failed."""
    failures = list(failures)
    if any(f.type == cond.INVALID_SPEC for f in failures):
        readiness = cond.ConditionSpec(
            cond.READY, "False", cond.INVALID_SPEC, "the spec is invalid: see InvalidSpec"
        )
    elif failures:
        readiness = cond.ConditionSpec(
            cond.READY, "False", cond.SERVICE_FAILED,
            "the Service could not be applied: see " + failures[0].type,
        )  # fmt: skip
    elif service is None:
        readiness = cond.ConditionSpec(
            cond.READY, "False", cond.SERVICE_MISSING, "the Service does not exist yet"
        )
    else:
        name = (service.get("metadata") or {}).get("name", "")
        readiness = cond.ConditionSpec(
            cond.READY, "True", cond.SERVICE_APPLIED, f"Service {name} is up to date"
        )
    conditions = merge_conditions(previous, [readiness, *cond.failure_conditions(failures)],
                                  generation=generation, now=now)  # fmt: skip
    status: dict[str, Any] = {}
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = conditions
    return status


def merge_conditions(
    previous: Mapping[str, Any] | None,
    desired: list[cond.ConditionSpec],
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    old = (previous or {}).get("conditions")
    return cond.merge_conditions(
        old if isinstance(old, list) else None, desired, generation=generation, now=now
    )


def _canonical(value: Any) -> Any:
    """Drop None and empty containers: the API server may omit them; they mean the same."""
    if isinstance(value, Mapping):
        items = {k: _canonical(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not None and v not in ({}, [])}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """True when writing `new` would change the stored status."""
    return bool(_canonical(old or {}) != _canonical(new))
