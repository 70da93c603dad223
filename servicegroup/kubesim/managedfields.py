"""Server-side apply and managedFields bookkeeping, as kube-apiserver's field manager does it.

Owns `apply` (an apply patch: merge, prune what the applier stopped applying, detect
conflicts, return the new object with its managedFields) and `record_update` (the
managedFields of any other write: create, update, merge/strategic/JSON patch), plus the
`Conflict` / `ApplyConflict` pair the server turns into a 409 Status.

The algorithm is structured-merge-diff's Updater (`typed.py` has the value operations)
wrapped in the apiserver's chain of managers:
- identity of an entry: (manager, operation, apiVersion for Update only, subresource);
- an Update takes every field it adds or changes from every other manager, fields it
  removes leave every set, and its entry's time moves only when it took something;
- an Apply owns exactly its config's fields; fields it applied last time and no longer
  applies are removed from the object unless some manager still owns them; changing a
  field another manager owns is a conflict unless forced (then that manager loses it);
  applying the same value only shares ownership; an apply that changes nothing keeps
  the entry's time (and the server should then not write at all);
- apiVersion, kind, metadata, metadata.name/namespace and server-set metadata are never
  owned; objects whose managedFields were cleared stay untracked by updates, and their
  first apply first gives everything to "before-first-apply"; more than ten Update
  entries are folded into "ancient-changes" by age;
- entries sort as the apiserver sorts them: Apply before Update, then by time, manager,
  apiVersion, subresource.

Inputs are never mutated; results may share sub-values with them (stored objects are
immutable, and callers copy before mutating). The caller strips `status` (main resource)
or everything but `status` (status subresource) before calling, as the apiserver's
reset-fields strategy does, and passes the subresource so that each gets its own entries.

Decoded and encoded field sets are cached by their fieldsV1 JSON (`_V1_CACHE`): a stored
object's entries decode once, objects of one shape share one fieldsV1 dict (shared dicts,
never mutated), and an entry whose fields did not change keeps its stored fieldsV1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from servicegroup.kubesim import fieldpath as fp
from servicegroup.kubesim import typed
from servicegroup.kubesim.fieldpath import FieldSet
from servicegroup.kubesim.listtypes import ListTypes
from servicegroup.kubesim.patch import PatchError
from servicegroup.kubesim.typenode import TypeNode

APPLY, UPDATE = "Apply", "Update"
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"

# Set by the server, never taken from a request nor owned by anyone.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)

_STRIPPED = FieldSet.of(
    (fp.field("apiVersion"),),
    (fp.field("kind"),),
    (fp.field("metadata"),),
    *(
        (fp.field("metadata"), fp.field(name))
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        )
    ),
)


class ManagerKey(NamedTuple):
    """The identity of a managedFields entry (apiVersion only counts for Update)."""

    manager: str
    operation: str
    api_version: str
    subresource: str

    def identifier(self) -> str:
        """The JSON the apiserver uses as the manager's identity (and sorts conflicts by)."""
        fields: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.api_version:
            fields["apiVersion"] = self.api_version
        if self.subresource:
            fields["subresource"] = self.subresource
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class _Entry:
    fields: FieldSet
    api_version: str
    time: str | None
    raw: Mapping[str, Any] | None = None  # the stored fieldsV1, while `fields` is unchanged


_Managed = dict[ManagerKey, _Entry]


class Conflict(NamedTuple):
    """One conflicting field; `field` as kube-apiserver prints it (`.spec.replicas`)."""

    manager: str
    field: str
    operation: str = ""
    api_version: str = ""
    subresource: str = ""

    @property
    def description(self) -> str:
        """The manager as kube-apiserver names it: `"x"`, `"x" using apps/v1`, ..."""
        text = _go_quote(self.manager)
        if self.subresource:
            text = f"{text} with subresource {_go_quote(self.subresource)}"
        if self.operation == UPDATE:
            text = f"{text} using {self.api_version}"
        return text

    @property
    def message(self) -> str:
        """The message of the Status cause (reason FieldManagerConflict) for this field."""
        return f"conflict with {self.description}"

    def _identifier(self) -> str:
        key = ManagerKey(
            self.manager,
            self.operation,
            self.api_version if self.operation == UPDATE else "",
            self.subresource,
        )
        return key.identifier()


class ApplyConflict(Exception):
    """An apply that would change fields other managers own; str() is the 409 message."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = list(conflicts)
        super().__init__(_conflict_message(self.conflicts))

    def causes(self) -> list[dict[str, str]]:
        """The `details.causes` of kube-apiserver's 409 Status, one per field."""
        return [
            {"reason": "FieldManagerConflict", "message": c.message, "field": c.field}
            for c in self.conflicts
        ]


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _conflict_message(conflicts: list[Conflict]) -> str:
    if len(conflicts) == 1:
        only = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {only.description}: {only.field}"
    groups: dict[str, list[Conflict]] = {}
    for c in conflicts:
        groups.setdefault(c._identifier(), []).append(c)
    lines: list[str] = []
    for ident in sorted(groups):
        members = groups[ident]
        lines.append(f"conflicts with {members[0].description}:")
        lines.extend(f"- {c.field}" for c in members)
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


# ---- public operations ---------------------------------------------------------------------


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    subresource: str | None,
    now: str,
    list_types: ListTypes,
) -> dict[str, Any]:
    """The object after applying `config` as `manager` (live None: apply creates).

    Raises ApplyConflict (409) or PatchError (400 for a config of the wrong type or with
    managedFields, 500 for a config that does not fit the schema, as kube-apiserver)."""
    root = list_types.root
    _check_config(config, live, api_version)
    sub = subresource or ""
    live_v = _without_server_metadata(live or {})
    config_v = _without_server_metadata(config)
    managed = _decode_or_empty(_managed_fields_of(live))
    if live is not None and not managed:
        first = ManagerKey(BEFORE_FIRST_APPLY, UPDATE, api_version, sub)
        managed = _record(managed, {}, live_v, key=first, now=now, root=root)
    try:
        applied = typed.to_field_set(root, config_v, strict=True)
        merged = typed.merge(root, live_v, config_v)
    except typed.SchemaError as err:
        raise PatchError(
            f"failed to create typed patch object ({_gvknn(config)}): {err}", status=500
        ) from None
    if merged is typed.MISSING:
        merged = {}
    me = ManagerKey(manager, APPLY, "", sub)
    last = managed.get(me)
    managed[me] = _Entry(applied, api_version, last.time if last else None)
    mine = applied.difference(_STRIPPED)
    # Re-applying the fields applied last time prunes nothing: every field of the last set
    # (and, the set being an applied config's, every list item and map key above it) is
    # owned by the new config, so `_prune` would put everything back.
    if last is not None and not last.fields.empty() and last.fields != mine:
        merged = _prune(root, merged, managed, last.fields)
    changes = typed.compare_with_zero_fields(root, live_v, merged)
    changed = changes.changed()
    conflicts = {
        key: overlap
        for key, entry in managed.items()
        if key != me and not (overlap := entry.fields.intersection(changed)).empty()
    }
    if conflicts and not force:
        raise ApplyConflict(_conflicts(conflicts))
    for key, entry in list(managed.items()):
        if key == me:
            continue
        kept = entry.fields.difference(conflicts[key]) if key in conflicts else entry.fields
        kept = kept.difference(changes.removed)
        _store(managed, key, entry, kept)
    raw = last.raw if last is not None and last.fields == mine else None
    final = typed.drop_new_nulls(root, merged, live_v)
    unchanged = live is not None and (
        typed.identical(final, live_v) or typed.json_equal(final, live_v)
    )
    if mine.empty():
        managed.pop(me, None)
    else:
        # A no-op apply leaves the time alone (kube-apiserver stamps only real changes).
        time = (last.time if last is not None else None) if unchanged else now
        managed[me] = _Entry(mine, api_version, time, raw)
    return _with_managed_fields(final, live, _cap_update_managers(managed))


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    api_version: str,
    subresource: str | None,
    now: str,
    list_types: ListTypes,
) -> list[dict[str, Any]]:
    """The managedFields `new` should be stored with after a non-apply write (old None:
    a create). managedFields the client sent in `new` replace the stored ones, `[]` or
    `[{}]` clear them; an existing object without managedFields stays untracked."""
    managed = _managed_of_update(old, new, subresource)
    if old is not None and not managed:
        return []
    key = ManagerKey(manager, UPDATE, api_version, subresource or "")
    managed = _record(
        managed,
        _without_server_metadata(old or {}),
        _without_server_metadata(new),
        key=key,
        now=now,
        root=list_types.root,
    )
    return _encode(_cap_update_managers(managed))


def fields_of(entry: Mapping[str, Any]) -> FieldSet:
    """The FieldSet of one managedFields entry (for callers that inspect ownership)."""
    return FieldSet.from_fields_v1(entry.get("fieldsV1") or {})


# ---- the SMD updater -----------------------------------------------------------------------


def _record(
    managed: _Managed, old: Any, new: Any, *, key: ManagerKey, now: str, root: TypeNode
) -> _Managed:
    """An Update by `key`: it takes what changed from everyone; removals leave all sets."""
    changes = typed.compare_with_zero_fields(root, old, new)
    changed = changes.changed()
    out: _Managed = {}
    for other, entry in managed.items():
        _store(out, other, entry, entry.fields.difference(changed).difference(changes.removed))
    taken = changed.difference(changes.removed).difference(_STRIPPED)
    if not taken.empty():
        previous = out.get(key)
        fields = taken.union(previous.fields) if previous is not None else taken
        out[key] = _Entry(fields, key.api_version, now)
    return out


def _store(managed: _Managed, key: ManagerKey, entry: _Entry, fields: FieldSet) -> None:
    if fields.empty():
        managed.pop(key, None)
    elif fields == entry.fields:
        managed[key] = entry
    else:
        managed[key] = _Entry(fields, entry.api_version, entry.time)


def _prune(root: TypeNode, merged: Any, managed: _Managed, last: FieldSet) -> Any:
    """Remove what the applier applied last time and not now, unless someone owns it."""
    named = typed.ensure_named_fields_are_members
    last_named = named(last, root)
    pruned = typed.remove_items(root, merged, last_named)
    owned = FieldSet()
    for entry in managed.values():
        owned = owned.union(entry.fields)
    merged_fields = named(typed.to_field_set(root, merged), root)
    pruned_fields = named(typed.to_field_set(root, _or_empty(pruned)), root)
    # Put back everything someone (the applier's new config included) still owns...
    gone = merged_fields.difference(pruned_fields.union(named(owned, root)))
    pruned = typed.remove_items(root, merged, gone)
    # ...and anything removed that the applier did not own last time.
    pruned_fields = named(typed.to_field_set(root, _or_empty(pruned)), root)
    gone = merged_fields.difference(pruned_fields).intersection(last_named)
    return _or_empty(typed.remove_items(root, merged, gone))


def _or_empty(value: Any) -> Any:
    return {} if value is typed.MISSING else value


def _conflicts(conflicts: Mapping[ManagerKey, FieldSet]) -> list[Conflict]:
    out: list[Conflict] = []
    for key in sorted(conflicts, key=ManagerKey.identifier):
        out.extend(
            Conflict(
                key.manager,
                fp.path_to_string(path),
                key.operation,
                key.api_version,
                key.subresource,
            )
            for path in conflicts[key].paths()
        )
    return out


# ---- managedFields encoding ----------------------------------------------------------------


def _managed_fields_of(obj: Mapping[str, Any] | None) -> Any:
    meta = obj.get("metadata") if obj is not None else None
    return meta.get("managedFields") if isinstance(meta, Mapping) else None


def _decode(entries: Any) -> _Managed:
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    out: _Managed = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError("managedFields entries must be objects")
        if entry.get("fieldsType") != "FieldsV1":
            raise ValueError(f"unsupported fieldsType {entry.get('fieldsType')!r}")
        raw = entry.get("fieldsV1") or {}
        fields = _decode_fields(raw)
        operation = str(entry.get("operation", ""))
        version = str(entry.get("apiVersion", ""))
        key = ManagerKey(
            str(entry.get("manager", "")),
            operation,
            version if operation == UPDATE else "",
            str(entry.get("subresource", "")),
        )
        time = entry.get("time")
        previous = out.get(key)
        if previous is not None:
            fields = fields.union(previous.fields)
            raw = None
        out[key] = _Entry(fields, version, time if isinstance(time, str) else None, raw)
    return out


def _decode_or_empty(entries: Any) -> _Managed:
    if not entries:
        return {}
    try:
        return _decode(entries)
    except ValueError:
        return {}


def _managed_of_update(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], subresource: str | None
) -> _Managed:
    """decodeLiveOrNew: a main-resource write may reset or replace the managedFields."""
    live = _managed_fields_of(old)
    if subresource:
        return _decode_or_empty(live)
    sent = _managed_fields_of(new)
    if isinstance(sent, list) and (not sent or sent == [{}]):
        return {}
    managed = _decode_or_empty(sent)
    return managed or _decode_or_empty(live)


_V1_CACHE: dict[bytes, tuple[FieldSet, Mapping[str, Any]]] = {}
_V1_CACHE_SIZE = 512
_V1_CACHE_MAX_BYTES = 8 * 1024  # larger field sets are decoded and encoded every time


def _remember(text: bytes, fields: FieldSet, v1: Mapping[str, Any]) -> None:
    if len(text) > _V1_CACHE_MAX_BYTES:
        return
    if len(_V1_CACHE) >= _V1_CACHE_SIZE:
        del _V1_CACHE[next(iter(_V1_CACHE))]
    # A right-sized copy: orjson's output keeps its whole (much larger) write buffer.
    _V1_CACHE[memoryview(text).tobytes()] = (fields, v1)


def _decode_fields(raw: Any) -> FieldSet:
    """FieldSet.from_fields_v1, cached by the JSON of `raw` (a shared, immutable FieldSet)."""
    try:
        text = orjson.dumps(raw)
    except TypeError:
        return FieldSet.from_fields_v1(raw)
    found = _V1_CACHE.get(text)
    if found is not None:
        return found[0]
    fields = FieldSet.from_fields_v1(raw)
    _remember(text, fields, raw)
    return fields


def _encode_fields(fields: FieldSet) -> Mapping[str, Any]:
    """fields.to_fields_v1(), one shared dict per distinct fieldsV1 (never mutated)."""
    v1 = fields.to_fields_v1()
    text = orjson.dumps(v1)
    found = _V1_CACHE.get(text)
    if found is not None:
        return found[1]
    _remember(text, fields, v1)
    return v1


def _seconds(time: str | None) -> int:
    if not time:
        return 0
    try:
        return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode(managed: _Managed) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for key, entry in managed.items():
        encoded: dict[str, Any] = {"manager": key.manager, "operation": key.operation}
        if entry.api_version:
            encoded["apiVersion"] = entry.api_version
        if entry.time is not None:
            encoded["time"] = entry.time
        encoded["fieldsType"] = "FieldsV1"
        encoded["fieldsV1"] = entry.raw if entry.raw is not None else _encode_fields(entry.fields)
        if key.subresource:
            encoded["subresource"] = key.subresource
        entries.append(encoded)
    entries.sort(
        key=lambda e: (
            e["operation"],
            _seconds(e.get("time")),
            e["manager"],
            e.get("apiVersion", ""),
            e.get("subresource", ""),
        )
    )
    return entries


def _cap_update_managers(managed: _Managed) -> _Managed:
    """Fold the oldest Update entries into per-apiVersion "ancient-changes" entries."""
    updaters = [key for key in managed if key.operation == UPDATE]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return managed
    updaters.sort(key=lambda k: (_seconds(managed[k].time), k.identifier()))
    first_of_version: dict[str, ManagerKey] = {}
    count = len(updaters)
    for key in updaters:
        if count <= MAX_UPDATE_MANAGERS:
            break
        entry = managed[key]
        version = entry.api_version
        bucket = ManagerKey(ANCIENT_CHANGES, UPDATE, version, "")
        if version not in first_of_version:
            first_of_version[version] = key
            continue
        if bucket not in managed:
            managed[bucket] = managed.pop(first_of_version[version])
        merged = entry.fields.union(managed[bucket].fields)
        del managed[key]
        managed[bucket] = _Entry(merged, version, entry.time)
        count -= 1
    return managed


# ---- objects ---------------------------------------------------------------------------------


def _without_server_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        out["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_METADATA}
    return out


def _with_managed_fields(
    final: Any, live: Mapping[str, Any] | None, managed: _Managed
) -> dict[str, Any]:
    result: dict[str, Any] = dict(final) if isinstance(final, dict) else {}
    meta = result.get("metadata")
    meta = dict(meta) if isinstance(meta, dict) else {}
    live_meta = live.get("metadata") if live is not None else None
    if isinstance(live_meta, Mapping):
        ordered: dict[str, Any] = {}
        for k, v in live_meta.items():
            if k in SERVER_METADATA:
                ordered[k] = v
            elif k in meta:
                ordered[k] = meta[k]
        ordered.update((k, v) for k, v in meta.items() if k not in ordered)
        meta = ordered
    meta.pop("managedFields", None)
    entries = _encode(managed)
    if entries:
        meta["managedFields"] = entries
    result["metadata"] = meta
    return result


def _check_config(config: Any, live: Mapping[str, Any] | None, api_version: str) -> None:
    if not isinstance(config, dict):
        raise PatchError("apply patch must be an object")
    version, kind = config.get("apiVersion"), config.get("kind")
    expected_kind = live.get("kind") if live is not None else None
    if (
        version != api_version
        or not isinstance(kind, str)
        or not kind
        or (expected_kind and kind != expected_kind)
    ):
        raise PatchError(f"invalid object type: {_gvk(version, kind)}")
    meta = config.get("metadata")
    if isinstance(meta, Mapping) and meta.get("managedFields") is not None:
        raise PatchError("metadata.managedFields must be nil")


def _gvk(version: Any, kind: Any) -> str:
    """GroupVersionKind.String(): `apps/v1, Kind=Deployment`, `/v1, Kind=ConfigMap`."""
    text = version if isinstance(version, str) else ""
    group, _, ver = text.rpartition("/")
    return f"{group}/{ver}, Kind={kind if isinstance(kind, str) else ''}"


def _gvknn(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return (
        f"{meta.get('namespace', '')}/{meta.get('name', '')}; "
        f"{_gvk(obj.get('apiVersion'), obj.get('kind'))}"
    )
