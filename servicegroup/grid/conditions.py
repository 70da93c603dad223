"""Condition types, reasons and the merge that keeps lastTransitionTime (metav1.Condition).

Owns: the names every grid status uses, the `UnitFailure` record the reconcilers report with,
and `merge_conditions`.

Condition types (final; SPEC B1):
- `Ready` is always present.
  DeploymentGrid / StatefulSetGrid: True `AllUnitsReady`; False `InvalidSpec` (spec rejected),
  `NoNodeUnits` (no node carries a non-empty value of gridUniqKey), `UnitsFailed` (at least
  one unit has a failure below), `UnitsNotReady` (children exist but not all are ready).
  ServiceGrid: True `ServiceApplied`; False `InvalidSpec`, `ServiceFailed`, `ServiceMissing`.
- One condition per kind of failure, present (status True) only while it happens and removed
  when it is resolved (as a Deployment's ReplicaFailure):
  `InvalidSpec`      reason `ValidationFailed` (field errors), `InvalidTemplate` (a chosen
                     template cannot be rendered) or `InvalidName` (no valid child name);
  `TemplateNotFound` reason `MissingTemplate`: a unit's template name is not in the pool;
  `ChildConflict`    reason `NotControlledByGrid` (an object with the child's name exists and
                     this grid does not control it) or `NameCollision`;
  `ApplyFailed`      reason `ApplyError` unless the caller supplies the API error's reason.
  Messages list the affected units, sorted, as `unit: detail; ...`, at most 10 then
  `... and N more`, within metav1.Condition's 32768-character limit.

Invariants: `lastTransitionTime` changes only when a condition's status changes; conditions come
out in a fixed order (Ready, then the failure types above), so an unchanged situation yields an
identical list and no status write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

READY = "Ready"
INVALID_SPEC = "InvalidSpec"
TEMPLATE_NOT_FOUND = "TemplateNotFound"
CHILD_CONFLICT = "ChildConflict"
APPLY_FAILED = "ApplyFailed"
FAILURE_TYPES: tuple[str, ...] = (INVALID_SPEC, TEMPLATE_NOT_FOUND, CHILD_CONFLICT, APPLY_FAILED)

# Ready reasons.
ALL_UNITS_READY = "AllUnitsReady"
UNITS_NOT_READY = "UnitsNotReady"
UNITS_FAILED = "UnitsFailed"
NO_NODE_UNITS = "NoNodeUnits"
SERVICE_APPLIED = "ServiceApplied"
SERVICE_MISSING = "ServiceMissing"
SERVICE_FAILED = "ServiceFailed"
# Failure reasons (Ready uses INVALID_SPEC as its reason too).
VALIDATION_FAILED = "ValidationFailed"
INVALID_TEMPLATE = "InvalidTemplate"
INVALID_NAME = "InvalidName"
MISSING_TEMPLATE = "MissingTemplate"
NOT_CONTROLLED = "NotControlledByGrid"
NAME_COLLISION = "NameCollision"
APPLY_ERROR = "ApplyError"

MAX_MESSAGE = 32768
MAX_LISTED = 10


class UnitFailure(NamedTuple):
    """Why one unit (or, with unit "", the grid as a whole) has no up-to-date child."""

    unit: str
    type: str  # one of FAILURE_TYPES
    reason: str
    message: str


class ConditionSpec(NamedTuple):
    """A condition as computed, before lastTransitionTime and observedGeneration are added."""

    type: str
    status: str
    reason: str
    message: str


def format_time(now: datetime) -> str:
    """metav1.Time wire format: RFC 3339, UTC, whole seconds."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    return message[: MAX_MESSAGE - 3] + "..."


def list_units(entries: Iterable[str], *, limit: int = MAX_LISTED) -> str:
    """'a, b, c' with at most `limit` entries, then '... and N more'."""
    items = list(entries)
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", ... and {len(items) - limit} more"
    return shown


def failure_conditions(failures: Iterable[UnitFailure]) -> list[ConditionSpec]:
    """One True condition per failure type present, in FAILURE_TYPES order."""
    by_type: dict[str, list[UnitFailure]] = {}
    for failure in failures:
        by_type.setdefault(failure.type, []).append(failure)
    unknown = set(by_type) - set(FAILURE_TYPES)
    if unknown:
        raise ValueError(f"unknown failure condition types: {sorted(unknown)}")
    result: list[ConditionSpec] = []
    for ctype in FAILURE_TYPES:
        group = sorted(by_type.get(ctype, ()), key=lambda f: (f.unit, f.reason, f.message))
        if not group:
            continue
        reasons = sorted({f.reason for f in group})
        # One reason when all agree; otherwise the first, with each entry's own detail.
        reason = reasons[0]
        entries = [f"{f.unit}: {f.message}" if f.unit else f.message for f in group]
        result.append(ConditionSpec(ctype, "True", reason, truncate(list_units(entries))))
    return result


def find_condition(
    conditions: Iterable[Mapping[str, Any]] | None, ctype: str
) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if isinstance(condition, Mapping) and condition.get("type") == ctype:
            return condition
    return None


def merge_conditions(
    previous: Iterable[Mapping[str, Any]] | None,
    desired: Iterable[ConditionSpec],
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The new conditions list: `desired`, in order, with lastTransitionTime carried over from
    `previous` for every condition whose status did not change. Conditions not in `desired`
    are dropped (resolved failures disappear)."""
    stamp = format_time(now)
    previous_list = list(previous or ())
    result: list[dict[str, Any]] = []
    for spec in desired:
        old = find_condition(previous_list, spec.type)
        since = stamp
        if old is not None and old.get("status") == spec.status and old.get("lastTransitionTime"):
            since = str(old["lastTransitionTime"])
        condition: dict[str, Any] = {
            "type": spec.type,
            "status": spec.status,
            "reason": spec.reason,
            "message": truncate(spec.message),
            "lastTransitionTime": since,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        result.append(condition)
    return result
