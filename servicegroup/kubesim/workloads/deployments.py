"""kube-controller-manager's Deployment controller for kubesim.

Owns: `DeploymentController` - a loop over Deployment keys that, like the real controller:
- finds the new ReplicaSet (template equal ignoring `pod-template-hash`) or creates it as
  `{deployment}-{pod-template-hash}` with the hash in its labels, selector and template,
  the revision annotations and a controller reference;
- rolls out: RollingUpdate scales the new ReplicaSet up within `maxSurge` and old ones down
  within `maxUnavailable` (unhealthy old replicas first); Recreate scales old ones to 0,
  waits for their pods to be gone, then scales the new one up;
- scales proportionally when `spec.replicas` changes during a rollout, and trims old
  ReplicaSets beyond `revisionHistoryLimit`;
- honours `paused` (scaling only) and `progressDeadlineSeconds`;
- writes status: `observedGeneration`, `replicas`, `updatedReplicas`, `readyReplicas`,
  `availableReplicas`, `unavailableReplicas`, `collisionCount`, and the `Available`
  (MinimumReplicasAvailable / MinimumReplicasUnavailable) and `Progressing`
  (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
  ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed) conditions.

Invariants:
- One sync takes one rollout step and then reports status, as upstream does; the resulting
  ReplicaSet events drive the next step (level-triggered, no per-object task).
- ReplicaSets are written through the main endpoint (spec, annotations), the Deployment only
  through its status subresource, each only when something changes, as
  `kube-controller-manager`.
- Conditions follow SetDeploymentCondition: same status and reason -> untouched; a changed
  condition moves to the end, keeping lastTransitionTime while its status is unchanged.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.engine import parse_rfc3339
from servicegroup.kubesim.store import DELETED, StoreEvent, clone
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.index import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    Key,
    key_of,
)
from servicegroup.kubesim.workloads.podhash import HASH_LABEL, template_hash

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS})
MAX_INT32 = 2**31 - 1

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = ("MinimumReplicasAvailable", "Deployment has minimum availability.")
MIN_UNAVAILABLE = ("MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


# ---- small readers ----------------------------------------------------------------------


def replicas_of(obj: Obj) -> int:
    value = objects.spec(obj).get("replicas")
    return 1 if value is None else int(value)


def _status_int(obj: Obj, field: str) -> int:
    return int(objects.status(obj).get(field) or 0)


def revision_of(obj: Obj) -> int:
    try:
        return int((objects.meta(obj).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _int_annotation(obj: Obj, name: str) -> int | None:
    value = (objects.meta(obj).get("annotations") or {}).get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _created(obj: Obj) -> tuple[str, str]:
    meta = objects.meta(obj)
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def is_rolling(d: Obj) -> bool:
    strategy = objects.spec(d).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas (ResolveFenceposts)."""
    rolling = (objects.spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    replicas = replicas_of(d)
    surge = objects.int_or_percent(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = objects.int_or_percent(
        rolling.get("maxUnavailable", "25%"), replicas, round_up=False
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas_of(d) == 0:
        return 0
    unavailable = fenceposts(d)[1]
    return min(unavailable, replicas_of(d))


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def has_progress_deadline(d: Obj) -> bool:
    deadline = objects.spec(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def template_without_hash(template: Obj) -> Obj:
    metadata = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != HASH_LABEL}
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    return {**template, "metadata": metadata}


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return template_without_hash(a) == template_without_hash(b)


def deployment_condition(status: Obj, type_: str) -> Obj | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return None


def set_deployment_condition(status: Obj, new: Obj) -> None:
    """SetDeploymentCondition on a status dict (in place: callers own `status`)."""
    current = deployment_condition(status, new["type"])
    if (
        current is not None
        and current.get("status") == new["status"]
        and current.get("reason") == new.get("reason")
    ):
        return
    if current is not None and current.get("status") == new["status"]:
        new = {**new, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or () if c["type"] != new["type"]]
    status["conditions"].append(new)


def remove_deployment_condition(status: Obj, type_: str) -> None:
    conditions = [c for c in status.get("conditions") or () if c["type"] != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def new_condition(type_: str, status: str, reason: str, message: str, *, now: str) -> Obj:
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def deployment_complete(d: Obj, status: Obj) -> bool:
    replicas = replicas_of(d)
    return (
        int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
        and int(status.get("observedGeneration") or 0)
        >= int(objects.meta(d).get("generation") or 0)
    )


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = objects.status(d)
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = int(status.get("replicas") or 0) - int(status.get("updatedReplicas") or 0)
    return (
        int(status.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
        or new_old < old_old
        or int(status.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
        or int(status.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0)
    )


def _compact(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v not in (0, None, "", [])}


class DeploymentController(LoopController[Key]):
    name = "deployment-controller"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Status changes made while finding/creating the new ReplicaSet, written together
        # with the rollout status at the end of the same sync (one status write per sync).
        self._staged: dict[Key, Obj] = {}

    # ---- intake ------------------------------------------------------------------------

    def on_event(self, event: StoreEvent) -> None:
        if event.key == DEPLOYMENTS:
            self.queue.add(key_of(event.obj))
        elif event.key == REPLICASETS:
            for obj in (event.obj, event.old):
                if obj is not None:
                    self._add_owner(obj)
        elif event.key == PODS and event.type == DELETED:
            # Recreate waits for old pods to be gone: a pod deletion may unblock it.
            ref = objects.controller_ref(event.obj)
            if ref is not None and ref.get("kind") == "ReplicaSet":
                namespace = objects.meta(event.obj).get("namespace", "")
                rs = self.store.get(REPLICASETS, namespace, str(ref.get("name")))
                if rs is not None:
                    self._add_owner(rs)

    def _add_owner(self, rs: Obj) -> None:
        ref = objects.controller_ref(rs)
        if ref is not None and ref.get("kind") == "Deployment":
            self.queue.add((objects.meta(rs).get("namespace", ""), str(ref.get("name"))))

    def resync(self) -> None:
        for d in self.store.items(DEPLOYMENTS):
            self.queue.add(key_of(d))

    # ---- sync --------------------------------------------------------------------------

    def process(self, key: Key) -> None:
        try:
            self._process(key)
        finally:
            staged = self._staged.pop(key, None)
        d = self.store.get(DEPLOYMENTS, *key)
        if staged is not None and d is not None:
            self._write_status(d, staged)

    def _process(self, key: Key) -> None:
        d = self.store.get(DEPLOYMENTS, *key)
        if d is None:
            return
        rs_list = self._replicasets(d)
        if objects.is_terminating(d):
            new_rs, olds = self._new_and_old(d, rs_list, create=False)
            self._sync_status(d, new_rs, olds)
            return
        d = self._check_paused_conditions(d)
        if objects.spec(d).get("paused"):
            self._sync(d, rs_list)
            return
        if self._is_scaling_event(d, rs_list):
            self._sync(d, rs_list)
            return
        if is_rolling(d):
            self._rollout_rolling(d, rs_list)
        else:
            self._rollout_recreate(d, rs_list)

    def _replicasets(self, d: Obj) -> list[Obj]:
        uid = objects.meta(d).get("uid", "")
        return [rs for rs in self.index.replicasets_owned_by(uid) if rs is not None]

    def _refresh(self, rs: Obj | None) -> Obj | None:
        if rs is None:
            return None
        return self.store.get(REPLICASETS, *key_of(rs))

    def _find_new(self, d: Obj, rs_list: list[Obj]) -> Obj | None:
        template = objects.spec(d).get("template") or {}
        for rs in sorted(rs_list, key=_created):
            if equal_ignore_hash(objects.spec(rs).get("template") or {}, template):
                return rs
        return None

    def _new_and_old(
        self, d: Obj, rs_list: list[Obj], *, create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        existing = self._find_new(d, rs_list)
        olds = [rs for rs in rs_list if rs is not existing]
        return self._new_replicaset(d, rs_list, olds, existing, create=create), olds

    def _new_replicaset(
        self, d: Obj, rs_list: list[Obj], olds: list[Obj], existing: Obj | None, *, create: bool
    ) -> Obj | None:
        max_old = max((revision_of(rs) for rs in olds), default=0)
        new_revision = max_old + 1
        now = self.now()
        if existing is not None:
            updated = clone(existing)
            changed = self._set_new_rs_annotations(d, updated, new_revision, exists=True)
            min_ready = objects.spec(d).get("minReadySeconds") or 0
            if (objects.spec(updated).get("minReadySeconds") or 0) != min_ready:
                updated["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                existing = self.writer.update(REPLICASETS, updated)
            status = clone(self._base_status(d))
            needs = False
            if has_progress_deadline(d) and deployment_condition(status, PROGRESSING) is None:
                set_deployment_condition(
                    status,
                    new_condition(
                        PROGRESSING,
                        "True",
                        FOUND_NEW_RS,
                        f'Found new replica set "{objects.meta(existing)["name"]}"',
                        now=now,
                    ),
                )
                needs = True
            if needs:
                self._stage(d, status)
            return existing
        if not create:
            return None
        namespace, name = key_of(d)
        spec = objects.spec(d)
        collision = objects.status(d).get("collisionCount")
        template = clone(spec.get("template") or {})
        pod_hash = template_hash(template, collision)
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            HASH_LABEL: pod_hash,
        }
        selector = clone(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        rs_name = f"{name}-{pod_hash}"
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [
                    objects.owner_reference(d, api_version="apps/v1", kind="Deployment")
                ],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": spec.get("minReadySeconds") or 0,
                "selector": selector,
                "template": template,
            },
        }
        new_rs["spec"]["replicas"] = self._new_rs_replicas(d, [*olds, new_rs], new_rs)
        self._set_new_rs_annotations(d, new_rs, new_revision, exists=False)
        self._set_replicas_annotations(new_rs, replicas_of(d), replicas_of(d) + max_surge(d))
        clash = self.store.get(REPLICASETS, namespace, rs_name)
        if clash is not None:
            # A ReplicaSet of that name with another template (or owner): a hash collision.
            status = clone(objects.status(d))
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            self._write_status(d, status)
            raise RuntimeError(f"hash collision for ReplicaSet {namespace}/{rs_name}")
        created = self.writer.create(REPLICASETS, namespace, new_rs)
        status = clone(self._base_status(d))
        if has_progress_deadline(d):
            set_deployment_condition(
                status,
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_CREATED,
                    f'Created new replica set "{rs_name}"',
                    now=now,
                ),
            )
        self._stage(d, status)
        return created

    def _set_new_rs_annotations(self, d: Obj, rs: Obj, new_revision: int, *, exists: bool) -> bool:
        """SetNewReplicaSetAnnotations: copy the Deployment's annotations, bump the revision."""
        meta = rs.setdefault("metadata", {})
        annotations = dict(meta.get("annotations") or {})
        before = dict(annotations)
        for k, v in (objects.meta(d).get("annotations") or {}).items():
            if k not in _NOT_COPIED:
                annotations[k] = v
        old_revision = annotations.get(REVISION)
        try:
            old_value = int(old_revision) if old_revision is not None else 0
        except ValueError:
            old_value = 0
        if old_value < new_revision:
            annotations[REVISION] = str(new_revision)
            if exists and old_revision is not None:
                history = annotations.get(REVISION_HISTORY)
                annotations[REVISION_HISTORY] = (
                    f"{history},{old_revision}" if history else old_revision
                )
        if not exists:
            annotations.setdefault(REVISION, str(new_revision))
        if annotations != before:
            meta["annotations"] = annotations
            return True
        return False

    @staticmethod
    def _set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
        meta = rs.setdefault("metadata", {})
        annotations = dict(meta.get("annotations") or {})
        wanted = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(maximum)}
        if all(annotations.get(k) == v for k, v in wanted.items()):
            return False
        annotations.update(wanted)
        meta["annotations"] = annotations
        return True

    def _new_rs_replicas(self, d: Obj, all_rs: list[Obj], new_rs: Obj) -> int:
        if not is_rolling(d):
            return replicas_of(d)
        current = sum(replicas_of(rs) for rs in all_rs)
        total = replicas_of(d) + max_surge(d)
        if current >= total:
            return replicas_of(new_rs)
        scale_up = min(total - current, replicas_of(d) - replicas_of(new_rs))
        return replicas_of(new_rs) + scale_up

    def _scale(self, rs: Obj, size: int, d: Obj) -> Obj:
        """scaleReplicaSet: size and replica annotations, one update when either changes."""
        current = self._refresh(rs) or rs
        updated = clone(current)
        annotations_changed = self._set_replicas_annotations(
            updated, replicas_of(d), replicas_of(d) + max_surge(d)
        )
        if replicas_of(current) == size and not annotations_changed:
            return current
        updated["spec"]["replicas"] = size
        return self.writer.update(REPLICASETS, updated)

    # ---- rolling update ----------------------------------------------------------------

    def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, olds = self._new_and_old(d, rs_list, create=True)
        d = self.store.get(DEPLOYMENTS, *key_of(d)) or d
        assert new_rs is not None
        all_rs = [*olds, new_rs]
        if self._reconcile_new(all_rs, new_rs, d):
            self._sync_rollout_status(d, self._refresh(new_rs), self._fresh(olds))
            return
        new_rs = self._refresh(new_rs)
        olds = self._fresh(olds)
        if new_rs is not None and self._reconcile_old(
            [*olds, new_rs], [rs for rs in olds if replicas_of(rs) > 0], new_rs, d
        ):
            self._sync_rollout_status(d, self._refresh(new_rs), self._fresh(olds))
            return
        if deployment_complete(d, objects.status(d)):
            self._cleanup(d, olds)
        self._sync_rollout_status(d, self._refresh(new_rs), self._fresh(olds))

    def _fresh(self, rs_list: list[Obj]) -> list[Obj]:
        return [rs for rs in (self._refresh(r) for r in rs_list) if rs is not None]

    def _reconcile_new(self, all_rs: list[Obj], new_rs: Obj, d: Obj) -> bool:
        wanted = replicas_of(d)
        if replicas_of(new_rs) == wanted:
            return False
        if replicas_of(new_rs) > wanted:
            self._scale(new_rs, wanted, d)
            return True
        count = self._new_rs_replicas(d, all_rs, new_rs)
        if count == replicas_of(new_rs):
            return False
        self._scale(new_rs, count, d)
        return True

    def _reconcile_old(self, all_rs: list[Obj], olds: list[Obj], new_rs: Obj, d: Obj) -> bool:
        old_pods = sum(replicas_of(rs) for rs in olds)
        if old_pods == 0:
            return False
        all_pods = sum(replicas_of(rs) for rs in all_rs)
        min_available = replicas_of(d) - max_unavailable(d)
        new_unavailable = replicas_of(new_rs) - _status_int(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        olds, cleaned = self._cleanup_unhealthy(olds, d, max_scaled_down)
        scaled = self._scale_down_old([*olds, new_rs], olds, d)
        return cleaned + scaled > 0

    def _cleanup_unhealthy(
        self, olds: list[Obj], d: Obj, max_cleanup: int
    ) -> tuple[list[Obj], int]:
        total = 0
        result: list[Obj] = []
        for rs in sorted(olds, key=_created):
            if total >= max_cleanup or replicas_of(rs) == 0:
                result.append(rs)
                continue
            unhealthy = replicas_of(rs) - _status_int(rs, "availableReplicas")
            if unhealthy <= 0:
                result.append(rs)
                continue
            count = min(max_cleanup - total, unhealthy)
            result.append(self._scale(rs, replicas_of(rs) - count, d))
            total += count
        return result, total

    def _scale_down_old(self, all_rs: list[Obj], olds: list[Obj], d: Obj) -> int:
        min_available = replicas_of(d) - max_unavailable(d)
        available = sum(_status_int(rs, "availableReplicas") for rs in all_rs)
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in sorted(olds, key=_created):
            if total >= budget:
                break
            if replicas_of(rs) == 0:
                continue
            count = min(replicas_of(rs), budget - total)
            self._scale(rs, replicas_of(rs) - count, d)
            total += count
        return total

    # ---- recreate ----------------------------------------------------------------------

    def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, olds = self._new_and_old(d, rs_list, create=False)
        scaled = False
        for rs in olds:
            if replicas_of(rs) > 0:
                self._scale(rs, 0, d)
                scaled = True
        if scaled:
            self._sync_rollout_status(d, self._refresh(new_rs), self._fresh(olds))
            return
        if self._old_pods_running(olds):
            self._sync_rollout_status(d, self._refresh(new_rs), self._fresh(olds))
            return
        if new_rs is None:
            new_rs, olds = self._new_and_old(d, self._replicasets(d), create=True)
            d = self.store.get(DEPLOYMENTS, *key_of(d)) or d
        assert new_rs is not None
        self._scale(new_rs, replicas_of(d), d)
        if deployment_complete(d, objects.status(d)):
            self._cleanup(d, olds)
        self._sync_rollout_status(d, self._refresh(new_rs), self._fresh(olds))

    def _old_pods_running(self, olds: list[Obj]) -> bool:
        for rs in olds:
            if _status_int(rs, "replicas") > 0:
                return True
            uid = objects.meta(rs).get("uid", "")
            for pod in self.index.pods_owned_by(uid):
                if not objects.is_terminal(pod):
                    return True
        return False

    # ---- scaling (sync) ----------------------------------------------------------------

    def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, olds = self._new_and_old(d, rs_list, create=False)
        for rs in [*olds, *([new_rs] if new_rs is not None else [])]:
            if replicas_of(rs) <= 0:
                continue
            desired = _int_annotation(rs, DESIRED_REPLICAS)
            if desired is not None and desired != replicas_of(d):
                return True
        return False

    def _sync(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, olds = self._new_and_old(d, rs_list, create=False)
        d = self.store.get(DEPLOYMENTS, *key_of(d)) or d
        self._proportional_scale(d, new_rs, olds)
        new_rs, olds = self._refresh(new_rs), self._fresh(olds)
        if objects.spec(d).get("paused"):
            self._cleanup(d, olds)
        self._sync_status(d, new_rs, olds)

    def _active_or_latest(self, new_rs: Obj | None, olds: list[Obj]) -> Obj | None:
        if new_rs is None and not olds:
            return None
        newest_first = sorted(olds, key=_created, reverse=True)
        active = [
            rs for rs in [*newest_first, *([new_rs] if new_rs else [])] if replicas_of(rs) > 0
        ]
        if not active:
            return new_rs if new_rs is not None else newest_first[0]
        if len(active) == 1:
            return active[0]
        return None

    def _proportional_scale(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        target = self._active_or_latest(new_rs, olds)
        if target is not None:
            if replicas_of(target) != replicas_of(d):
                self._scale(target, replicas_of(d), d)
            return
        if new_rs is not None and self._saturated(d, new_rs):
            for rs in olds:
                if replicas_of(rs) > 0:
                    self._scale(rs, 0, d)
            return
        if not is_rolling(d):
            return
        active = [rs for rs in [*olds, *([new_rs] if new_rs else [])] if replicas_of(rs) > 0]
        allowed = replicas_of(d) + max_surge(d) if replicas_of(d) > 0 else 0
        to_add = allowed - sum(replicas_of(rs) for rs in active)
        if to_add > 0:
            # Bigger first, newer first among equals.
            active.sort(key=_created, reverse=True)
            active.sort(key=replicas_of, reverse=True)
        elif to_add < 0:
            active.sort(key=_created)
            active.sort(key=replicas_of, reverse=True)
        added = 0
        sizes: dict[str, int] = {}
        for rs in active:
            name = objects.meta(rs)["name"]
            if to_add != 0:
                proportion = self._proportion(rs, d, to_add, added)
                sizes[name] = replicas_of(rs) + proportion
                added += proportion
            else:
                sizes[name] = replicas_of(rs)
        if to_add != 0 and active:
            first = objects.meta(active[0])["name"]
            sizes[first] = max(0, sizes[first] + to_add - added)
        for rs in active:
            self._scale(rs, sizes[objects.meta(rs)["name"]], d)

    def _saturated(self, d: Obj, rs: Obj) -> bool:
        return (
            _int_annotation(rs, DESIRED_REPLICAS) == replicas_of(d)
            and _status_int(rs, "availableReplicas") == replicas_of(d)
            and replicas_of(rs) == replicas_of(d)
        )

    def _proportion(self, rs: Obj, d: Obj, to_add: int, added: int) -> int:
        if replicas_of(rs) == 0 or to_add in (0, added):
            return 0
        fraction = self._fraction(rs, d)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    def _fraction(self, rs: Obj, d: Obj) -> int:
        if replicas_of(d) == 0:
            return -replicas_of(rs)
        deployment_replicas = replicas_of(d) + max_surge(d)
        annotated = _int_annotation(rs, MAX_REPLICAS)
        if annotated is None:
            annotated = _status_int(d, "replicas")
        if annotated == 0:
            return 0
        size = replicas_of(rs) * deployment_replicas / annotated
        rounded = int(size + 0.5) if size >= 0 else -int(-size + 0.5)
        return rounded - replicas_of(rs)

    # ---- cleanup -----------------------------------------------------------------------

    def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = objects.spec(d).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in olds if not objects.is_terminating(rs)]
        diff = len(alive) - int(limit)
        if diff <= 0:
            return
        alive.sort(key=lambda rs: (revision_of(rs), _created(rs)))
        for rs in alive[:diff]:
            meta = objects.meta(rs)
            if (
                _status_int(rs, "replicas") != 0
                or replicas_of(rs) != 0
                or int(meta.get("generation") or 0) > _status_int(rs, "observedGeneration")
            ):
                continue
            self.writer.delete(
                REPLICASETS, meta.get("namespace"), meta["name"], uid=meta.get("uid")
            )

    # ---- status ------------------------------------------------------------------------

    def _check_paused_conditions(self, d: Obj) -> Obj:
        if not has_progress_deadline(d):
            return d
        status = clone(objects.status(d))
        cond = deployment_condition(status, PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return d
        paused_exists = cond is not None and cond.get("reason") == PAUSED
        paused = bool(objects.spec(d).get("paused"))
        now = self.now()
        if paused and not paused_exists:
            set_deployment_condition(
                status,
                new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now=now),
            )
        elif not paused and paused_exists:
            set_deployment_condition(
                status,
                new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now=now),
            )
        else:
            return d
        self._write_status(d, status)
        return self.store.get(DEPLOYMENTS, *key_of(d)) or d

    def _calculate_status(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> Obj:
        all_rs = [*olds, *([new_rs] if new_rs is not None else [])]
        available = sum(_status_int(rs, "availableReplicas") for rs in all_rs)
        total = sum(replicas_of(rs) for rs in all_rs)
        current = self._base_status(d)
        status: Obj = {
            "observedGeneration": objects.meta(d).get("generation"),
            "replicas": sum(_status_int(rs, "replicas") for rs in all_rs),
            "updatedReplicas": _status_int(new_rs, "replicas") if new_rs is not None else 0,
            "readyReplicas": sum(_status_int(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
            "collisionCount": current.get("collisionCount"),
        }
        if current.get("conditions"):
            status["conditions"] = [dict(c) for c in current["conditions"]]
        now = self.now()
        if available >= replicas_of(d) - max_unavailable(d):
            reason, message = MIN_AVAILABLE
            set_deployment_condition(
                status, new_condition(AVAILABLE, "True", reason, message, now=now)
            )
        else:
            reason, message = MIN_UNAVAILABLE
            set_deployment_condition(
                status, new_condition(AVAILABLE, "False", reason, message, now=now)
            )
        return status

    def _sync_status(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        d = self.store.get(DEPLOYMENTS, *key_of(d)) or d
        self._write_status(d, self._calculate_status(d, new_rs, olds))

    def _sync_rollout_status(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        d = self.store.get(DEPLOYMENTS, *key_of(d)) or d
        status = self._calculate_status(d, new_rs, olds)
        if not has_progress_deadline(d):
            remove_deployment_condition(status, PROGRESSING)
        current = deployment_condition(self._base_status(d), PROGRESSING)
        complete_before = (
            int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        now = self.now()
        rs_name = objects.meta(new_rs)["name"] if new_rs is not None else None
        if has_progress_deadline(d) and not complete_before:
            if deployment_complete(d, status):
                message = (
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if rs_name
                    else f'Deployment "{key_of(d)[1]}" has successfully progressed.'
                )
                set_deployment_condition(
                    status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, message, now=now)
                )
            elif deployment_progressing(d, status):
                message = (
                    f'ReplicaSet "{rs_name}" is progressing.'
                    if rs_name
                    else f'Deployment "{key_of(d)[1]}" is progressing.'
                )
                cond = new_condition(PROGRESSING, "True", RS_UPDATED, message, now=now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_deployment_condition(status, PROGRESSING)
                set_deployment_condition(status, cond)
            elif self._timed_out(d, status):
                message = (
                    f'ReplicaSet "{rs_name}" has timed out progressing.'
                    if rs_name
                    else f'Deployment "{key_of(d)[1]}" has timed out progressing.'
                )
                set_deployment_condition(
                    status, new_condition(PROGRESSING, "False", TIMED_OUT, message, now=now)
                )
        failure = self._replica_failure(olds, new_rs)
        if failure is not None:
            set_deployment_condition(status, failure)
        else:
            remove_deployment_condition(status, REPLICA_FAILURE)
        if _compact(status) == objects.status(d):
            self._staged.pop(key_of(d), None)  # already part of what is stored
            self._requeue_stuck(d, status)
            return
        self._write_status(d, status)

    def _timed_out(self, d: Obj, status: Obj) -> bool:
        if not has_progress_deadline(d):
            return False
        cond = deployment_condition(status, PROGRESSING)
        if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        return self._seconds_left(d, cond) < 0

    def _seconds_left(self, d: Obj, cond: Obj) -> float:
        try:
            since = parse_rfc3339(str(cond.get("lastUpdateTime"))).timestamp()
        except ValueError:
            return 0.0
        deadline = since + int(objects.spec(d).get("progressDeadlineSeconds") or 0)
        return deadline - self.clock.now().timestamp()

    def _requeue_stuck(self, d: Obj, status: Obj) -> None:
        cond = deployment_condition(status, PROGRESSING)
        if cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
            return
        if not has_progress_deadline(d) or cond.get("status") != "True":
            return
        left = self._seconds_left(d, cond)
        # Upstream rechecks one second after the deadline: timestamps have second precision.
        self.queue.add_after(key_of(d), max(0.0, left) + 1.0)

    @staticmethod
    def _replica_failure(olds: list[Obj], new_rs: Obj | None) -> Obj | None:
        ordered: list[Obj] = [*([new_rs] if new_rs is not None else []), *olds]
        for rs in ordered:
            for cond in objects.status(rs).get("conditions") or ():
                if cond.get("type") == REPLICA_FAILURE and cond.get("status") == "True":
                    return {
                        "type": REPLICA_FAILURE,
                        "status": "True",
                        "lastUpdateTime": cond.get("lastTransitionTime"),
                        "lastTransitionTime": cond.get("lastTransitionTime"),
                        "reason": cond.get("reason"),
                        "message": cond.get("message"),
                    }
        return None

    def _stage(self, d: Obj, status: Obj) -> None:
        """Hold a status change (a new condition) for this sync's one status write."""
        self._staged[key_of(d)] = status

    def _base_status(self, d: Obj) -> Obj:
        return self._staged.get(key_of(d)) or objects.status(d)

    def _write_status(self, d: Obj, status: Obj) -> None:
        self._staged.pop(key_of(d), None)
        status = _compact(status)
        current = self.store.get(DEPLOYMENTS, *key_of(d))
        if current is None or status == objects.status(current):
            return
        meta = objects.meta(current)
        self.writer.update_status(
            DEPLOYMENTS,
            {
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta.get("namespace"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "status": status,
            },
        )
