"""kube-apiserver defaulting of built-in kinds, applied to raw dicts in place.

Owns `apply_defaults` (what the scheme's defaulting functions of core/v1, apps/v1,
discovery/v1 and rbac/v1 do on every decode, i.e. on create and on every update/patch result), the
Service fields the service registry fills before validation (`clusterIPs` from
`clusterIP`, `ipFamilyPolicy`, `ipFamilies`), `prepare_service_update` (the registry's
update-only Service normalisation) and `needs_cluster_ip`.

Call order the server follows, as kube-apiserver does:
- create: `apply_defaults` -> allocate the cluster IP when `needs_cluster_ip` -> validate;
- update: `prepare_service_update(old, new)` (Services only) -> `apply_defaults(new)` ->
  validate.

Invariants:
- Idempotent: defaulting a defaulted object changes nothing.
- Only absent (or Go-zero) fields are filled, except where the wire format itself differs
  from what the client sent (quantities canonicalised, `creationTimestamp: null` dropped
  from templates, Secret `stringData` folded into `data`), which is what a GET returns.
- The cluster is single-stack IPv4: `ipFamilies` default to `["IPv4"]`.
- Unknown kinds are left untouched. Status subresource resets, generations and admission
  plugins (ServiceAccount, Priority, DefaultTolerationSeconds) are not defaulting and are
  not done here.
"""

from __future__ import annotations

import base64
from typing import Any

from servicegroup.kubesim import quantity
from servicegroup.kubesim.defaults_pod import (
    default_pod_spec,
    default_pvc_spec,
    default_pvc_template,
    defaults_for_template,
)
from servicegroup.kubesim.objpath import (
    dicts,
    ensure_dict,
    get_dict,
    get_list,
    get_str,
    set_default,
)

__all__ = [
    "apply_defaults",
    "defaults_for_template",
    "needs_cluster_ip",
    "prepare_service_update",
]

CLUSTER_IP_NONE = "None"
DEFAULT_IP_FAMILY = "IPv4"
DEFAULT_CLIENT_IP_TIMEOUT = 10800
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _template_of(obj: dict[str, Any]) -> None:
    spec = ensure_dict(obj, "spec")
    defaults_for_template(ensure_dict(spec, "template"))


def _default_replicas(spec: dict[str, Any]) -> None:
    if spec.get("replicas") is None:
        spec["replicas"] = 1


def _default_revision_history(spec: dict[str, Any]) -> None:
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10


def _deployment(obj: dict[str, Any]) -> None:
    spec = ensure_dict(obj, "spec")
    _default_replicas(spec)
    strategy = ensure_dict(spec, "strategy")
    set_default(strategy, "type", "RollingUpdate")
    if strategy.get("type") == "RollingUpdate":
        rolling = ensure_dict(strategy, "rollingUpdate")
        for field in ("maxUnavailable", "maxSurge"):
            if rolling.get(field) is None:
                rolling[field] = "25%"
    _default_revision_history(spec)
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _template_of(obj)


def _replica_set(obj: dict[str, Any]) -> None:
    _default_replicas(ensure_dict(obj, "spec"))
    _template_of(obj)


def _stateful_set(obj: dict[str, Any]) -> None:
    spec = ensure_dict(obj, "spec")
    set_default(spec, "podManagementPolicy", "OrderedReady")
    strategy = ensure_dict(spec, "updateStrategy")
    if strategy.get("type") in (None, ""):
        strategy["type"] = "RollingUpdate"
        if strategy.get("rollingUpdate") is None:
            strategy["rollingUpdate"] = {}
    # An explicit `type: RollingUpdate` without `rollingUpdate` gets no partition upstream.
    rolling = get_dict(strategy, "rollingUpdate")
    if (
        strategy.get("type") == "RollingUpdate"
        and rolling is not None
        and rolling.get("partition") is None
    ):
        rolling["partition"] = 0
    retention = ensure_dict(spec, "persistentVolumeClaimRetentionPolicy")
    set_default(retention, "whenDeleted", "Retain")
    set_default(retention, "whenScaled", "Retain")
    _default_replicas(spec)
    _default_revision_history(spec)
    _template_of(obj)
    for _, claim in dicts(get_list(spec, "volumeClaimTemplates")):
        default_pvc_template(claim)


def _daemon_set(obj: dict[str, Any]) -> None:
    spec = ensure_dict(obj, "spec")
    strategy = ensure_dict(spec, "updateStrategy")
    set_default(strategy, "type", "RollingUpdate")
    if strategy.get("type") == "RollingUpdate":
        rolling = ensure_dict(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    _default_revision_history(spec)
    _template_of(obj)


def _replication_controller(obj: dict[str, Any]) -> None:
    spec = ensure_dict(obj, "spec")
    template = get_dict(spec, "template")
    labels = get_dict(get_dict(template, "metadata"), "labels")
    if labels is not None:
        if not get_dict(spec, "selector"):
            spec["selector"] = dict(labels)
        metadata = ensure_dict(obj, "metadata")
        if not get_dict(metadata, "labels"):
            metadata["labels"] = dict(labels)
    _default_replicas(spec)
    if template is not None:
        defaults_for_template(template)


def _pod(obj: dict[str, Any]) -> None:
    default_pod_spec(ensure_dict(obj, "spec"), is_pod=True)


def _pod_template(obj: dict[str, Any]) -> None:
    defaults_for_template(ensure_dict(obj, "template"))


def _pvc(obj: dict[str, Any]) -> None:
    default_pvc_spec(ensure_dict(obj, "spec"))
    set_default(ensure_dict(obj, "status"), "phase", "Pending")


def externally_accessible(spec: dict[str, Any]) -> bool:
    service_type = get_str(spec, "type")
    return service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(get_list(spec, "externalIPs"))
    )


def _service_spec_defaults(spec: dict[str, Any]) -> None:
    set_default(spec, "sessionAffinity", "None")
    if spec.get("sessionAffinity") == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec.get("sessionAffinity") == "ClientIP":
        client_ip = get_dict(get_dict(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}
            }
    set_default(spec, "type", "ClusterIP")
    for _, port in dicts(get_list(spec, "ports")):
        set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    service_type = get_str(spec, "type")
    if externally_accessible(spec):
        set_default(spec, "externalTrafficPolicy", "Cluster")
    if service_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        set_default(spec, "internalTrafficPolicy", "Cluster")
    if service_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True


def _service_ip_fields(spec: dict[str, Any]) -> None:
    # Registry work before allocation: sync clusterIPs, then initIPFamilyFields.
    cluster_ip = get_str(spec, "clusterIP")
    if cluster_ip and not get_list(spec, "clusterIPs"):
        spec["clusterIPs"] = [cluster_ip]
    if get_str(spec, "type") == "ExternalName":
        return
    headless_selectorless = cluster_ip == CLUSTER_IP_NONE and not get_dict(spec, "selector")
    if spec.get("ipFamilyPolicy") is None:
        spec["ipFamilyPolicy"] = "RequireDualStack" if headless_selectorless else "SingleStack"
    families = get_list(spec, "ipFamilies")
    if "ipFamilies" not in spec or not isinstance(spec["ipFamilies"], list):
        spec["ipFamilies"] = families
    for i, ip in enumerate(get_list(spec, "clusterIPs")):
        if ip == CLUSTER_IP_NONE or not isinstance(ip, str):
            break
        if i >= len(families):
            families.append("IPv6" if ":" in ip else "IPv4")
    if not families:
        families.append(DEFAULT_IP_FAMILY)
    # Only headless selectorless Services may name a family the cluster does not serve.
    if headless_selectorless and spec["ipFamilyPolicy"] != "SingleStack" and len(families) < 2:
        families.append("IPv6" if families[0] == "IPv4" else "IPv4")


def _service(obj: dict[str, Any]) -> None:
    spec = ensure_dict(obj, "spec")
    _service_spec_defaults(spec)
    _service_ip_fields(spec)
    status = get_dict(obj, "status")
    ingress = get_list(get_dict(status, "loadBalancer"), "ingress")
    if spec.get("type") == "LoadBalancer":
        for _, entry in dicts(ingress):
            if entry.get("ip") and entry.get("ipMode") is None:
                entry["ipMode"] = "VIP"


def needs_cluster_ip(obj: dict[str, Any]) -> bool:
    """True when the server must allocate `clusterIP`/`clusterIPs` for this Service."""
    spec = get_dict(obj, "spec") or {}
    return get_str(spec, "type") != "ExternalName" and not get_str(spec, "clusterIP")


def _same_ips(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return get_str(old, "clusterIP") == get_str(new, "clusterIP") and get_list(
        old, "clusterIPs"
    ) == get_list(new, "clusterIPs")


def _node_ports(spec: dict[str, Any]) -> set[Any]:
    return {p.get("nodePort") for _, p in dicts(get_list(spec, "ports")) if p.get("nodePort")}


def prepare_service_update(old: dict[str, Any], new: dict[str, Any]) -> None:
    """The service registry's update hooks, on the new object before defaulting.

    Carries allocated values (cluster IPs, node ports, health-check node port) over when
    the client omitted them, keeps `clusterIP` and `clusterIPs` in step, adopts the old
    `ipFamilyPolicy` when none is given, and drops type-dependent fields the new type does
    not use (only when the client did not also change them).
    """
    old_spec = get_dict(old, "spec") or {}
    spec = ensure_dict(new, "spec")
    old_type = get_str(old_spec, "type") or "ClusterIP"
    new_type = get_str(spec, "type") or "ClusterIP"
    if old_type != "ExternalName" and new_type != "ExternalName":
        if not get_str(spec, "clusterIP") and get_str(old_spec, "clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not get_list(spec, "clusterIPs") and get_list(old_spec, "clusterIPs"):
            spec["clusterIPs"] = list(get_list(old_spec, "clusterIPs"))
    node_port_types = ("NodePort", "LoadBalancer")
    if old_type in node_port_types and new_type in node_port_types:
        old_ports = dicts(get_list(old_spec, "ports"))
        by_name = {get_str(p, "name"): p.get("nodePort") for _, p in old_ports}
        for _, port in dicts(get_list(spec, "ports")):
            if port.get("nodePort") in (None, 0) and by_name.get(get_str(port, "name")):
                port["nodePort"] = by_name[get_str(port, "name")]
    if (
        _needs_health_check(old_spec)
        and _needs_health_check(spec)
        and spec.get("healthCheckNodePort") in (None, 0)
    ):
        spec["healthCheckNodePort"] = old_spec.get("healthCheckNodePort")
    _normalize_cluster_ips_update(old_spec, spec)
    if spec.get("ipFamilyPolicy") is None and old_spec.get("ipFamilyPolicy") is not None:
        spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"]
    _drop_type_dependent_fields(old_spec, spec, old_type=old_type, new_type=new_type)


def _needs_health_check(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _normalize_cluster_ips_update(old_spec: dict[str, Any], spec: dict[str, Any]) -> None:
    old_ips, new_ips = get_list(old_spec, "clusterIPs"), get_list(spec, "clusterIPs")
    old_ip, new_ip = get_str(old_spec, "clusterIP"), get_str(spec, "clusterIP")
    if old_ips and not new_ips and old_ip == new_ip:
        spec["clusterIPs"] = list(old_ips)
        new_ips = spec["clusterIPs"]
    if old_ip != new_ip:
        if old_ip and not new_ip:
            if old_ips == new_ips:
                spec.pop("clusterIPs", None)
        elif old_ips == new_ips:
            spec["clusterIPs"] = [new_ip]


def _drop_type_dependent_fields(
    old_spec: dict[str, Any], spec: dict[str, Any], *, old_type: str, new_type: str
) -> None:
    if old_type != "ExternalName" and new_type == "ExternalName":
        if _same_ips(old_spec, spec):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if get_list(old_spec, "ipFamilies") == get_list(spec, "ipFamilies"):
            spec.pop("ipFamilies", None)
        if old_spec.get("ipFamilyPolicy") == spec.get("ipFamilyPolicy"):
            spec.pop("ipFamilyPolicy", None)
    node_port_types = ("NodePort", "LoadBalancer")
    if (
        old_type in node_port_types
        and new_type not in node_port_types
        and _node_ports(spec) <= _node_ports(old_spec)
    ):
        for _, port in dicts(get_list(spec, "ports")):
            port.pop("nodePort", None)
    # externalTrafficPolicy only applies to NodePort and LoadBalancer (needsExternalTrafficPolicy);
    # a switch to another type drops the (usually defaulted) value when the client kept it.
    if (
        old_type in node_port_types
        and new_type not in node_port_types
        and old_spec.get("externalTrafficPolicy") == spec.get("externalTrafficPolicy")
    ):
        spec.pop("externalTrafficPolicy", None)
    if (
        _needs_health_check(old_spec)
        and not _needs_health_check(spec)
        and old_spec.get("healthCheckNodePort") == spec.get("healthCheckNodePort")
    ):
        spec.pop("healthCheckNodePort", None)
    if old_type == "LoadBalancer" and new_type != "LoadBalancer":
        old_alloc = old_spec.get("allocateLoadBalancerNodePorts")
        if old_alloc is not None and spec.get("allocateLoadBalancerNodePorts") == old_alloc:
            spec.pop("allocateLoadBalancerNodePorts", None)
        if old_spec.get("loadBalancerClass") == spec.get("loadBalancerClass"):
            spec.pop("loadBalancerClass", None)


def _endpoints(obj: dict[str, Any]) -> None:
    for _, subset in dicts(get_list(obj, "subsets")):
        for _, port in dicts(get_list(subset, "ports")):
            set_default(port, "protocol", "TCP")


def _endpoint_slice(obj: dict[str, Any]) -> None:
    # `endpoints` and `ports` have no omitempty: an empty slice reads back as null.
    obj.setdefault("endpoints", None)
    obj.setdefault("ports", None)
    for _, endpoint in dicts(get_list(obj, "endpoints")):
        ensure_dict(endpoint, "conditions")
    for _, port in dicts(get_list(obj, "ports")):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


RBAC_GROUP = "rbac.authorization.k8s.io"


def _rbac_role(obj: dict[str, Any]) -> None:
    # `rules` has no omitempty: a role without rules reads back `rules: null`.
    obj.setdefault("rules", None)


def _rbac_binding(obj: dict[str, Any]) -> None:
    role_ref = get_dict(obj, "roleRef")
    if role_ref is not None and not role_ref.get("apiGroup"):
        role_ref["apiGroup"] = RBAC_GROUP
    for _, subject in dicts(get_list(obj, "subjects")):
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP


def _namespace(obj: dict[str, Any]) -> None:
    name = get_str(get_dict(obj, "metadata"), "name")
    if name:
        labels = ensure_dict(ensure_dict(obj, "metadata"), "labels")
        labels[NAMESPACE_NAME_LABEL] = name
    set_default(ensure_dict(obj, "status"), "phase", "Active")


def _secret(obj: dict[str, Any]) -> None:
    set_default(obj, "type", "Opaque")
    string_data = get_dict(obj, "stringData")
    if string_data is not None:
        # The v1 -> internal conversion merges stringData into data; it is never stored.
        data = ensure_dict(obj, "data")
        for name, value in string_data.items():
            if isinstance(value, str):
                data[name] = base64.b64encode(value.encode("utf-8")).decode("ascii")
    obj.pop("stringData", None)


def _node(obj: dict[str, Any]) -> None:
    status = get_dict(obj, "status")
    if status is None:
        return
    capacity = get_dict(status, "capacity")
    if status.get("allocatable") is None and capacity is not None:
        status["allocatable"] = dict(capacity)
    quantity.canonicalize_resource_list(status.get("capacity"))
    quantity.canonicalize_resource_list(status.get("allocatable"))


_DEFAULTERS = {
    ("", "Pod"): _pod,
    ("", "PodTemplate"): _pod_template,
    ("", "ReplicationController"): _replication_controller,
    ("", "Service"): _service,
    ("", "Endpoints"): _endpoints,
    ("", "Namespace"): _namespace,
    ("", "Secret"): _secret,
    ("", "Node"): _node,
    ("", "PersistentVolumeClaim"): _pvc,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("apps", "StatefulSet"): _stateful_set,
    ("apps", "DaemonSet"): _daemon_set,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    (RBAC_GROUP, "Role"): _rbac_role,
    (RBAC_GROUP, "ClusterRole"): _rbac_role,
    (RBAC_GROUP, "RoleBinding"): _rbac_binding,
    (RBAC_GROUP, "ClusterRoleBinding"): _rbac_binding,
}


def apply_defaults(group: str, kind: str, obj: dict[str, Any]) -> None:
    """Default `obj` (a raw object of `group`/`kind`) in place, as kube-apiserver does."""
    defaulter = _DEFAULTERS.get((group, kind))
    if defaulter is not None and isinstance(obj, dict):
        defaulter(obj)
