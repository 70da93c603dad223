"""What the DNS daemon's caches keep of each object, and which changes matter to it.

Owns: one transform per watched kind (each keeps only the fields `records.py` and
`selectors.py` read) and `change_handler` (informer handlers that signal a change).

Invariants: transforms never mutate their input and return new dicts holding only the
listed fields (identity fields always: name, namespace, uid, resourceVersion); an update whose
transformed objects differ only in resourceVersion (pod status heartbeats, StatefulSet status,
Node conditions) is not a change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from servicegroup.informers.informer import HandlerFuncs
from servicegroup.informers.store import DeletedFinalStateUnknown

_IDENTITY = ("name", "namespace", "uid", "resourceVersion")


def _pick(value: object, keys: Iterable[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    return {key: value[key] for key in keys if key in value}


def _shape(
    obj: dict[str, Any], *, metadata: Iterable[str], spec: Iterable[str] = ()
) -> dict[str, Any]:
    out = _pick(obj, ("apiVersion", "kind"))
    out["metadata"] = _pick(obj.get("metadata"), (*_IDENTITY, *metadata))
    spec_keys = tuple(spec)
    if spec_keys:
        out["spec"] = _pick(obj.get("spec"), spec_keys)
    return out


def node_transform(obj: dict[str, Any]) -> dict[str, Any]:
    """A Node: its labels."""
    return _shape(obj, metadata=("labels",))


def grid_transform(obj: dict[str, Any]) -> dict[str, Any]:
    """A StatefulSetGrid / ServiceGrid: its identity and `gridUniqKey`."""
    return _shape(obj, metadata=(), spec=("gridUniqKey",))


def service_transform(obj: dict[str, Any]) -> dict[str, Any]:
    """A Service: who controls it."""
    return _shape(obj, metadata=("ownerReferences",))


def statefulset_transform(obj: dict[str, Any]) -> dict[str, Any]:
    """A StatefulSet: labels, controller, and which pods it wants behind which Service."""
    return _shape(
        obj,
        metadata=("labels", "ownerReferences"),
        spec=("serviceName", "replicas", "ordinals"),
    )


def pod_transform(obj: dict[str, Any]) -> dict[str, Any]:
    """A pod: controller, IPs, phase, readiness (only the Ready condition's status)."""
    out = _shape(obj, metadata=("ownerReferences", "deletionTimestamp"))
    status = obj.get("status")
    kept = _pick(status, ("phase", "podIP", "podIPs"))
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    ready = [
        {"type": "Ready", "status": condition.get("status")}
        for condition in (conditions if isinstance(conditions, list) else ())
        if isinstance(condition, Mapping) and condition.get("type") == "Ready"
    ]
    if ready:
        kept["conditions"] = ready[:1]
    out["status"] = kept
    return out


def _without_version(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": metadata}


def change_handler(signal: Callable[[], None]) -> HandlerFuncs:
    """Handlers that call `signal` on every change that survives the transform."""

    def on_update(old: dict[str, Any], new: dict[str, Any]) -> None:
        if _without_version(old) != _without_version(new):
            signal()

    def on_delete(_: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        signal()

    return HandlerFuncs(on_add=lambda _, __: signal(), on_update=on_update, on_delete=on_delete)
