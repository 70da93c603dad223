"""kube-controller-manager's node controllers: IPAM, taints by condition, NotReady pods, pod GC.

Owns: `NodeLifecycle` - a loop over node names that
- gives a Node without a podCIDR the lowest free block of the cluster CIDR (node-ipam);
- keeps the NoSchedule taints that mirror node state (TaintNodesByCondition):
  `node.kubernetes.io/unschedulable` while cordoned, `node.kubernetes.io/not-ready` while
  Ready is False, `node.kubernetes.io/unreachable` while it is Unknown;
- marks every pod on a node whose Ready condition is not True as not Ready
  (MarkPodsNotReady: only the pod's `Ready` condition changes);
- deletes, with grace 0, the pods bound to a node that no longer exists (pod GC), so
  their controllers recreate them elsewhere.

Invariants:
- Writes as `kube-controller-manager`: node spec through the main endpoint, pod readiness
  through the status subresource; each only when it changes.
- The NoExecute taints (taint-based eviction) are not applied: kubesim does not run the
  DefaultTolerationSeconds admission plugin, so pods would be evicted at once.
- Pods are found through the node index: work per node is proportional to its pods.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.store import DELETED, StoreEvent, clone
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.index import NODES, PODS
from servicegroup.kubesim.workloads.kubelet import node_is_ready
from servicegroup.kubesim.workloads.nodes import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_NODE_CIDR_PREFIX,
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    UNSCHEDULABLE_TAINT,
    next_pod_cidr,
    used_pod_cidrs,
)

Obj = dict[str, Any]

_MANAGED_TAINTS = (UNSCHEDULABLE_TAINT, NOT_READY_TAINT, UNREACHABLE_TAINT)


def wanted_taints(node: Obj) -> list[Obj]:
    """The node's taints with the condition taints set as its state asks."""
    spec = objects.spec(node)
    others = [
        t
        for t in spec.get("taints") or ()
        if isinstance(t, dict) and t.get("key") not in _MANAGED_TAINTS
    ]
    current = {
        t.get("key"): t
        for t in spec.get("taints") or ()
        if isinstance(t, dict) and t.get("key") in _MANAGED_TAINTS
    }
    keys: list[str] = []
    if spec.get("unschedulable"):
        keys.append(UNSCHEDULABLE_TAINT)
    ready = objects.condition(node, "Ready")
    ready_status = ready.get("status") if ready is not None else "Unknown"
    if ready_status == "False":
        keys.append(NOT_READY_TAINT)
    elif ready_status != "True":
        keys.append(UNREACHABLE_TAINT)
    managed: list[Obj] = []
    for key in keys:
        kept = current.get(key)
        if kept is not None and kept.get("effect") == "NoSchedule":
            managed.append(kept)
        else:
            managed.append({"key": key, "effect": "NoSchedule", "timeAdded": None})
    return others + managed


class NodeLifecycle(LoopController[str]):
    name = "node-lifecycle"
    manager = "kube-controller-manager"

    def __init__(
        self,
        *,
        cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
        node_cidr_prefix: int = DEFAULT_NODE_CIDR_PREFIX,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster_cidr = cluster_cidr
        self.node_cidr_prefix = node_cidr_prefix

    def on_event(self, event: StoreEvent) -> None:
        if event.key == NODES:
            self.queue.add(objects.meta(event.obj)["name"])
        elif event.key == PODS and event.type != DELETED:
            node_name = objects.spec(event.obj).get("nodeName")
            if not node_name:
                return
            node = self.store.get(NODES, "", node_name)
            if node is None or not node_is_ready(node):
                self.queue.add(node_name)

    def resync(self) -> None:
        for node in self.store.items(NODES):
            self.queue.add(objects.meta(node)["name"])
        for name in self.index.nodes_with_pods():
            if self.store.get(NODES, "", name) is None:
                self.queue.add(name)

    def process(self, key: str) -> None:
        node = self.store.get(NODES, "", key)
        if node is None:
            self._collect_orphans(key)
            return
        if objects.is_terminating(node):
            return
        self._sync_node(node)
        if not node_is_ready(node):
            self._mark_pods_not_ready(key)

    def _sync_node(self, node: Obj) -> None:
        spec = objects.spec(node)
        taints = wanted_taints(node)
        needs_cidr = not spec.get("podCIDR")
        if not needs_cidr and taints == list(spec.get("taints") or ()):
            return
        updated = clone(node)
        new_spec = updated.setdefault("spec", {})
        now = self.now()
        for taint in taints:
            if taint.get("timeAdded", "") is None:
                taint["timeAdded"] = now
        if taints:
            new_spec["taints"] = taints
        else:
            new_spec.pop("taints", None)
        if needs_cidr:
            cidr = next_pod_cidr(
                used_pod_cidrs(self.engine),
                cluster_cidr=self.cluster_cidr,
                prefix=self.node_cidr_prefix,
            )
            new_spec["podCIDR"] = cidr
            new_spec["podCIDRs"] = [cidr]
        self.writer.update(NODES, updated)

    def _mark_pods_not_ready(self, node_name: str) -> None:
        now = self.now()
        for namespace, name in self.index.pods_on_node(node_name):
            pod = self.store.get(PODS, namespace, name)
            if pod is None or not objects.is_ready(pod):
                continue
            conditions = []
            for cond in objects.status(pod).get("conditions") or ():
                if cond.get("type") == "Ready":
                    conditions.append({**cond, "status": "False", "lastTransitionTime": now})
                else:
                    conditions.append(cond)
            meta = objects.meta(pod)
            self.writer.update_status(
                PODS,
                {
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "resourceVersion": meta.get("resourceVersion"),
                    },
                    "status": {**objects.status(pod), "conditions": conditions},
                },
            )

    def _collect_orphans(self, node_name: str) -> None:
        for namespace, name in self.index.pods_on_node(node_name):
            pod = self.store.get(PODS, namespace, name)
            if pod is None:
                continue
            self.writer.delete(
                PODS,
                namespace,
                name,
                uid=objects.meta(pod).get("uid"),
                grace_period_seconds=0,
            )
