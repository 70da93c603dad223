"""kube-controller-manager's StatefulSet controller for kubesim.

Owns: `StatefulSetController` - a loop over StatefulSet keys that:
- records the pod template as ControllerRevisions `{set}-{hash}` (data: the template as a
  `$patch: replace` strategic patch; `revision` numbers increasing; an earlier equal
  revision is reused with a new number) and trims unused ones beyond
  `revisionHistoryLimit`;
- keeps pods `{set}-{ordinal}` for ordinals `start .. start+replicas-1`, labelled
  `controller-revision-hash`, `statefulset.kubernetes.io/pod-name` and
  `apps.kubernetes.io/pod-index`, with `hostname` = pod name and `subdomain` =
  `serviceName`; `OrderedReady` creates them one at a time in ordinal order, each once the
  previous one is Running and Ready (and available for `minReadySeconds`), and removes
  surplus pods from the highest ordinal down, one at a time; `Parallel` does both at once;
- replaces failed pods; rolls out template changes (RollingUpdate from the highest ordinal
  down to `partition`, one pod at a time, each waiting for the previous to be healthy;
  OnDelete leaves pods alone);
- writes status: `observedGeneration`, `replicas`, `readyReplicas`, `currentReplicas`,
  `updatedReplicas`, `availableReplicas`, `currentRevision`, `updateRevision`,
  `collisionCount`.

Invariants:
- Pods and revisions belong to a StatefulSet through their controller reference (uid).
- Writes are `kube-controller-manager`'s: pods and revisions created/deleted/updated through
  the main endpoints, the StatefulSet only through its status subresource, when changed.
- A StatefulSet being deleted only has its status updated (the GC deletes its pods).
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.store import DELETED, StoreEvent, clone
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.index import PODS, REVISIONS, STATEFULSETS, Key, key_of
from servicegroup.kubesim.workloads.podhash import revision_hash

Obj = dict[str, Any]

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
HASH_LABEL = "controller.kubernetes.io/hash"


def ordinal_of(set_name: str, pod_name: str) -> int | None:
    parent, sep, ordinal = pod_name.rpartition("-")
    if not sep or parent != set_name or not ordinal.isdigit():
        return None
    return int(ordinal)


def revision_data(sts: Obj) -> Obj:
    """The ControllerRevision payload: the pod template as a replacing strategic patch."""
    template = clone(objects.spec(sts).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of_revision(revision: Obj) -> Obj:
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_name(set_name: str, hash_: str) -> str:
    return f"{set_name[:223]}-{hash_}"


def _is_running_and_ready(pod: Obj) -> bool:
    return objects.phase(pod) == "Running" and objects.is_ready(pod)


class StatefulSetController(LoopController[Key]):
    name = "statefulset-controller"

    def on_event(self, event: StoreEvent) -> None:
        if event.key == STATEFULSETS:
            self.queue.add(key_of(event.obj))
        elif event.key in (PODS, REVISIONS):
            for obj in (event.obj, event.old):
                if obj is None:
                    continue
                ref = objects.controller_ref(obj)
                if ref is not None and ref.get("kind") == "StatefulSet":
                    self.queue.add((objects.meta(obj).get("namespace", ""), str(ref.get("name"))))
                if event.type == DELETED:
                    break

    def resync(self) -> None:
        for sts in self.store.items(STATEFULSETS):
            self.queue.add(key_of(sts))

    # ---- revisions ---------------------------------------------------------------------

    def _revisions(self, sts: Obj) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collisionCount), creating what is missing."""
        uid = objects.meta(sts)["uid"]
        revisions = sorted(
            self.index.revisions_owned_by(uid),
            key=lambda r: (int(r.get("revision") or 0), _name(r)),
        )
        status = objects.status(sts)
        collision = int(status.get("collisionCount") or 0)
        data = revision_data(sts)
        next_number = (int(revisions[-1].get("revision") or 0) + 1) if revisions else 1
        equal = [r for r in revisions if r.get("data") == data]
        if equal and equal[-1] is revisions[-1]:
            update = revisions[-1]
        elif equal:
            bumped = clone(equal[-1])
            bumped["revision"] = next_number
            update = self.writer.update(REVISIONS, bumped)
        else:
            update, collision = self._create_revision(sts, data, next_number, collision)
        current = next((r for r in revisions if _name(r) == status.get("currentRevision")), update)
        return current, update, collision

    def _create_revision(self, sts: Obj, data: Obj, number: int, collision: int) -> tuple[Obj, int]:
        namespace, set_name = key_of(sts)
        template_labels = ((objects.spec(sts).get("template") or {}).get("metadata") or {}).get(
            "labels"
        ) or {}
        while True:
            hash_ = revision_hash(data, collision)
            name = revision_name(set_name, hash_)
            existing = self.store.get(REVISIONS, namespace, name)
            if existing is None:
                break
            if existing.get("data") == data and objects.controller_uid(
                existing, "StatefulSet"
            ) == objects.meta(sts).get("uid"):
                return existing, collision
            collision += 1
        revision = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {**template_labels, HASH_LABEL: hash_},
                "ownerReferences": [
                    objects.owner_reference(sts, api_version="apps/v1", kind="StatefulSet")
                ],
            },
            "data": data,
            "revision": number,
        }
        return self.writer.create(REVISIONS, namespace, revision), collision

    # ---- sync --------------------------------------------------------------------------

    def process(self, key: Key) -> None:
        sts = self.store.get(STATEFULSETS, *key)
        if sts is None:
            return
        uid = objects.meta(sts)["uid"]
        if objects.is_terminating(sts):
            self._write_status(
                sts, self._status(sts, None, None, objects.status(sts).get("collisionCount"))
            )
            return
        current, update, collision = self._revisions(sts)
        self._manage(key, sts, current, update)
        sts = self.store.get(STATEFULSETS, *key) or sts
        self._write_status(sts, self._status(sts, current, update, collision))
        self._truncate_history(sts, uid, current, update)

    def _pods(self, sts: Obj) -> dict[int, Obj]:
        set_name = objects.meta(sts)["name"]
        pods: dict[int, Obj] = {}
        for pod in self.index.pods_owned_by(objects.meta(sts)["uid"]):
            ordinal = ordinal_of(set_name, objects.meta(pod)["name"])
            if ordinal is not None:
                pods[ordinal] = pod
        return pods

    def _manage(self, key: Key, sts: Obj, current: Obj, update: Obj) -> None:
        spec = objects.spec(sts)
        replicas = int(spec.get("replicas", 1) or 0)
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        min_ready = int(spec.get("minReadySeconds") or 0)
        strategy = spec.get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        pods = self._pods(sts)
        wanted = range(start, start + replicas)
        now = self.clock.now()
        first_unhealthy: int | None = None
        for ordinal in wanted:
            pod = pods.get(ordinal)
            if pod is not None and objects.is_terminal(pod) and not objects.is_terminating(pod):
                meta = objects.meta(pod)
                self.writer.delete(PODS, key[0], meta["name"], uid=meta.get("uid"))
                if not parallel:
                    return
                continue
            if pod is None:
                use_current = (
                    strategy.get("type", "RollingUpdate") == "RollingUpdate"
                    and ordinal - start < partition
                )
                revision = current if use_current else update
                self.writer.create(PODS, key[0], self._new_pod(sts, revision, ordinal))
                if not parallel:
                    return
                continue
            healthy = _is_running_and_ready(pod) and not objects.is_terminating(pod)
            if not healthy and first_unhealthy is None:
                first_unhealthy = ordinal
            if parallel:
                continue
            if not healthy:
                return
            remaining = objects.available_in(pod, min_ready_seconds=min_ready, now=now)
            if remaining:
                self.queue.add_after(key, remaining)
                return
        condemned = sorted((o for o in pods if o not in wanted), reverse=True)
        for ordinal in condemned:
            pod = pods[ordinal]
            if objects.is_terminating(pod):
                if not parallel:
                    return
                continue
            if (
                not parallel
                and not _is_running_and_ready(pod)
                and first_unhealthy is not None
                and first_unhealthy != ordinal
            ):
                return
            meta = objects.meta(pod)
            self.writer.delete(PODS, key[0], meta["name"], uid=meta.get("uid"))
            if not parallel:
                return
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        update_name = _name(update)
        for ordinal in sorted(wanted, reverse=True):
            if ordinal - start < partition:
                break
            pod = pods.get(ordinal)
            if pod is None:
                continue
            if objects.labels(pod).get(
                REVISION_LABEL
            ) != update_name and not objects.is_terminating(pod):
                meta = objects.meta(pod)
                self.writer.delete(PODS, key[0], meta["name"], uid=meta.get("uid"))
                return
            if not _is_running_and_ready(pod) or objects.is_terminating(pod):
                return

    def _new_pod(self, sts: Obj, revision: Obj, ordinal: int) -> Obj:
        namespace, set_name = key_of(sts)
        template = template_of_revision(revision)
        template_meta = template.get("metadata") or {}
        name = f"{set_name}-{ordinal}"
        labels = {
            **(template_meta.get("labels") or {}),
            REVISION_LABEL: _name(revision),
            POD_NAME_LABEL: name,
            POD_INDEX_LABEL: str(ordinal),
        }
        metadata: Obj = {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                objects.owner_reference(sts, api_version="apps/v1", kind="StatefulSet")
            ],
        }
        if template_meta.get("annotations"):
            metadata["annotations"] = dict(template_meta["annotations"])
        pod_spec = clone(template.get("spec") or {})
        pod_spec["hostname"] = name
        service = objects.spec(sts).get("serviceName")
        if service:
            pod_spec["subdomain"] = service
        claims = objects.spec(sts).get("volumeClaimTemplates") or []
        if claims:
            volumes = [v for v in pod_spec.get("volumes") or [] if isinstance(v, dict)]
            taken = {v.get("name") for v in volumes}
            for claim in claims:
                claim_name = (claim.get("metadata") or {}).get("name")
                if claim_name and claim_name not in taken:
                    volumes.append(
                        {
                            "name": claim_name,
                            "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}"},
                        }
                    )
            pod_spec["volumes"] = volumes
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}

    # ---- status and history ------------------------------------------------------------

    def _status(self, sts: Obj, current: Obj | None, update: Obj | None, collision: Any) -> Obj:
        spec = objects.spec(sts)
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = self.clock.now()
        old = objects.status(sts)
        current_name = _name(current) if current is not None else old.get("currentRevision")
        update_name = _name(update) if update is not None else old.get("updateRevision")
        replicas = ready = available = current_count = updated_count = 0
        for pod in self.index.pods_owned_by(objects.meta(sts)["uid"]):
            created = bool(objects.phase(pod))
            if created:
                replicas += 1
            if _is_running_and_ready(pod):
                ready += 1
                if objects.is_available(pod, min_ready_seconds=min_ready, now=now):
                    available += 1
            if created and not objects.is_terminating(pod):
                revision = objects.labels(pod).get(REVISION_LABEL)
                if revision == current_name:
                    current_count += 1
                if revision == update_name:
                    updated_count += 1
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate" and updated_count == replicas and ready == replicas:
            current_count = updated_count
            current_name = update_name
        status: Obj = {
            "observedGeneration": objects.meta(sts).get("generation"),
            "replicas": replicas,
            "readyReplicas": ready,
            "currentReplicas": current_count,
            "updatedReplicas": updated_count,
            "currentRevision": current_name,
            "updateRevision": update_name,
            "collisionCount": collision,
            "availableReplicas": available,
        }
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        return {
            k: v
            for k, v in status.items()
            if k in ("replicas", "availableReplicas") or v not in (0, None, "", [])
        }

    def _write_status(self, sts: Obj, status: Obj) -> None:
        if status == objects.status(sts):
            return
        meta = objects.meta(sts)
        self.writer.update_status(
            STATEFULSETS,
            {
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta.get("namespace"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "status": status,
            },
        )

    def _truncate_history(self, sts: Obj, uid: str, current: Obj, update: Obj) -> None:
        live = {_name(current), _name(update)}
        for pod in self.index.pods_owned_by(uid):
            pod_revision = objects.labels(pod).get(REVISION_LABEL)
            if pod_revision:
                live.add(pod_revision)
        history = sorted(
            (r for r in self.index.revisions_owned_by(uid) if _name(r) not in live),
            key=lambda r: int(r.get("revision") or 0),
        )
        limit = int(objects.spec(sts).get("revisionHistoryLimit", 10) or 0)
        for revision in history[: max(0, len(history) - limit)]:
            meta = objects.meta(revision)
            self.writer.delete(REVISIONS, meta.get("namespace"), meta["name"], uid=meta.get("uid"))


def _name(obj: Obj) -> str:
    return str(objects.meta(obj).get("name") or "")
