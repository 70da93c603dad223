"""Garbage collection by ownerReferences (kube-controller-manager's garbage collector).

Owns: `GarbageCollector` - an owner-uid -> dependents index maintained from store events, and
one work loop that:
- deletes the dependents of an owner that is gone (background propagation; in foreground
  when a remaining owner waits for them), or strips the references to vanished owners from
  dependents that still have a live owner;
- for an owner being deleted with the `orphan` finalizer, removes the references to it from
  its dependents and then the finalizer;
- for an owner being deleted with the `foregroundDeletion` finalizer, deletes its dependents
  (in foreground too) and removes the finalizer once no dependent with
  `blockOwnerDeletion: true` is left;
- collects dependents whose owner never existed (dangling references), after checking the
  owner's absence by name and uid (as the real GC does) following a short delay.

Invariants:
- The GC writes only through the Engine (field manager `kube-controller-manager`), so its
  changes produce watch events like any client's.
- An owner is identified by uid; it counts as present only when an object with the
  reference's kind, name (and the dependent's namespace, for namespaced kinds) exists with
  that uid. Owners of kinds kubesim does not serve are never considered absent.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

from servicegroup.kubesim import errors
from servicegroup.kubesim.engine import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    DeleteOptions,
    Engine,
    WriteContext,
)
from servicegroup.kubesim.registry import StorageKey
from servicegroup.kubesim.store import DELETED, StoreEvent, clone, meta_of
from servicegroup.kubesim.workloop import WorkLoop

Obj = dict[str, Any]
MANAGER = "kube-controller-manager"


class ObjectRef(NamedTuple):
    key: StorageKey
    namespace: str
    name: str


class Work(NamedTuple):
    """`owner`: re-examine an owner uid and its dependents; `dependent`: check one object."""

    kind: str
    uid: str
    ref: ObjectRef | None = None


class GarbageCollector:
    def __init__(self, *, engine: Engine, dangling_delay: float = 0.1) -> None:
        self.engine = engine
        self.dangling_delay = dangling_delay
        self.work: WorkLoop[Work] = WorkLoop()
        # owner uid -> dependents referencing it
        self._dependents: dict[str, set[ObjectRef]] = defaultdict(set)
        # dependent -> owner uids it references (to keep the index exact on updates)
        self._owners: dict[ObjectRef, set[str]] = {}
        # uid -> object being deleted with an orphan/foreground finalizer
        self._finalizing: dict[str, ObjectRef] = {}
        engine.store.add_listener(self.on_event)

    # ---- event intake (synchronous, no writes) -----------------------------------------

    def on_event(self, event: StoreEvent) -> None:
        meta = meta_of(event.obj)
        ref = ObjectRef(event.key, meta.get("namespace", ""), meta["name"])
        uid = meta.get("uid", "")
        old_uids = self._owners.pop(ref, set())
        for owner_uid in old_uids:
            dependents = self._dependents.get(owner_uid)
            if dependents is not None:
                dependents.discard(ref)
                if not dependents:
                    del self._dependents[owner_uid]
        if event.type == DELETED:
            self._finalizing.pop(uid, None)
            # Owners waiting in foreground for this dependent may now proceed.
            for owner_uid in old_uids:
                self.work.add(Work("owner", owner_uid))
            if uid in self._dependents:
                self.work.add(Work("owner", uid))
            return
        new_uids = {r.get("uid", "") for r in meta.get("ownerReferences") or [] if r.get("uid")}
        if new_uids:
            self._owners[ref] = new_uids
            for owner_uid in new_uids:
                self._dependents[owner_uid].add(ref)
            if new_uids - old_uids:
                self.work.add_after(Work("dependent", uid, ref), self.dangling_delay)
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and (
            ORPHAN_FINALIZER in finalizers or FOREGROUND_FINALIZER in finalizers
        ):
            self._finalizing[uid] = ref
            self.work.add(Work("owner", uid))
        else:
            self._finalizing.pop(uid, None)

    async def run(self) -> None:
        await self.work.run(self._process)

    @property
    def idle(self) -> bool:
        return self.work.idle

    # ---- processing --------------------------------------------------------------------

    def _ctx(self) -> WriteContext:
        return WriteContext(manager=MANAGER)

    def _process(self, work: Work) -> None:
        try:
            if work.kind == "dependent" and work.ref is not None:
                self._check_dependent(work.ref)
            else:
                self._process_owner(work.uid)
        except errors.ApiError as err:
            if err.code not in (404, 409):
                raise
            # Raced with another writer: look again on the next event.

    def _find(self, ref: ObjectRef) -> Obj | None:
        return self.engine.store.get(ref.key, ref.namespace, ref.name)

    def _owner_object(self, dependent_ns: str, owner_ref: dict[str, Any]) -> Obj | bool | None:
        """The live owner; None when verifiably absent; False when its kind is unknown."""
        api_version = str(owner_ref.get("apiVersion", ""))
        group = api_version.rpartition("/")[0]
        rt = self.engine.registry.by_api_version_kind(api_version, str(owner_ref.get("kind", "")))
        if rt is None:
            # An owner in another served version of the same group/kind still resolves.
            for candidate in self.engine.registry:
                if candidate.group == group and candidate.kind == owner_ref.get("kind"):
                    rt = candidate
                    break
        if rt is None:
            return False
        namespace = dependent_ns if rt.namespaced else ""
        obj = self.engine.store.get(
            self.engine.registry.storage_key(rt), namespace, str(owner_ref.get("name", ""))
        )
        if obj is None or meta_of(obj).get("uid") != owner_ref.get("uid"):
            return None
        return obj

    def _process_owner(self, uid: str) -> None:
        dependents = sorted(self._dependents.get(uid, set()))
        owner: tuple[StorageKey, Obj] | None = None
        finalizing = self._finalizing.get(uid)
        if finalizing is not None:
            found = self._find(finalizing)
            if found is not None and meta_of(found).get("uid") == uid:
                owner = (finalizing.key, found)
        if owner is None:
            owner = self._owner_by_uid(uid, dependents)
        if owner is None:
            for ref in dependents:
                self._check_dependent(ref)
            return
        owner_meta = meta_of(owner[1])
        finalizers = owner_meta.get("finalizers") or []
        if not owner_meta.get("deletionTimestamp"):
            return
        if ORPHAN_FINALIZER in finalizers:
            for ref in dependents:
                self._strip_references(ref, {uid})
            self._remove_finalizer(owner[0], owner[1], ORPHAN_FINALIZER)
            return
        if FOREGROUND_FINALIZER in finalizers:
            blocking = False
            for ref in dependents:
                dependent = self._find(ref)
                if dependent is None:
                    continue
                dep_meta = meta_of(dependent)
                if any(
                    r.get("uid") == uid and r.get("blockOwnerDeletion")
                    for r in dep_meta.get("ownerReferences") or []
                ):
                    blocking = True
                if not dep_meta.get("deletionTimestamp"):
                    self._delete(ref, dependent, "Foreground")
            if not blocking:
                self._remove_finalizer(owner[0], owner[1], FOREGROUND_FINALIZER)

    def _owner_by_uid(self, uid: str, dependents: list[ObjectRef]) -> tuple[StorageKey, Obj] | None:
        """Find the owner with `uid` through any dependent's reference to it."""
        for ref in dependents:
            dependent = self._find(ref)
            if dependent is None:
                continue
            for owner_ref in meta_of(dependent).get("ownerReferences") or []:
                if owner_ref.get("uid") != uid:
                    continue
                found = self._owner_object(ref.namespace, owner_ref)
                if found is False:
                    return None
                if isinstance(found, dict):
                    rt = self.engine.registry.by_api_version_kind(
                        found["apiVersion"], found["kind"]
                    )
                    if rt is not None:
                        return self.engine.registry.storage_key(rt), found
                return None
        return None

    def _check_dependent(self, ref: ObjectRef) -> None:
        """attemptToDeleteItem: delete a dependent whose owners are all gone."""
        dependent = self._find(ref)
        if dependent is None:
            return
        meta = meta_of(dependent)
        owner_refs = meta.get("ownerReferences") or []
        if not owner_refs:
            return
        solid: list[dict[str, Any]] = []
        dangling: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        for owner_ref in owner_refs:
            found = self._owner_object(ref.namespace, owner_ref)
            if found is False:
                solid.append(owner_ref)  # unknown kind: never collect on its account
            elif found is None:
                dangling.append(owner_ref)
            else:
                assert isinstance(found, dict)
                found_meta = meta_of(found)
                if (
                    found_meta.get("deletionTimestamp")
                    and FOREGROUND_FINALIZER in (found_meta.get("finalizers") or [])
                    and owner_ref.get("blockOwnerDeletion")
                ):
                    waiting.append(owner_ref)
                else:
                    solid.append(owner_ref)
        if solid:
            if dangling or waiting:
                self._strip_references(ref, {str(r.get("uid")) for r in [*dangling, *waiting]})
            return
        if meta.get("deletionTimestamp"):
            return
        policy = "Foreground" if waiting else "Background"
        if not waiting and ORPHAN_FINALIZER in (meta.get("finalizers") or []):
            policy = "Orphan"
        self._delete(ref, dependent, policy)

    # ---- writes ------------------------------------------------------------------------

    def _rt(self, key: StorageKey) -> Any:
        rt = self.engine.registry.for_storage(key)
        if rt is None:
            raise errors.not_found(key.group, key.plural, "")
        return rt

    def _delete(self, ref: ObjectRef, obj: Obj, policy: str) -> None:
        rt = self._rt(ref.key)
        self.engine.delete(
            rt,
            ref.namespace or None,
            ref.name,
            self._ctx(),
            options=DeleteOptions(propagation_policy=policy, precondition_uid=meta_of(obj)["uid"]),
        )

    def _strip_references(self, ref: ObjectRef, uids: set[str]) -> None:
        dependent = self._find(ref)
        if dependent is None:
            return
        meta = meta_of(dependent)
        refs = meta.get("ownerReferences") or []
        kept = [r for r in refs if r.get("uid") not in uids]
        if len(kept) == len(refs):
            return
        rt = self._rt(ref.key)
        updated = clone(dependent)
        if kept:
            updated["metadata"]["ownerReferences"] = kept
        else:
            updated["metadata"].pop("ownerReferences", None)
        self.engine.update(rt, ref.namespace or None, ref.name, updated, self._ctx())

    def _remove_finalizer(self, key: StorageKey, owner: Obj, finalizer: str) -> None:
        meta = meta_of(owner)
        rt = self._rt(key)
        updated = clone(owner)
        remaining = [f for f in meta.get("finalizers") or [] if f != finalizer]
        if remaining:
            updated["metadata"]["finalizers"] = remaining
        else:
            updated["metadata"].pop("finalizers", None)
        self.engine.update(rt, meta.get("namespace") or None, meta["name"], updated, self._ctx())
