"""Which endpoints a node keeps: the pure NodeUnit filter of SPEC A5 (no I/O, no state).

Owns: reading a Service's topology policy (`topologyKeys`, our opt-in
`superedge.io/topology-fallback`), the locality test between two nodes, the filtered forms of
an EndpointSlice (discovery.k8s.io/v1) and of an Endpoints object, and upstream's
`default/kubernetes` local-endpoint rewrite.

Rules (SPEC A5, issue 6):
- A Service whose `topologyKeys` annotation is a JSON array of non-empty strings is
  NodeUnit-local. A missing annotation, or one that is not such an array, or an empty array,
  means pass-through, as upstream (which logs and ignores an unparsable value).
- For a NodeUnit-local Service an endpoint is kept when its `nodeName` is a known node that
  shares, for at least one listed key, the local node's non-empty value. Endpoints without a
  `nodeName`, on unknown nodes, or while the local node itself is unknown, are dropped.
- Fallback (beyond upstream): with `superedge.io/topology-fallback: "true"` a Service keeps
  every endpoint while none of its local endpoints is ready; the caller decides that
  (`fallback_active`) because it spans every slice of the Service.
- `default/kubernetes` carrying `superedge.io/local-endpoint` (an IP) and
  `superedge.io/local-port` (1..65535) is served as that single address, port name `https`,
  TCP. The rewrite replaces the topology filter for that object (the address is local by
  definition). Invalid values leave the object as it is.

Invariants: inputs are never mutated; an output shares every untouched sub-object with its
input (objects come from a read-only informer cache), and an object needing no change is
returned as the input itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import orjson

from servicegroup.grid.labels import (
    LOCAL_ENDPOINT,
    LOCAL_PORT,
    SERVICE_NAME_LABEL,
    TOPOLOGY_FALLBACK,
    TOPOLOGY_KEYS,
)

KUBERNETES_SERVICE = ("default", "kubernetes")

NodeLabels = Mapping[str, str]
IsLocal = Callable[[Any], bool]


class Policy(NamedTuple):
    """How a NodeUnit-local Service is filtered."""

    keys: tuple[str, ...]
    fallback: bool


class Filtered(NamedTuple):
    """A served form and how many endpoints the topology filter kept and dropped."""

    obj: dict[str, Any]
    kept: int
    dropped: int


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def parse_topology_keys(value: str | None) -> tuple[str, ...]:
    """The keys of a `topologyKeys` value; () when absent or not a JSON array of strings."""
    if not value:
        return ()
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(parsed, list) or not all(isinstance(k, str) for k in parsed):
        return ()
    return tuple(dict.fromkeys(k for k in parsed if k))


def service_policy(service: Mapping[str, Any] | None) -> Policy | None:
    """The Service's policy, or None when its endpoints pass through unchanged."""
    if service is None:
        return None
    annotations = _annotations(service)
    keys = parse_topology_keys(annotations.get(TOPOLOGY_KEYS))
    if not keys:
        return None
    fallback = str(annotations.get(TOPOLOGY_FALLBACK, "")).strip().lower() == "true"
    return Policy(keys, fallback)


def shares_unit(local: NodeLabels | None, other: NodeLabels | None, keys: tuple[str, ...]) -> bool:
    """Does `other` share the local node's non-empty value of at least one key?"""
    if local is None or other is None:
        return False
    for key in keys:
        value = local.get(key)
        if value and other.get(key) == value:
            return True
    return False


def locality(*, local_node: str, nodes: Mapping[str, NodeLabels], keys: tuple[str, ...]) -> IsLocal:
    """`is_local(nodeName)` for one Service's keys, seen from `local_node`."""
    local = nodes.get(local_node)
    cache: dict[str, bool] = {}

    def is_local(node_name: Any) -> bool:
        if not isinstance(node_name, str) or not node_name:
            return False
        answer = cache.get(node_name)
        if answer is None:
            answer = cache[node_name] = shares_unit(local, nodes.get(node_name), keys)
        return answer

    return is_local


# --------------------------------------------------------------------- EndpointSlices


def slice_service(slice_: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, service name) from the slice's `kubernetes.io/service-name` label."""
    metadata = slice_.get("metadata") or {}
    name = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
    namespace = metadata.get("namespace")
    if not name or not namespace:
        return None
    return str(namespace), str(name)


def _ready(endpoint: Mapping[str, Any]) -> bool:
    # discovery/v1: a nil `ready` is an unknown state that consumers treat as ready.
    return (endpoint.get("conditions") or {}).get("ready") is not False


def slice_has_local_ready(slice_: Mapping[str, Any], is_local: IsLocal) -> bool:
    return any(_ready(ep) and is_local(ep.get("nodeName")) for ep in slice_.get("endpoints") or ())


def slice_nodes(slice_: Mapping[str, Any]) -> set[str]:
    return {str(ep["nodeName"]) for ep in slice_.get("endpoints") or () if ep.get("nodeName")}


def filter_slice(
    slice_: dict[str, Any],
    *,
    policy: Policy | None,
    is_local: IsLocal,
    fallback_active: bool = False,
) -> Filtered:
    """The EndpointSlice a node's kube-proxy should see."""
    rewritten = rewrite_kubernetes_slice(slice_)
    if rewritten is not None:
        return Filtered(rewritten, 0, 0)
    if policy is None:
        return Filtered(slice_, 0, 0)
    endpoints = slice_.get("endpoints") or []
    if fallback_active:
        return Filtered(slice_, len(endpoints), 0)
    kept = [ep for ep in endpoints if is_local(ep.get("nodeName"))]
    dropped = len(endpoints) - len(kept)
    if not dropped:
        return Filtered(slice_, len(kept), 0)
    return Filtered({**slice_, "endpoints": kept}, len(kept), dropped)


# -------------------------------------------------------------------------- Endpoints


def endpoints_have_local_ready(endpoints: Mapping[str, Any], is_local: IsLocal) -> bool:
    return any(
        is_local(address.get("nodeName"))
        for subset in endpoints.get("subsets") or ()
        for address in subset.get("addresses") or ()
    )


def endpoints_nodes(endpoints: Mapping[str, Any]) -> set[str]:
    return {
        str(address["nodeName"])
        for subset in endpoints.get("subsets") or ()
        for field in ("addresses", "notReadyAddresses")
        for address in subset.get(field) or ()
        if address.get("nodeName")
    }


def filter_endpoints(
    endpoints: dict[str, Any],
    *,
    policy: Policy | None,
    is_local: IsLocal,
    fallback_active: bool = False,
) -> Filtered:
    """The Endpoints object a node's kube-proxy should see.

    Subsets left with no address at all are removed, and empty address lists omitted, as
    the endpoints controller itself never writes them.
    """
    rewritten = rewrite_kubernetes_endpoints(endpoints)
    if rewritten is not None:
        return Filtered(rewritten, 0, 0)
    if policy is None:
        return Filtered(endpoints, 0, 0)
    subsets = endpoints.get("subsets") or []
    total = sum(
        len(subset.get(field) or ())
        for subset in subsets
        for field in ("addresses", "notReadyAddresses")
    )
    if fallback_active:
        return Filtered(endpoints, total, 0)
    new_subsets: list[dict[str, Any]] = []
    kept = 0
    for subset in subsets:
        new_subset = dict(subset)
        for field in ("addresses", "notReadyAddresses"):
            addresses = subset.get(field)
            if addresses is None:
                continue
            local = [a for a in addresses if is_local(a.get("nodeName"))]
            kept += len(local)
            if local:
                new_subset[field] = local
            else:
                new_subset.pop(field)
        if new_subset.get("addresses") or new_subset.get("notReadyAddresses"):
            new_subsets.append(new_subset)
    if kept == total:
        return Filtered(endpoints, kept, 0)
    out = dict(endpoints)
    if new_subsets:
        out["subsets"] = new_subsets
    else:
        out.pop("subsets", None)
    return Filtered(out, kept, total - kept)


# --------------------------------------------------------- default/kubernetes rewrite


def _local_endpoint(obj: Mapping[str, Any]) -> tuple[str, int] | None:
    annotations = _annotations(obj)
    address = annotations.get(LOCAL_ENDPOINT)
    port_text = annotations.get(LOCAL_PORT)
    if address is None or port_text is None:
        return None
    try:
        ip = ipaddress.ip_address(str(address).strip())
        port = int(str(port_text).strip())
    except ValueError:
        return None
    if not 0 < port < 65536:
        return None
    return str(ip), port


def _is_kubernetes(obj: Mapping[str, Any], *, by_label: bool) -> bool:
    metadata = obj.get("metadata") or {}
    if metadata.get("namespace") != KUBERNETES_SERVICE[0]:
        return False
    if metadata.get("name") == KUBERNETES_SERVICE[1]:
        return True
    return by_label and (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL) == "kubernetes"


def rewrite_kubernetes_slice(slice_: dict[str, Any]) -> dict[str, Any] | None:
    """default/kubernetes's slice as its single local address, or None when not applicable."""
    if not _is_kubernetes(slice_, by_label=True):
        return None
    local = _local_endpoint(slice_)
    if local is None:
        return None
    ip, port = local
    return {
        **slice_,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


def rewrite_kubernetes_endpoints(endpoints: dict[str, Any]) -> dict[str, Any] | None:
    """default/kubernetes's Endpoints as its single local address, or None."""
    if not _is_kubernetes(endpoints, by_label=False):
        return None
    local = _local_endpoint(endpoints)
    if local is None:
        return None
    ip, port = local
    return {
        **endpoints,
        "subsets": [
            {
                "addresses": [{"ip": ip}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }
