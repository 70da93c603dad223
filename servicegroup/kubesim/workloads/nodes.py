"""Simulated Nodes: what they look like, how they are written, and the Python API to change them.

Owns: `NodeSpec` and `parse_node_spec` (the `--node NAME:KEY=VALUE,...` syntax of
`servicegroup sim`), `build_node` (the Node object a kubelet registers: `kubernetes.io/
hostname` and os/arch labels, a podCIDR, `Ready` and pressure conditions, capacity and
allocatable, addresses, nodeInfo), pod CIDR allocation out of the cluster CIDR, and `NodeAPI`
(`add_node`, `relabel_node`, `cordon_node`, `taint_node`, `set_node_ready`, `delete_node`).

Invariants:
- Every change goes through the Engine as the real actor would send it: the kubelet creates
  its Node and writes its status (`kubelet`, status subresource), labels and cordoning are
  merge patches (`kubectl-label`, `kubectl-cordon`, `kubectl-taint`), so watchers and the
  workload controllers see ordinary watch events.
- Pod CIDRs are unique among the stored Nodes: a new Node gets the lowest free block of the
  cluster CIDR (10.244.0.0/14 in /24s by default: 1,024 nodes, `10.244.N.0/24` for the
  first 256).
- Functions return private copies; stored objects are never mutated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from servicegroup.kubesim.engine import MERGE_PATCH, Engine, WriteContext
from servicegroup.kubesim.registry import ResourceType
from servicegroup.kubesim.store import clone
from servicegroup.kubesim.workloads.index import NODES

Obj = dict[str, Any]

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/14"
DEFAULT_NODE_CIDR_PREFIX = 24
DEFAULT_CAPACITY: Mapping[str, str] = {
    "cpu": "4",
    "memory": "8Gi",
    "pods": "110",
    "ephemeral-storage": "100Gi",
}

_PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
_READY = ("KubeletReady", "kubelet is posting ready status")
_NOT_READY = (
    "KubeletNotReady",
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
)
_UNKNOWN = ("NodeStatusUnknown", "Kubelet stopped posting node status.")


class NodeLike(Protocol):
    """Anything with a node name and labels (settings.NodeSpec, app.NodeSpec, NodeSpec)."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


class Taint(NamedTuple):
    key: str
    value: str = ""
    effect: str = "NoSchedule"

    def to_dict(self) -> Obj:
        taint: Obj = {"key": self.key, "effect": self.effect}
        if self.value:
            taint["value"] = self.value
        return taint


class NodeSpec(NamedTuple):
    """A simulated node to register."""

    name: str
    labels: Mapping[str, str] = {}
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: bool = True


def parse_node_spec(text: str) -> NodeSpec:
    """`NAME` or `NAME:KEY=VALUE,KEY=VALUE` (the `--node` flag of `servicegroup sim`)."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"node spec {text!r}: a node name is required")
    labels: dict[str, str] = {}
    for pair in rest.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"node {name}: label {pair.strip()!r} must be KEY=VALUE")
        if key in labels:
            raise ValueError(f"node {name}: label {key!r} given twice")
        labels[key] = value.strip()
    return NodeSpec(name=name, labels=labels)


def node_address(index: int) -> str:
    """The InternalIP of the index-th node: 172.18.0.0/16 as kind's node network."""
    return f"172.18.{index // 254 % 256}.{index % 254 + 2}"


def pod_cidr_blocks(cluster_cidr: str, prefix: int) -> Iterable[str]:
    network = ipaddress.ip_network(cluster_cidr)
    for subnet in network.subnets(new_prefix=prefix):
        yield str(subnet)


def used_pod_cidrs(engine: Engine) -> set[str]:
    used: set[str] = set()
    for node in engine.store.items(NODES):
        spec = node.get("spec") or {}
        for cidr in spec.get("podCIDRs") or [spec.get("podCIDR")]:
            if cidr:
                used.add(str(cidr))
    return used


def next_pod_cidr(used: set[str], *, cluster_cidr: str, prefix: int) -> str:
    for block in pod_cidr_blocks(cluster_cidr, prefix):
        if block not in used:
            return block
    raise RuntimeError(f"the cluster CIDR {cluster_cidr} has no free /{prefix} left")


def ready_condition(ready: bool | None, *, now: str) -> Obj:
    """The node `Ready` condition a kubelet (True/False) or the node controller (None) writes."""
    if ready is None:
        status, (reason, message) = "Unknown", _UNKNOWN
    elif ready:
        status, (reason, message) = "True", _READY
    else:
        status, (reason, message) = "False", _NOT_READY
    return {
        "type": "Ready",
        "status": status,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def build_node(
    spec: NodeLike,
    *,
    index: int,
    pod_cidr: str,
    now: str,
    capacity: Mapping[str, str] = DEFAULT_CAPACITY,
) -> Obj:
    """The Node object a kubelet registers for `spec`."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        HOSTNAME_LABEL: spec.name,
        "kubernetes.io/os": "linux",
        **dict(spec.labels),
    }
    conditions: list[Obj] = [
        {
            "type": type_,
            "status": "False",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
        for type_, reason, message in _PRESSURE_CONDITIONS
    ]
    conditions.append(ready_condition(bool(getattr(spec, "ready", True)), now=now))
    node_spec: Obj = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    taints = [Taint(*t).to_dict() for t in getattr(spec, "taints", ())]
    if taints:
        node_spec["taints"] = taints
    if getattr(spec, "unschedulable", False):
        node_spec["unschedulable"] = True
    machine = f"kubesim-{index:04d}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": node_spec,
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": node_address(index)},
                {"type": "Hostname", "address": spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": machine,
                "systemUUID": machine,
                "bootID": machine,
                "kernelVersion": "6.1.0-kubesim",
                "osImage": "kubesim",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "v1.32.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


class NodeAPI:
    """Add, relabel, cordon, taint, mark (not) ready and delete simulated Nodes."""

    def __init__(
        self,
        *,
        engine: Engine,
        cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
        node_cidr_prefix: int = DEFAULT_NODE_CIDR_PREFIX,
    ) -> None:
        self.engine = engine
        self.cluster_cidr = cluster_cidr
        self.node_cidr_prefix = node_cidr_prefix

    def _rt(self) -> ResourceType:
        rt = self.engine.registry.get("", "v1", "nodes")
        assert rt is not None
        return rt

    def _get(self, name: str) -> Obj:
        return self.engine.get(self._rt(), None, name)

    def add_node(
        self,
        spec: NodeLike | str,
        *,
        capacity: Mapping[str, str] = DEFAULT_CAPACITY,
    ) -> Obj:
        """Register a node as its kubelet would; `spec` may be a `NAME:K=V,...` string."""
        if isinstance(spec, str):
            spec = parse_node_spec(spec)
        pod_cidr = self.allocate_pod_cidr()
        # The CIDR block's ordinal numbers the node: addresses stay unique as CIDRs are.
        block = ipaddress.ip_network(pod_cidr)
        cluster = ipaddress.ip_network(self.cluster_cidr)
        ordinal = (int(block.network_address) - int(cluster.network_address)) >> (
            block.max_prefixlen - self.node_cidr_prefix
        )
        node = build_node(
            spec, index=ordinal + 1, pod_cidr=pod_cidr, now=self.engine.now(), capacity=capacity
        )
        created = self.engine.create(self._rt(), None, node, WriteContext(manager="kubelet"))
        return clone(created)  # type: ignore[no-any-return]

    def add_nodes(self, specs: Iterable[NodeLike | str]) -> list[Obj]:
        return [self.add_node(spec) for spec in specs]

    def allocate_pod_cidr(self) -> str:
        return next_pod_cidr(
            used_pod_cidrs(self.engine),
            cluster_cidr=self.cluster_cidr,
            prefix=self.node_cidr_prefix,
        )

    def _patch(self, name: str, body: Obj, *, manager: str) -> Obj:
        patched, _ = self.engine.patch(
            self._rt(), None, name, MERGE_PATCH, body, ctx=WriteContext(manager=manager)
        )
        return clone(patched)  # type: ignore[no-any-return]

    def relabel_node(
        self, name: str, labels: Mapping[str, str | None], *, replace: bool = False
    ) -> Obj:
        """Set labels (a None value removes that label); `replace` drops labels not given.

        `kubernetes.io/hostname` and the os/arch labels the kubelet owns stay unless named.
        """
        patch: dict[str, str | None] = dict(labels)
        if replace:
            kubelet_owned = {
                HOSTNAME_LABEL,
                "kubernetes.io/os",
                "kubernetes.io/arch",
                "beta.kubernetes.io/os",
                "beta.kubernetes.io/arch",
            }
            current = self._get(name)["metadata"].get("labels") or {}
            for key in current:
                if key not in patch and key not in kubelet_owned:
                    patch[key] = None
        return self._patch(name, {"metadata": {"labels": patch}}, manager="kubectl-label")

    def cordon_node(self, name: str, *, cordoned: bool = True) -> Obj:
        """`kubectl cordon` (or uncordon with `cordoned=False`)."""
        return self._patch(
            name, {"spec": {"unschedulable": True if cordoned else None}}, manager="kubectl-cordon"
        )

    def taint_node(self, name: str, taints: Iterable[Taint | tuple[str, str, str]]) -> Obj:
        """Replace the node's user taints (taints the node controller manages are kept)."""
        current = self._get(name)
        managed = [
            t
            for t in (current.get("spec") or {}).get("taints") or []
            if t.get("key") in (UNSCHEDULABLE_TAINT, NOT_READY_TAINT, UNREACHABLE_TAINT)
        ]
        wanted = [Taint(*t).to_dict() for t in taints]
        return self._patch(
            name, {"spec": {"taints": (managed + wanted) or None}}, manager="kubectl-taint"
        )

    def set_node_ready(self, name: str, ready: bool | None) -> Obj:
        """The kubelet reports Ready (True) or NotReady (False); None: it stopped reporting."""
        node = clone(self._get(name))
        now = self.engine.now()
        status = node.setdefault("status", {})
        conditions: list[Obj] = []
        wanted = ready_condition(ready, now=now)
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready":
                if cond.get("status") == wanted["status"]:
                    wanted["lastTransitionTime"] = cond.get("lastTransitionTime", now)
                conditions.append(wanted)
            elif ready is None:
                conditions.append(
                    {
                        **cond,
                        "status": "Unknown",
                        "reason": "NodeStatusUnknown",
                        "message": "Kubelet stopped posting node status.",
                        "lastTransitionTime": now,
                    }
                    if cond.get("status") != "Unknown"
                    else cond
                )
            else:
                conditions.append(cond)
        if not any(c.get("type") == "Ready" for c in conditions):
            conditions.append(wanted)
        status["conditions"] = conditions
        manager = "kube-controller-manager" if ready is None else "kubelet"
        updated, _ = self.engine.update(
            self._rt(), None, name, node, WriteContext(manager=manager), subresource="status"
        )
        return clone(updated)  # type: ignore[no-any-return]

    def delete_node(self, name: str) -> None:
        self.engine.delete(self._rt(), None, name, WriteContext(manager="kubectl"))
