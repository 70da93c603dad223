"""Which `IP FQDN` host records a node publishes for StatefulSetGrid headless names (SPEC A6).

Owns: `HostRecord`, `compute_records` (the records of one node, from cached objects), the
upstream membership rule and the pod rules (`ordinals`, `pod_ips`, `pod_publishable`).

The rule, for the node whose labels are `node_labels`:
- a StatefulSet counts when its controller ownerReference is a StatefulSetGrid we know (same
  namespace, same uid), the node carries that grid's `gridUniqKey` with a non-empty value `v`,
  and the StatefulSet's `superedge.io/nodeunit` label equals `v` (the unit is read from the
  label, never parsed out of a name: upstream's name parsing breaks when the grid name contains
  the unit value, and sanitized names do not contain it at all);
- its `spec.serviceName` must name a Service of the same namespace whose controller is a
  ServiceGrid we know with the same `gridUniqKey` (upstream's rule: a StatefulSetGrid is
  reachable under unit-independent names only through a ServiceGrid of the same key);
- for every ordinal `i` of the StatefulSet (`spec.ordinals.start` .. + `spec.replicas`), the
  pod `{statefulset}-{i}` controlled by that StatefulSet (uid checked) is published under
  `{grid}-{i}.{service}.{namespace}.svc.{cluster_domain}`, once per IP it has (dual-stack pods
  get an A and an AAAA line), when it is Ready (or `publish_not_ready`), has an IP, and has
  not finished (a Succeeded/Failed pod's IP may already belong to another pod).

Invariants: pure (no I/O, inputs never mutated); the result is a set, so input order never
matters; every published name is a valid DNS name (labels of 1..63 characters, 253 in total)
and every IP is a valid, normalized IPv4/IPv6 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from servicegroup.grid.compare import controller_of
from servicegroup.grid.labels import NODEUNIT

SUPEREDGE_GROUP = "superedge.io"
STATEFULSETGRID_KIND = "StatefulSetGrid"
SERVICEGRID_KIND = "ServiceGrid"

_DNS_NAME_MAX = 253
_DNS_LABEL_MAX = 63


class HostRecord(NamedTuple):
    """One `IP FQDN` line of the hosts file."""

    fqdn: str
    ip: str

    def line(self) -> str:
        return f"{self.ip} {self.fqdn}"


class Lookup(Protocol):
    """Objects by `namespace/name` key (an informer store, or a plain dict in tests)."""

    def get(self, key: str, /) -> dict[str, Any] | None: ...


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _group(api_version: object) -> str:
    text = api_version if isinstance(api_version, str) else ""
    group, slash, _ = text.rpartition("/")
    return group if slash else ""


def _controlled_by_kind(obj: Mapping[str, Any], kind: str) -> str | None:
    """The uid of `obj`'s controller when it is a superedge.io `kind`, else None."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != kind or _group(ref.get("apiVersion")) != SUPEREDGE_GROUP:
        return None
    uid = ref.get("uid")
    return uid if isinstance(uid, str) and uid else None


def grid_uniq_key(grid: Mapping[str, Any]) -> str:
    """A grid's `spec.gridUniqKey` ("" when missing)."""
    key = _spec(grid).get("gridUniqKey")
    return key if isinstance(key, str) else ""


def _by_uid(grids: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for grid in grids:
        uid = _meta(grid).get("uid")
        if isinstance(uid, str) and uid:
            out[uid] = grid
    return out


def ordinals(statefulset: Mapping[str, Any]) -> range:
    """The ordinals a StatefulSet wants: `ordinals.start` .. + `replicas` (default 0, 1)."""
    spec = _spec(statefulset)
    replicas = spec.get("replicas", 1)
    if replicas is None:
        replicas = 1
    ordinals_spec = spec.get("ordinals")
    start = ordinals_spec.get("start", 0) if isinstance(ordinals_spec, Mapping) else 0
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        replicas = 0
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        start = 0
    return range(start, start + replicas)


def pod_ips(pod: Mapping[str, Any]) -> tuple[str, ...]:
    """The pod's valid IPs, normalized (`status.podIPs`, else `status.podIP`), deduplicated."""
    status = pod.get("status")
    if not isinstance(status, Mapping):
        return ()
    candidates: list[object] = []
    listed = status.get("podIPs")
    if isinstance(listed, list):
        candidates.extend(item.get("ip") for item in listed if isinstance(item, Mapping))
    candidates.append(status.get("podIP"))
    out: dict[str, None] = {}
    for candidate in candidates:
        if not isinstance(candidate, str) or not candidate:
            continue
        try:
            out[str(ipaddress.ip_address(candidate))] = None
        except ValueError:
            continue  # never write something CoreDNS would reject or misread
    return tuple(out)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The Ready condition is True and the pod is not terminating."""
    if _meta(pod).get("deletionTimestamp"):
        # The endpoints controller stops counting a terminating pod as ready; so do we.
        return False
    status = pod.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    for condition in conditions if isinstance(conditions, list) else ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def pod_publishable(pod: Mapping[str, Any], *, publish_not_ready: bool) -> bool:
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    if phase in ("Succeeded", "Failed"):
        return False
    return publish_not_ready or pod_ready(pod)


def _valid_fqdn(name: str) -> bool:
    if len(name) > _DNS_NAME_MAX:
        return False
    return all(0 < len(label) <= _DNS_LABEL_MAX for label in name.split("."))


def fqdn(*, grid: str, ordinal: int, service: str, namespace: str, cluster_domain: str) -> str:
    """`{grid}-{ordinal}.{service}.{namespace}.svc.{cluster_domain}` (lower case)."""
    return f"{grid}-{ordinal}.{service}.{namespace}.svc.{cluster_domain}".lower()


def compute_records(
    *,
    node_labels: Mapping[str, str] | None,
    statefulset_grids: Iterable[Mapping[str, Any]],
    service_grids: Iterable[Mapping[str, Any]],
    statefulsets: Iterable[Mapping[str, Any]],
    services: Lookup,
    pods: Lookup,
    cluster_domain: str,
    publish_not_ready: bool,
) -> frozenset[HostRecord]:
    """Every record the node with `node_labels` publishes (rules in the module docstring)."""
    if not node_labels:
        return frozenset()
    ssgs = _by_uid(statefulset_grids)
    sgs = _by_uid(service_grids)
    records: set[HostRecord] = set()
    for sts in statefulsets:
        records.update(
            _statefulset_records(
                sts,
                node_labels=node_labels,
                ssgs=ssgs,
                sgs=sgs,
                services=services,
                pods=pods,
                cluster_domain=cluster_domain,
                publish_not_ready=publish_not_ready,
            )
        )
    return frozenset(records)


def _statefulset_records(
    sts: Mapping[str, Any],
    *,
    node_labels: Mapping[str, str],
    ssgs: Mapping[str, Mapping[str, Any]],
    sgs: Mapping[str, Mapping[str, Any]],
    services: Lookup,
    pods: Lookup,
    cluster_domain: str,
    publish_not_ready: bool,
) -> list[HostRecord]:
    meta = _meta(sts)
    namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
    if not (isinstance(namespace, str) and isinstance(name, str) and isinstance(uid, str)):
        return []
    grid_uid = _controlled_by_kind(sts, STATEFULSETGRID_KIND)
    grid = ssgs.get(grid_uid) if grid_uid else None
    if grid is None or _meta(grid).get("namespace") != namespace:
        return []
    key = grid_uniq_key(grid)
    unit = node_labels.get(key) if key else None
    labels = meta.get("labels")
    if not unit or not isinstance(labels, Mapping) or labels.get(NODEUNIT) != unit:
        return []
    service_name = _spec(sts).get("serviceName")
    if not isinstance(service_name, str) or not service_name:
        return []
    service = services.get(f"{namespace}/{service_name}")
    sg_uid = _controlled_by_kind(service, SERVICEGRID_KIND) if service is not None else None
    service_grid = sgs.get(sg_uid) if sg_uid else None
    if (
        service_grid is None
        or _meta(service_grid).get("namespace") != namespace
        or grid_uniq_key(service_grid) != key
    ):
        return []
    grid_name = str(_meta(grid).get("name", ""))
    out: list[HostRecord] = []
    for ordinal in ordinals(sts):
        pod = pods.get(f"{namespace}/{name}-{ordinal}")
        if pod is None:
            continue
        owner = controller_of(pod)
        if owner is None or owner.get("uid") != uid or owner.get("kind") != "StatefulSet":
            continue  # a pod of an earlier StatefulSet with the same name, or a stranger
        if not pod_publishable(pod, publish_not_ready=publish_not_ready):
            continue
        host = fqdn(
            grid=grid_name,
            ordinal=ordinal,
            service=service_name,
            namespace=namespace,
            cluster_domain=cluster_domain,
        )
        if not _valid_fqdn(host):
            continue
        out.extend(HostRecord(host, ip) for ip in pod_ips(pod))
    return out
