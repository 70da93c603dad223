"""Namespace deletion (kube-controller-manager's namespace controller).

Owns: `NamespaceController` - when a Namespace is marked for deletion (phase Terminating),
deletes every namespaced object in it, of every served resource, waits until none is left
(objects with finalizers keep it waiting, as on a real cluster), then removes the
`kubernetes` finalizer through `/finalize` and deletes the Namespace for good.

Invariants:
- Writes go through the Engine (field manager `kube-controller-manager`).
- A terminating namespace is re-examined whenever anything in it changes, so it finishes as
  soon as its last object is gone.
"""

from __future__ import annotations

from servicegroup.kubesim import errors
from servicegroup.kubesim.engine import DeleteOptions, Engine, WriteContext
from servicegroup.kubesim.registry import StorageKey
from servicegroup.kubesim.store import DELETED, StoreEvent, clone, meta_of
from servicegroup.kubesim.workloop import WorkLoop

MANAGER = "kube-controller-manager"
NAMESPACES = StorageKey("", "namespaces")


class NamespaceController:
    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine
        self.work: WorkLoop[str] = WorkLoop()
        self._terminating: set[str] = set()
        engine.store.add_listener(self.on_event)

    def on_event(self, event: StoreEvent) -> None:
        meta = meta_of(event.obj)
        if event.key == NAMESPACES:
            name = meta["name"]
            if event.type == DELETED:
                self._terminating.discard(name)
            elif meta.get("deletionTimestamp"):
                self._terminating.add(name)
                self.work.add(name)
            return
        namespace = meta.get("namespace")
        if namespace and namespace in self._terminating:
            self.work.add(namespace)

    async def run(self) -> None:
        await self.work.run(self._process)

    @property
    def idle(self) -> bool:
        return self.work.idle

    def _process(self, name: str) -> None:
        engine = self.engine
        namespaces = engine.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        namespace = engine.store.get(NAMESPACES, "", name)
        if namespace is None or not meta_of(namespace).get("deletionTimestamp"):
            return
        ctx = WriteContext(manager=MANAGER)
        remaining = 0
        for key in engine.registry.storage_keys():
            rt = engine.registry.for_storage(key)
            if rt is None or not rt.namespaced:
                continue
            for obj in list(engine.store.items(key, name)):
                remaining += 1
                meta = meta_of(obj)
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    engine.delete(
                        rt,
                        name,
                        meta["name"],
                        ctx,
                        options=DeleteOptions(
                            propagation_policy="Background", precondition_uid=meta.get("uid")
                        ),
                    )
                except errors.ApiError as err:
                    if err.code not in (404, 409):
                        raise
        if any(engine.store.count(key, name) for key in engine.registry.storage_keys()):
            return  # objects with finalizers (or terminating pods) remain: wait for events
        del remaining
        spec_finalizers = (namespace.get("spec") or {}).get("finalizers") or []
        if "kubernetes" in spec_finalizers:
            finalized = clone(namespace)
            finalized["spec"]["finalizers"] = [f for f in spec_finalizers if f != "kubernetes"]
            namespace, _ = engine.update(
                namespaces, None, name, finalized, ctx, subresource="finalize"
            )
        try:
            engine.delete(namespaces, None, name, ctx)
        except errors.ApiError as err:
            if err.code != 404:
                raise
