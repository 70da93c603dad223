"""kube-controller-manager's ReplicaSet controller for kubesim.

Owns: `ReplicaSetController` - a loop over ReplicaSet keys that keeps `spec.replicas` active
pods for each ReplicaSet (creating pods from the template with `generateName: {rs}-` and a
controller reference, deleting the least valuable pods first when there are too many), and
writes its status: `replicas`, `fullyLabeledReplicas`, `readyReplicas`,
`availableReplicas` (ready for `minReadySeconds`), `observedGeneration`.

Invariants:
- Pods belong to a ReplicaSet through their controller reference (uid-checked, via the
  owner index); pods being deleted or finished do not count as replicas.
- Creates and deletes are seen by the index as soon as they commit (in-process, synchronous),
  so no "expectations" are needed: a pass never double-creates.
- At most `burst` pods are created or deleted per ReplicaSet per pass (kube-controller-
  manager's burstReplicas), the rest in following passes.
- Status is written through the status subresource only when it changes; a ReplicaSet being
  deleted keeps its pods (the garbage collector removes them).
- Pods waiting out `minReadySeconds` requeue their ReplicaSet for the moment they become
  available.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.engine import parse_rfc3339
from servicegroup.kubesim.store import DELETED, StoreEvent, clone
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.index import PODS, REPLICASETS, Key, key_of

Obj = dict[str, Any]

BURST_REPLICAS = 500
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _timestamp(value: Any) -> float:
    if isinstance(value, str):
        try:
            return parse_rfc3339(value).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def pod_from_template(owner: Obj, *, api_version: str, kind: str, name_prefix: str) -> Obj:
    """The pod a workload controller creates from its template (controller.GetPodFromTemplate)."""
    owner_meta = objects.meta(owner)
    template = objects.spec(owner).get("template") or {}
    template_meta = template.get("metadata") or {}
    metadata: Obj = {
        "generateName": name_prefix,
        "namespace": owner_meta.get("namespace"),
        "ownerReferences": [objects.owner_reference(owner, api_version=api_version, kind=kind)],
    }
    if template_meta.get("labels"):
        metadata["labels"] = dict(template_meta["labels"])
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    if template_meta.get("finalizers"):
        metadata["finalizers"] = list(template_meta["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": clone(template.get("spec") or {}),
    }


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order a scale-down removes them (controller.ActivePodsWithRanks)."""
    per_node: dict[str, int] = {}
    for pod in pods:
        node = objects.spec(pod).get("nodeName")
        if node:
            per_node[node] = per_node.get(node, 0) + 1

    def rank(pod: Obj) -> tuple[Any, ...]:
        spec = objects.spec(pod)
        node = spec.get("nodeName") or ""
        since = objects.ready_since(pod)
        restarts = sum(
            int(s.get("restartCount") or 0)
            for s in objects.status(pod).get("containerStatuses") or ()
            if isinstance(s, dict)
        )
        return (
            bool(node),
            _PHASE_RANK.get(objects.phase(pod), 0),
            objects.is_ready(pod),
            -per_node.get(node, 0),
            -(since.timestamp() if since else 0.0),
            -restarts,
            -_timestamp(objects.meta(pod).get("creationTimestamp")),
        )

    return sorted(pods, key=rank)


def _compact(status: Obj, keep: tuple[str, ...]) -> Obj:
    """Drop zero / empty fields the Go types mark omitempty."""
    return {k: v for k, v in status.items() if k in keep or v not in (0, None, "", [], {})}


class ReplicaSetController(LoopController[Key]):
    name = "replicaset-controller"

    def on_event(self, event: StoreEvent) -> None:
        if event.key == REPLICASETS:
            self.queue.add(key_of(event.obj))
        elif event.key == PODS:
            for obj in (event.obj, event.old):
                if obj is None:
                    continue
                ref = objects.controller_ref(obj)
                if ref is not None and ref.get("kind") == "ReplicaSet":
                    self.queue.add((objects.meta(obj).get("namespace", ""), str(ref.get("name"))))
                if event.type == DELETED:
                    break

    def resync(self) -> None:
        for rs in self.store.items(REPLICASETS):
            self.queue.add(key_of(rs))

    def process(self, key: Key) -> None:
        rs = self.store.get(REPLICASETS, *key)
        if rs is None:
            return
        uid = objects.meta(rs).get("uid", "")
        if not objects.is_terminating(rs):
            self._manage(key, rs, uid)
        self._sync_status(key, uid)

    def _active_pods(self, uid: str) -> list[Obj]:
        return [p for p in self.index.pods_owned_by(uid) if objects.is_active(p)]

    def _manage(self, key: Key, rs: Obj, uid: str) -> None:
        wanted = int(objects.spec(rs).get("replicas", 1) or 0)
        active = self._active_pods(uid)
        diff = len(active) - wanted
        if diff < 0:
            for _ in range(min(-diff, BURST_REPLICAS)):
                pod = pod_from_template(
                    rs, api_version="apps/v1", kind="ReplicaSet", name_prefix=f"{key[1]}-"
                )
                self.writer.create(PODS, key[0], pod)
        elif diff > 0:
            for pod in deletion_order(active)[: min(diff, BURST_REPLICAS)]:
                meta = objects.meta(pod)
                self.writer.delete(PODS, key[0], meta["name"], uid=meta.get("uid"))

    def _sync_status(self, key: Key, uid: str) -> None:
        rs = self.store.get(REPLICASETS, *key)
        if rs is None:
            return
        spec = objects.spec(rs)
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        now = self.clock.now()
        active = self._active_pods(uid)
        ready = available = labelled = 0
        wait: float | None = None
        for pod in active:
            pod_labels = objects.labels(pod)
            if all(pod_labels.get(k) == v for k, v in template_labels.items()):
                labelled += 1
            remaining = objects.available_in(pod, min_ready_seconds=min_ready, now=now)
            if remaining is None:
                continue
            ready += 1
            if remaining == 0:
                available += 1
            else:
                wait = remaining if wait is None else min(wait, remaining)
        if wait is not None:
            self.queue.add_after(key, wait)
        self.write_status(rs, self._status(rs, len(active), labelled, ready, available))

    def _status(self, rs: Obj, replicas: int, labelled: int, ready: int, available: int) -> Obj:
        current = objects.status(rs)
        status: Obj = {
            "replicas": replicas,
            "fullyLabeledReplicas": labelled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": objects.meta(rs).get("generation"),
        }
        if current.get("conditions"):
            status["conditions"] = current["conditions"]
        return _compact(status, ("replicas",))

    def write_status(self, obj: Obj, status: Obj) -> None:
        if status == objects.status(obj):
            return
        meta = objects.meta(obj)
        self.writer.update_status(
            REPLICASETS,
            {
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta.get("namespace"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "status": status,
            },
        )
