"""Facts read from raw objects: controller references, pod phase, readiness, availability.

Owns the small pure predicates every workload controller shares, spelled as the upstream
helpers are (`metav1.GetControllerOf`, `podutil.IsPodReady`, `IsPodAvailable`,
`controller.IsPodActive`), plus condition helpers for the raw condition lists.

Invariants:
- Pure functions of their arguments: nothing here reads the store, the clock or a global.
- Objects are read, never mutated; helpers that build a new condition list return a new
  list and leave the given one alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from servicegroup.kubesim.engine import parse_rfc3339

Obj = dict[str, Any]


def meta(obj: Mapping[str, Any]) -> Obj:
    found = obj.get("metadata")
    return found if isinstance(found, dict) else {}


def spec(obj: Mapping[str, Any]) -> Obj:
    found = obj.get("spec")
    return found if isinstance(found, dict) else {}


def status(obj: Mapping[str, Any]) -> Obj:
    found = obj.get("status")
    return found if isinstance(found, dict) else {}


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    found = meta(obj).get("labels")
    return found if isinstance(found, dict) else {}


def controller_ref(obj: Mapping[str, Any]) -> Obj | None:
    """The ownerReference with `controller: true`, if any (metav1.GetControllerOf)."""
    for ref in meta(obj).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def controller_uid(obj: Mapping[str, Any], kind: str) -> str | None:
    """The uid of the controlling owner when it is of `kind`."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    uid = ref.get("uid")
    return uid if isinstance(uid, str) and uid else None


def owner_reference(owner: Mapping[str, Any], *, api_version: str, kind: str) -> Obj:
    """A controller reference to `owner`, as the built-in controllers write it."""
    owner_meta = meta(owner)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner_meta["name"],
        "uid": owner_meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def phase(pod: Mapping[str, Any]) -> str:
    return str(status(pod).get("phase") or "")


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_active(pod: Mapping[str, Any]) -> bool:
    """controller.IsPodActive: neither finished nor being deleted."""
    return not is_terminal(pod) and not is_terminating(pod)


def condition(obj: Mapping[str, Any], type_: str) -> Obj | None:
    for cond in status(obj).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    """podutil.IsPodReady: the Ready condition is True."""
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> datetime | None:
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    stamp = cond.get("lastTransitionTime")
    if not isinstance(stamp, str):
        return None
    try:
        return parse_rfc3339(stamp)
    except ValueError:
        return None


def available_in(pod: Mapping[str, Any], *, min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until the pod counts as available (0 = available now); None when not ready.

    podutil.IsPodAvailable: ready, and ready for at least `minReadySeconds`.
    """
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return 0.0
    remaining = since.timestamp() + min_ready_seconds - now.timestamp()
    return max(0.0, remaining)


def is_available(pod: Mapping[str, Any], *, min_ready_seconds: int, now: datetime) -> bool:
    return available_in(pod, min_ready_seconds=min_ready_seconds, now=now) == 0.0


def set_condition(
    conditions: list[Obj] | None, new: Obj, *, now: str, keep_order: bool = True
) -> list[Obj]:
    """A copy of `conditions` with `new` in place of its type (podutil.UpdatePodCondition).

    `lastTransitionTime` moves only when the status changes. With `keep_order` the condition
    stays where it was; otherwise it goes to the end (deployment util SetDeploymentCondition).
    """
    result: list[Obj] = []
    placed = False
    for cond in conditions or ():
        if cond.get("type") != new["type"]:
            result.append(cond)
            continue
        merged = dict(new)
        if cond.get("status") == new.get("status") and cond.get("lastTransitionTime"):
            merged["lastTransitionTime"] = cond["lastTransitionTime"]
        else:
            merged["lastTransitionTime"] = now
        if keep_order:
            result.append(merged)
            placed = True
        else:
            new = merged
    if not placed:
        if "lastTransitionTime" not in new or new.get("lastTransitionTime") is None:
            new = {**new, "lastTransitionTime": now}
        result.append(new)
    return result


def int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of `total`."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return 0
        scaled = percent * total
        if round_up:
            return -(-scaled // 100)
        return scaled // 100
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0
