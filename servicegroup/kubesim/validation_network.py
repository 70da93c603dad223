"""Service, Endpoints and EndpointSlice validation (core/v1 and discovery.k8s.io/v1).

Owns `validate_service` / `service_update` (ports, selector, session affinity, type,
cluster IPs and IP families, traffic policies, and the update rule that a cluster IP may
not change once set), `validate_endpoints`, `validate_endpoint_slice` and IP-address
checks (`ip_errors`, sloppy parsing as `netutils.ParseIPSloppy`).

Invariants:
- Runs after `defaults.prepare_service_update`/`apply_defaults` and cluster-IP
  allocation, as upstream validates after its registry hooks; `healthCheckNodePort` of a
  LoadBalancer with `externalTrafficPolicy: Local` must be allocated before validating.
- Topology annotations (`topologyKeys`) and load-balancer source ranges are not validated.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from servicegroup.kubesim import names
from servicegroup.kubesim.fielderrors import (
    Cause,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_many,
)
from servicegroup.kubesim.objpath import child, dicts, get_dict, get_int, get_list, get_str, index
from servicegroup.kubesim.validation_container import PROTOCOLS, validate_port_num_or_name
from servicegroup.kubesim.validation_meta import (
    IMMUTABLE,
    semantic_equal,
    validate_label_name,
    validate_labels,
)

CLUSTER_IP_NONE = "None"
KUBELET_PORT = 10250
MAX_CLIENT_IP_TIMEOUT = 86400
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
IP_ERROR = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 20000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip_sloppy(text: str) -> IPAddress | None:
    """`netutils.ParseIPSloppy`: Go's IP parser, leading zeros in IPv4 octets allowed."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    octets = text.split(".")
    if len(octets) == 4 and all(o.isdigit() and len(o) <= 3 and int(o) <= 255 for o in octets):
        return ipaddress.IPv4Address(".".join(str(int(o)) for o in octets))
    return None


def ip_errors(text: str, field: str) -> list[Cause]:
    return [] if parse_ip_sloppy(text) is not None else [invalid(field, text, IP_ERROR)]


def non_special_ip_errors(text: str, field: str) -> list[Cause]:
    """`ValidateNonSpecialIP` / `ValidateEndpointIP`."""
    address = parse_ip_sloppy(text)
    if address is None:
        return [invalid(field, text, "must be a valid IP address")]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    causes: list[Cause] = []
    if address.is_unspecified:
        causes.append(invalid(field, text, f"may not be unspecified ({text})"))
    if address.is_loopback:
        causes.append(
            invalid(field, text, "may not be in the loopback range (127.0.0.0/8, ::1/128)")
        )
    if address.is_link_local:
        causes.append(
            invalid(field, text, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        )
    if _link_local_multicast(address):
        causes.append(
            invalid(
                field,
                text,
                "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            )
        )
    return causes


def _link_local_multicast(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        return address in ipaddress.IPv4Network("224.0.0.0/24")
    packed = address.packed
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


def _is_headless(spec: dict[str, Any]) -> bool:
    ips = get_list(spec, "clusterIPs")
    return len(ips) == 1 and ips[0] == CLUSTER_IP_NONE


def _externally_accessible(spec: dict[str, Any]) -> bool:
    service_type = get_str(spec, "type")
    return service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(get_list(spec, "externalIPs"))
    )


def _needs_health_check(spec: dict[str, Any]) -> bool:
    return (
        get_str(spec, "type") == "LoadBalancer"
        and get_str(spec, "externalTrafficPolicy") == "Local"
    )


def _validate_service_port(
    port: dict[str, Any], path: str, *, require_name: bool, seen: set[str]
) -> list[Cause]:
    causes: list[Cause] = []
    name = get_str(port, "name")
    if require_name and not name:
        causes.append(required(child(path, "name")))
    elif name:
        causes += [invalid(child(path, "name"), name, m) for m in names.dns1123_label_errors(name)]
        if name in seen:
            causes.append(duplicate(child(path, "name"), name))
        else:
            seen.add(name)
    number = get_int(port, "port") or 0
    causes += [invalid(child(path, "port"), number, m) for m in names.port_number_errors(number)]
    protocol = get_str(port, "protocol")
    if not protocol:
        causes.append(required(child(path, "protocol")))
    elif protocol not in PROTOCOLS:
        causes.append(not_supported(child(path, "protocol"), protocol, PROTOCOLS))
    causes += validate_port_num_or_name(port.get("targetPort"), child(path, "targetPort"))
    app_protocol = port.get("appProtocol")
    if isinstance(app_protocol, str):
        causes += validate_label_name(app_protocol, child(path, "appProtocol"))
    return causes


def _validate_type_specific(spec: dict[str, Any]) -> list[Cause]:
    service_type = get_str(spec, "type")
    causes: list[Cause] = []
    if service_type == "LoadBalancer":
        for i, port in dicts(get_list(spec, "ports")):
            if get_int(port, "port") == KUBELET_PORT:
                causes.append(
                    invalid(
                        index("spec.ports", i),
                        KUBELET_PORT,
                        f"may not expose port {KUBELET_PORT} externally since it is used by "
                        "kubelet",
                    )
                )
    if service_type in ("LoadBalancer", "NodePort") and _is_headless(spec):
        causes.append(
            invalid(
                "spec.clusterIPs[0]",
                CLUSTER_IP_NONE,
                f"may not be set to 'None' for {service_type} services",
            )
        )
    if service_type == "ExternalName":
        for field in ("clusterIPs", "ipFamilies"):
            if get_list(spec, field):
                causes.append(
                    forbidden(child("spec", field), "may not be set for ExternalName services")
                )
        if spec.get("ipFamilyPolicy") is not None:
            causes.append(
                forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
            )
        cname = get_str(spec, "externalName").removesuffix(".")
        if cname:
            causes += [
                invalid("spec.externalName", cname, m)
                for m in names.dns1123_subdomain_errors(cname)
            ]
        else:
            causes.append(required("spec.externalName"))
    return causes


def _validate_session_affinity(spec: dict[str, Any]) -> list[Cause]:
    affinity = get_str(spec, "sessionAffinity")
    if not affinity:
        return [required("spec.sessionAffinity")]
    if affinity not in ("ClientIP", "None"):
        return [not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None"))]
    config = spec.get("sessionAffinityConfig")
    if affinity == "None":
        if config is not None:
            return [
                forbidden(
                    "spec.sessionAffinityConfig", "must not be set when session affinity is None"
                )
            ]
        return []
    detail = "when session affinity type is ClientIP"
    path = "spec.sessionAffinityConfig"
    if not isinstance(config, dict):
        return [required(path, detail)]
    client_ip = get_dict(config, "clientIP")
    if client_ip is None:
        return [required(child(path, "clientIP"), detail)]
    timeout = get_int(client_ip, "timeoutSeconds")
    timeout_path = child(path, "clientIP", "timeoutSeconds")
    if timeout is None:
        return [required(timeout_path, detail)]
    if not 0 < timeout <= MAX_CLIENT_IP_TIMEOUT:
        return [
            invalid(
                timeout_path,
                timeout,
                f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}",
            )
        ]
    return []


def _validate_cluster_ips(spec: dict[str, Any]) -> list[Cause]:
    """`ValidateServiceClusterIPsRelatedFields`."""
    if get_str(spec, "type") == "ExternalName":
        return []
    causes: list[Cause] = []
    cluster_ip, cluster_ips = get_str(spec, "clusterIP"), get_list(spec, "clusterIPs")
    if cluster_ip:
        if not cluster_ips:
            causes.append(required("spec.clusterIPs"))
        elif cluster_ips[0] != cluster_ip:
            causes.append(
                invalid("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`")
            )
    elif cluster_ips:
        causes.append(
            invalid(
                "spec.clusterIPs", cluster_ips, "must be empty when `clusterIP` is not specified"
            )
        )
    seen: set[Any] = set()
    for i, family in enumerate(get_list(spec, "ipFamilies")):
        if family not in ("IPv4", "IPv6"):
            causes.append(not_supported(index("spec.ipFamilies", i), family, ("IPv4", "IPv6")))
        if family in seen:
            causes.append(duplicate(index("spec.ipFamilies", i), family))
        seen.add(family)
    policies = ("PreferDualStack", "RequireDualStack", "SingleStack")
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in policies:
        causes.append(not_supported("spec.ipFamilyPolicy", policy, policies))
    invalid_ips = False
    for i, ip in enumerate(cluster_ips):
        if i == 0 and ip == CLUSTER_IP_NONE:
            if len(cluster_ips) > 1:
                invalid_ips = True
                causes.append(
                    invalid(
                        "spec.clusterIPs", cluster_ips, "'None' must be the first and only value"
                    )
                )
            continue
        errors = ip_errors(ip if isinstance(ip, str) else "", index("spec.clusterIPs", i))
        invalid_ips = invalid_ips or bool(errors)
        causes += errors
    if len(cluster_ips) > 2:
        causes.append(invalid("spec.clusterIPs", cluster_ips, "may only hold up to 2 values"))
    if invalid_ips:
        return causes
    if len(cluster_ips) > 1:
        parsed = [parse_ip_sloppy(str(ip)) for ip in cluster_ips]
        versions = {address.version for address in parsed if address is not None}
        if len(versions) != len(cluster_ips):
            causes.append(
                invalid(
                    "spec.clusterIPs",
                    cluster_ips,
                    "may specify no more than one IP for each IP family",
                )
            )
    families = get_list(spec, "ipFamilies")
    if not _is_headless(spec):
        for i, ip in enumerate(cluster_ips[: len(families)]):
            is_v6 = ":" in str(ip)
            if families[i] == "IPv4" and is_v6:
                causes.append(
                    invalid(
                        index("spec.clusterIPs", i),
                        ip,
                        f"expected an IPv4 value as indicated by `ipFamilies[{i}]`",
                    )
                )
            if families[i] == "IPv6" and not is_v6:
                causes.append(
                    invalid(
                        index("spec.clusterIPs", i),
                        ip,
                        f"expected an IPv6 value as indicated by `ipFamilies[{i}]`",
                    )
                )
    return causes


def _validate_port_uniqueness(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    service_type = get_str(spec, "type")
    ports = dicts(get_list(spec, "ports"))
    if service_type == "ClusterIP":
        causes += [
            forbidden(
                child(index("spec.ports", i), "nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            )
            for i, port in ports
            if get_int(port, "nodePort")
        ]
    node_ports: set[tuple[str, int]] = set()
    for i, port in ports:
        node_port = get_int(port, "nodePort") or 0
        if not node_port:
            continue
        entry = (get_str(port, "protocol"), node_port)
        if entry in node_ports:
            causes.append(duplicate(child(index("spec.ports", i), "nodePort"), node_port))
        node_ports.add(entry)
    seen: set[tuple[str, int]] = set()
    for i, port in ports:
        entry = (get_str(port, "protocol"), get_int(port, "port") or 0)
        if entry in seen:
            # The bad value is a ServicePort holding only protocol and port, in Go field order.
            shown: dict[str, Any] = {"protocol": entry[0]} if entry[0] else {}
            shown |= {"port": entry[1], "targetPort": 0}
            causes.append(duplicate(index("spec.ports", i), shown))
        seen.add(entry)
    return causes


def _validate_traffic_policies(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    service_type = get_str(spec, "type")
    allocate = spec.get("allocateLoadBalancerNodePorts")
    if allocate is not None and service_type != "LoadBalancer":
        causes.append(
            forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    if service_type == "LoadBalancer" and allocate is None:
        causes.append(required("allocateLoadBalancerNodePorts"))
    external = get_str(spec, "externalTrafficPolicy")
    if not _externally_accessible(spec):
        if external:
            causes.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    external,
                    "may only be set for externally-accessible services",
                )
            )
    elif not external:
        causes.append(required("spec.externalTrafficPolicy"))
    elif external not in ("Cluster", "Local"):
        causes.append(not_supported("spec.externalTrafficPolicy", external, ("Cluster", "Local")))
    health = get_int(spec, "healthCheckNodePort") or 0
    if not _needs_health_check(spec):
        if health:
            causes.append(
                invalid(
                    "spec.healthCheckNodePort",
                    health,
                    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` "
                    "is 'Local'",
                )
            )
    elif not health:
        causes.append(required("spec.healthCheckNodePort"))
    else:
        causes += [
            invalid("spec.healthCheckNodePort", health, m) for m in names.port_number_errors(health)
        ]
    internal = spec.get("internalTrafficPolicy")
    if internal is None and service_type in ("NodePort", "LoadBalancer", "ClusterIP"):
        causes.append(required("spec.internalTrafficPolicy"))
    if internal is not None and internal not in ("Cluster", "Local"):
        causes.append(not_supported("spec.internalTrafficPolicy", internal, ("Cluster", "Local")))
    return causes


def validate_service(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateService` without its ObjectMeta part."""
    spec = get_dict(obj, "spec") or {}
    causes: list[Cause] = []
    ports = dicts(get_list(spec, "ports"))
    if not ports and not _is_headless(spec) and get_str(spec, "type") != "ExternalName":
        causes.append(required("spec.ports"))
    causes += _validate_type_specific(spec)
    seen: set[str] = set()
    for i, port in ports:
        causes += _validate_service_port(
            port, index("spec.ports", i), require_name=len(ports) > 1, seen=seen
        )
    if spec.get("selector") is not None:
        causes += validate_labels(spec.get("selector"), "spec.selector")
    causes += _validate_session_affinity(spec)
    causes += _validate_cluster_ips(spec)
    for i, ip in enumerate(get_list(spec, "externalIPs")):
        path = index("spec.externalIPs", i)
        text = ip if isinstance(ip, str) else ""
        causes += ip_errors(text, path) or non_special_ip_errors(text, path)
    service_type = get_str(spec, "type")
    if not service_type:
        causes.append(required("spec.type"))
    elif service_type not in SERVICE_TYPES:
        causes.append(not_supported("spec.type", service_type, SERVICE_TYPES))
    causes += _validate_port_uniqueness(spec)
    causes += _validate_traffic_policies(spec)
    return causes


def service_update_first(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """The update-only checks upstream runs before re-validating the whole Service."""
    new_spec, old_spec = get_dict(new, "spec") or {}, get_dict(old, "spec") or {}
    causes = _upgrade_downgrade_cluster_ips(new_spec, old_spec)
    if (
        _needs_health_check(old_spec)
        and _needs_health_check(new_spec)
        and get_int(new_spec, "healthCheckNodePort") != get_int(old_spec, "healthCheckNodePort")
    ):
        causes.append(forbidden("spec.healthCheckNodePort", IMMUTABLE))
    return causes


def _upgrade_downgrade_cluster_ips(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[Cause]:
    if "ExternalName" in (get_str(spec, "type"), get_str(old_spec, "type")):
        return []
    if _is_headless(spec) and _is_headless(old_spec):
        return []
    new_ips, old_ips = get_list(spec, "clusterIPs"), get_list(old_spec, "clusterIPs")
    message = "may not change once set"
    if len(old_ips) == len(new_ips):
        return [
            invalid(index("spec.clusterIPs", i), new_ips, message)
            for i, ip in enumerate(old_ips)
            if ip != new_ips[i]
        ]
    causes: list[Cause] = []
    if len(old_ips) > len(new_ips) and not new_ips:
        causes.append(
            invalid(index("spec.clusterIPs", 0), new_ips, "primary clusterIP can not be unset")
        )
    if old_ips and new_ips and new_ips[0] != old_ips[0]:
        causes.append(invalid(index("spec.clusterIPs", 0), new_ips, message))
    return causes


def _validate_endpoint_address(address: dict[str, Any], path: str) -> list[Cause]:
    ip = get_str(address, "ip")
    causes = ip_errors(ip, child(path, "ip"))
    hostname = get_str(address, "hostname")
    if hostname:
        causes += [
            invalid(child(path, "hostname"), hostname, m)
            for m in names.dns1123_label_errors(hostname)
        ]
    node_name = address.get("nodeName")
    if isinstance(node_name, str):
        causes += [
            invalid(child(path, "nodeName"), node_name, m)
            for m in names.dns1123_subdomain_errors(node_name)
        ]
    return causes + non_special_ip_errors(ip, child(path, "ip"))


def validate_endpoints(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in dicts(get_list(obj, "subsets")):
        path = index("subsets", i)
        addresses, not_ready = get_list(subset, "addresses"), get_list(subset, "notReadyAddresses")
        if not addresses and not not_ready:
            causes.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for field, items in (("addresses", addresses), ("notReadyAddresses", not_ready)):
            for j, address in dicts(items):
                causes += _validate_endpoint_address(address, index(child(path, field), j))
        ports = dicts(get_list(subset, "ports"))
        for j, port in ports:
            causes += _validate_endpoint_port(port, index(child(path, "ports"), j), len(ports) > 1)
    return causes


def _validate_endpoint_port(port: dict[str, Any], path: str, require_name: bool) -> list[Cause]:
    causes: list[Cause] = []
    name = get_str(port, "name")
    if require_name and not name:
        causes.append(required(child(path, "name")))
    elif name:
        causes += [invalid(child(path, "name"), name, m) for m in names.dns1123_label_errors(name)]
    number = get_int(port, "port") or 0
    causes += [invalid(child(path, "port"), number, m) for m in names.port_number_errors(number)]
    protocol = get_str(port, "protocol")
    if not protocol:
        causes.append(required(child(path, "protocol")))
    elif protocol not in PROTOCOLS:
        causes.append(not_supported(child(path, "protocol"), protocol, PROTOCOLS))
    app_protocol = port.get("appProtocol")
    if isinstance(app_protocol, str):
        causes += validate_label_name(app_protocol, child(path, "appProtocol"))
    return causes


def _slice_address_errors(address: Any, address_type: str, path: str) -> list[Cause]:
    text = address if isinstance(address, str) else ""
    parsed = parse_ip_sloppy(text)
    if address_type == "IPv4":
        if parsed is None or parsed.version != 4:
            return [invalid(path, text, "must be a valid IPv4 address")]
        return non_special_ip_errors(text, path)
    if address_type == "IPv6":
        if parsed is None or parsed.version != 6:
            return [invalid(path, text, "must be a valid IPv6 address")]
        return non_special_ip_errors(text, path)
    if address_type == "FQDN":
        return _fqdn_errors(text, path)
    return []


def _fqdn_errors(name: str, path: str) -> list[Cause]:
    if not name:
        return [required(path)]
    name = name.removesuffix(".")
    errors = names.dns1123_subdomain_errors(name)
    if errors:
        return [invalid(path, name, ",".join(errors))]
    if len(name.split(".")) < 2:
        return [
            invalid(path, name, "should be a domain with at least two segments separated by dots")
        ]
    for label in name.split("."):
        label_errors = names.dns1123_label_errors(label)
        if label_errors:
            return [invalid(path, label, ",".join(label_errors))]
    return []


def validate_endpoint_slice(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    address_type = get_str(obj, "addressType")
    if not address_type:
        causes.append(required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        causes.append(not_supported("addressType", address_type, ADDRESS_TYPES))
    endpoints = get_list(obj, "endpoints")
    if len(endpoints) > MAX_ENDPOINTS:
        causes.append(too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
    else:
        for i, endpoint in dicts(endpoints):
            causes += _validate_slice_endpoint(endpoint, index("endpoints", i), address_type)
    ports = get_list(obj, "ports")
    if len(ports) > MAX_PORTS:
        return [*causes, too_many("ports", len(ports), MAX_PORTS)]
    seen: set[str] = set()
    for i, port in dicts(ports):
        path = index("ports", i)
        name = get_str(port, "name")
        if name:
            causes += [
                invalid(child(path, "name"), name, m) for m in names.dns1123_label_errors(name)
            ]
        if name in seen:
            causes.append(duplicate(child(path, "name"), name))
        seen.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            causes.append(required(child(path, "protocol")))
        elif protocol not in PROTOCOLS:
            causes.append(not_supported(child(path, "protocol"), protocol, PROTOCOLS))
        app_protocol = port.get("appProtocol")
        if isinstance(app_protocol, str):
            causes += validate_label_name(app_protocol, child(path, "appProtocol"))
    return causes


def _validate_slice_endpoint(endpoint: dict[str, Any], path: str, address_type: str) -> list[Cause]:
    causes: list[Cause] = []
    addresses = get_list(endpoint, "addresses")
    addresses_path = child(path, "addresses")
    if not addresses:
        causes.append(required(addresses_path, "must contain at least 1 address"))
    elif len(addresses) > MAX_ADDRESSES:
        causes.append(too_many(addresses_path, len(addresses), MAX_ADDRESSES))
    for i, address in enumerate(addresses):
        causes += _slice_address_errors(address, address_type, index(addresses_path, i))
    node_name = endpoint.get("nodeName")
    if isinstance(node_name, str):
        causes += [
            invalid(child(path, "nodeName"), node_name, m)
            for m in names.dns1123_subdomain_errors(node_name)
        ]
    hostname = endpoint.get("hostname")
    if isinstance(hostname, str):
        causes += [
            invalid(child(path, "hostname"), hostname, m)
            for m in names.dns1123_label_errors(hostname)
        ]
    return causes


def endpoint_slice_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    if semantic_equal(new.get("addressType"), old.get("addressType")):
        return []
    return [invalid("addressType", new.get("addressType"), IMMUTABLE)]
