"""Conversion between a served version and its storage form.

Owns: `to_storage` / `from_storage`. Custom resources (no conversion webhook) only get their
apiVersion rewritten; events.k8s.io/v1 Events are stored as core v1 Events and their fields
renamed both ways (note <-> message, regarding <-> involvedObject, deprecated* <-> ...), as
kube-apiserver does.

Invariants: neither function mutates its argument; an object already in the requested form
is returned as is (no copy).
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.registry import ResourceType

Obj = dict[str, Any]

# events.k8s.io/v1 field -> core/v1 field
_EVENT_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_CORE_FIELDS = {core: new for new, core in _EVENT_FIELDS.items()}


def _is_events_v1(rt: ResourceType) -> bool:
    return rt.group == "events.k8s.io" and rt.plural == "events"


def storage_api_version(rt: ResourceType) -> str:
    return "v1" if _is_events_v1(rt) else rt.api_version


def to_storage(rt: ResourceType, obj: Obj) -> Obj:
    """The object as stored (core Events for events.k8s.io)."""
    if not _is_events_v1(rt):
        return obj
    out = {_EVENT_FIELDS.get(key, key): value for key, value in obj.items()}
    out["apiVersion"] = "v1"
    return out


def from_storage(rt: ResourceType, obj: Obj) -> Obj:
    """The stored object as the client's version of `rt`."""
    if _is_events_v1(rt):
        out = {_CORE_FIELDS.get(key, key): value for key, value in obj.items()}
        out["apiVersion"] = rt.api_version
        return out
    if obj.get("apiVersion") != rt.api_version:
        return {**obj, "apiVersion": rt.api_version}
    return obj
