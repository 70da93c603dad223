"""Container validation (pkg/apis/core/validation): one container of a PodSpec.

Owns `validate_container_common` (name, image, termination message policy, ports, env,
envFrom, volume mounts, pull policy, resources, user/group ids), `validate_probe`,
`validate_lifecycle`, `validate_resources` (resource names, quantities, requests <= limits)
and `validate_port_num_or_name`.

Invariants:
- Runs on defaulted containers: a missing defaulted field reports `Required` as upstream.
- Requests-vs-limits errors are reported on the `requests` map path, with the request
  printed in canonical quantity form (`"1"`, not `"1000m"`), as upstream does.
- Environment variable names follow RelaxedEnvironmentVariableValidation (on by default):
  any printable ASCII character except `=`.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim import names, quantity
from servicegroup.kubesim.fielderrors import (
    Cause,
    duplicate,
    forbidden,
    invalid,
    not_found,
    not_supported,
    required,
)
from servicegroup.kubesim.objpath import (
    child,
    dicts,
    get_dict,
    get_int,
    get_list,
    get_str,
    index,
    key,
)
from servicegroup.kubesim.validation_meta import validate_label_name, validate_nonnegative

PROTOCOLS = ("SCTP", "TCP", "UDP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_STANDARD_RESOURCES = _STANDARD_CONTAINER_RESOURCES | frozenset(
    {
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "requests.storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "storage",
        "services.nodeports",
        "services.loadbalancers",
    }
)


def dns1123_label_causes(value: str, field: str) -> list[Cause]:
    return [invalid(field, value, msg) for msg in names.dns1123_label_errors(value)]


def _mask_trailing_dash(name: str) -> str:
    # NameIsDNSSubdomain(name, prefix=true): a trailing dash is fine before a generated suffix.
    return name[:-2] + "a" if name.endswith("-") else name


def validate_port_num_or_name(port: Any, field: str) -> list[Cause]:
    if isinstance(port, str):
        return [invalid(field, port, msg) for msg in names.port_name_errors(port)]
    number = port if isinstance(port, int) and not isinstance(port, bool) else 0
    return [invalid(field, number, msg) for msg in names.port_number_errors(number)]


def _validate_ports(ports: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, port in dicts(ports):
        port_path = index(path, i)
        name = get_str(port, "name")
        if name:
            errors = names.port_name_errors(name)
            if errors:
                causes += [invalid(child(port_path, "name"), name, msg) for msg in errors]
            elif name in seen:
                causes.append(duplicate(child(port_path, "name"), name))
            else:
                seen.add(name)
        container_port = get_int(port, "containerPort") or 0
        if container_port == 0:
            causes.append(required(child(port_path, "containerPort")))
        else:
            causes += [
                invalid(child(port_path, "containerPort"), container_port, msg)
                for msg in names.port_number_errors(container_port)
            ]
        host_port = get_int(port, "hostPort") or 0
        if host_port:
            causes += [
                invalid(child(port_path, "hostPort"), host_port, msg)
                for msg in names.port_number_errors(host_port)
            ]
        protocol = get_str(port, "protocol")
        if not protocol:
            causes.append(required(child(port_path, "protocol")))
        elif protocol not in PROTOCOLS:
            causes.append(not_supported(child(port_path, "protocol"), protocol, PROTOCOLS))
    return causes


def _env_name_errors(value: str) -> list[str]:
    # RelaxedEnvironmentVariableValidation is on by default: any printable ASCII but '='.
    if any(ord(c) > 0x7E or ord(c) < 0x20 or c == "=" for c in value):
        return [
            "a valid environment variable name must consist only of printable ASCII characters "
            "other than '='"
        ]
    return []


def _validate_key_selector(ref: dict[str, Any], path: str) -> list[Cause]:
    name = get_str(ref, "name")
    causes = [invalid(child(path, "name"), name, m) for m in names.dns1123_subdomain_errors(name)]
    ref_key = get_str(ref, "key")
    if not ref_key:
        causes.append(required(child(path, "key")))
    else:
        causes += [
            invalid(child(path, "key"), ref_key, m) for m in names.config_map_key_errors(ref_key)
        ]
    return causes


def _validate_field_ref(ref: dict[str, Any], path: str) -> list[Cause]:
    if not get_str(ref, "apiVersion"):
        return [required(child(path, "apiVersion"))]
    field_path = get_str(ref, "fieldPath")
    if not field_path:
        return [required(child(path, "fieldPath"))]
    for subscripted in ("metadata.labels", "metadata.annotations"):
        prefix = subscripted + "['"
        if field_path.startswith(prefix) and field_path.endswith("']"):
            label_key = field_path[len(prefix) : -2]
            if subscripted == "metadata.annotations":
                label_key = label_key.lower()
            return validate_label_name(label_key, path)
    if field_path not in ENV_FIELD_PATHS:
        return [not_supported(child(path, "fieldPath"), field_path, sorted(ENV_FIELD_PATHS))]
    return []


def _validate_env(env: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in dicts(env):
        var_path = index(path, i)
        name = get_str(var, "name")
        if not name:
            causes.append(required(child(var_path, "name")))
        else:
            causes += [invalid(child(var_path, "name"), name, m) for m in _env_name_errors(name)]
        value_from = get_dict(var, "valueFrom")
        if value_from is None:
            continue
        from_path = child(var_path, "valueFrom")
        sources = 0
        for source in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"):
            body = get_dict(value_from, source)
            if body is None:
                continue
            sources += 1
            if source == "fieldRef":
                causes += _validate_field_ref(body, child(from_path, source))
            elif source in ("configMapKeyRef", "secretKeyRef"):
                causes += _validate_key_selector(body, child(from_path, source))
        if sources == 0:
            causes.append(
                invalid(
                    from_path,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` "
                    "or `secretKeyRef`",
                )
            )
        elif get_str(var, "value"):
            causes.append(invalid(from_path, "", "may not be specified when `value` is not empty"))
        elif sources > 1:
            causes.append(
                invalid(from_path, "", "may not have more than one field specified at a time")
            )
    return causes


def _validate_env_from(env_from: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, source in dicts(env_from):
        source_path = index(path, i)
        prefix = get_str(source, "prefix")
        causes += [
            invalid(child(source_path, "prefix"), prefix, m) for m in _env_name_errors(prefix)
        ]
        count = 0
        for ref_name in ("configMapRef", "secretRef"):
            ref = get_dict(source, ref_name)
            if ref is None:
                continue
            count += 1
            name = get_str(ref, "name")
            if not name:
                causes.append(required(child(source_path, ref_name, "name")))
            else:
                masked = _mask_trailing_dash(name)
                causes += [
                    invalid(child(source_path, ref_name, "name"), name, m)
                    for m in names.dns1123_subdomain_errors(masked)
                ]
        if count == 0:
            causes.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    return causes


def _validate_mounts(mounts: list[Any], volumes: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    mount_points: set[str] = set()
    for i, mount in dicts(mounts):
        mount_path = index(path, i)
        name = get_str(mount, "name")
        if not name:
            causes.append(required(child(mount_path, "name")))
        if name not in volumes:
            causes.append(not_found(child(mount_path, "name"), name))
        target = get_str(mount, "mountPath")
        if not target:
            causes.append(required(child(mount_path, "mountPath")))
        if target in mount_points:
            causes.append(invalid(child(mount_path, "mountPath"), target, "must be unique"))
        mount_points.add(target)
    return causes


def _resource_name_causes(name: str, path: str) -> list[Cause]:
    errors = names.qualified_name_errors(name)
    if errors:
        return [invalid(path, name, msg) for msg in errors]
    causes: list[Cause] = []
    hugepages = name.startswith("hugepages-")
    if "/" not in name:
        if name not in _STANDARD_RESOURCES and not hugepages:
            causes.append(
                invalid(path, name, "must be a standard resource type or fully qualified")
            )
        if name not in _STANDARD_CONTAINER_RESOURCES and not hugepages:
            causes.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        causes.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return causes


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    return (
        not _is_native(name)
        and not name.startswith("requests.")
        and names.is_qualified_name("requests." + name)
    )


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not name.startswith("hugepages-")


def _parse_resource_list(
    values: Any, path: str, causes: list[Cause]
) -> dict[str, quantity.Quantity]:
    parsed: dict[str, quantity.Quantity] = {}
    if not isinstance(values, dict):
        return parsed
    for name, raw in values.items():
        name_path = key(path, str(name))
        causes += _resource_name_causes(str(name), name_path)
        try:
            value = quantity.round_up_milli(quantity.parse_quantity(raw))
        except ValueError:
            # Upstream rejects this while decoding (400); kubesim reports it here.
            causes.append(invalid(name_path, raw, quantity.PARSE_ERROR))
            continue
        if value.value < 0:
            causes.append(
                invalid(name_path, quantity.canonical(value), "must be greater than or equal to 0")
            )
        elif _is_extended(str(name)) and value.value.denominator != 1:
            causes.append(invalid(name_path, quantity.canonical(value), "must be an integer"))
        parsed[str(name)] = value
    return parsed


def validate_resources(resources: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    limits_path, requests_path = child(path, "limits"), child(path, "requests")
    limits = _parse_resource_list(get_dict(resources, "limits"), limits_path, causes)
    requests = _parse_resource_list(get_dict(resources, "requests"), requests_path, causes)
    for name, request in requests.items():
        limit = limits.get(name)
        shown = quantity.canonical(request)
        if limit is None:
            if not _overcommit_allowed(name):
                causes.append(
                    required(limits_path, "Limit must be set for non overcommitable resources")
                )
        elif not _overcommit_allowed(name) and request.value != limit.value:
            detail = f"must be equal to {name} limit of {quantity.canonical(limit)}"
            causes.append(invalid(requests_path, shown, detail))
        elif request.value > limit.value:
            detail = f"must be less than or equal to {name} limit of {quantity.canonical(limit)}"
            causes.append(invalid(requests_path, shown, detail))
    names_used = set(limits) | set(requests)
    if any(n.startswith("hugepages-") for n in names_used) and not names_used & {"cpu", "memory"}:
        causes.append(forbidden(path, "HugePages require cpu or memory"))
    return causes


def _validate_handler(handler: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    for kind in ("exec", "httpGet", "tcpSocket", "grpc", "sleep"):
        body = handler.get(kind)
        if body is None:
            continue
        if count:
            causes.append(forbidden(child(path, kind), "may not specify more than 1 handler type"))
            continue
        count += 1
        body = body if isinstance(body, dict) else {}
        body_path = child(path, kind)
        if kind == "exec" and not get_list(body, "command"):
            causes.append(required(child(body_path, "command")))
        elif kind == "httpGet":
            if not get_str(body, "path"):
                causes.append(required(child(body_path, "path")))
            causes += validate_port_num_or_name(body.get("port"), child(body_path, "port"))
            scheme = get_str(body, "scheme")
            if scheme not in ("HTTP", "HTTPS"):
                causes.append(not_supported(child(body_path, "scheme"), scheme, ("HTTP", "HTTPS")))
            for header in get_list(body, "httpHeaders"):
                header_name = get_str(header, "name")
                causes += [
                    invalid(child(body_path, "httpHeaders"), header_name, msg)
                    for msg in names.http_header_name_errors(header_name)
                ]
        elif kind in ("tcpSocket", "grpc"):
            causes += validate_port_num_or_name(body.get("port"), child(body_path, "port"))
    if count == 0:
        causes.append(required(path, "must specify a handler type"))
    return causes


def validate_probe(probe: Any, path: str, *, which: str) -> list[Cause]:
    if not isinstance(probe, dict):
        return []
    causes = _validate_handler(probe, path)
    for field in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        causes += validate_nonnegative(probe.get(field), child(path, field))
    grace = get_int(probe, "terminationGracePeriodSeconds")
    if grace is not None and grace <= 0:
        causes.append(
            invalid(child(path, "terminationGracePeriodSeconds"), grace, "must be greater than 0")
        )
    success = get_int(probe, "successThreshold")
    if which in ("livenessProbe", "startupProbe") and success is not None and success != 1:
        causes.append(invalid(child(path, "successThreshold"), success, "must be 1"))
    if which == "readinessProbe" and probe.get("terminationGracePeriodSeconds") is not None:
        causes.append(
            invalid(
                child(path, "terminationGracePeriodSeconds"),
                probe["terminationGracePeriodSeconds"],
                "must not be set for readinessProbes",
            )
        )
    return causes


def validate_lifecycle(lifecycle: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for hook in ("postStart", "preStop"):
        body = get_dict(lifecycle, hook)
        if body is not None:
            causes += _validate_handler(body, child(path, hook))
    return causes


def validate_container_common(
    container: dict[str, Any], volumes: set[str], path: str
) -> list[Cause]:
    causes: list[Cause] = []
    name = get_str(container, "name")
    if not name:
        causes.append(required(child(path, "name")))
    else:
        causes += dns1123_label_causes(name, child(path, "name"))
    if not get_str(container, "image"):
        causes.append(required(child(path, "image")))
    policy = get_str(container, "terminationMessagePolicy")
    if not policy:
        causes.append(required(child(path, "terminationMessagePolicy")))
    elif policy not in TERMINATION_MESSAGE_POLICIES:
        causes.append(
            not_supported(
                child(path, "terminationMessagePolicy"), policy, TERMINATION_MESSAGE_POLICIES
            )
        )
    causes += _validate_ports(get_list(container, "ports"), child(path, "ports"))
    causes += _validate_env(get_list(container, "env"), child(path, "env"))
    causes += _validate_env_from(get_list(container, "envFrom"), child(path, "envFrom"))
    causes += _validate_mounts(
        get_list(container, "volumeMounts"), volumes, child(path, "volumeMounts")
    )
    pull = get_str(container, "imagePullPolicy")
    if not pull:
        causes.append(required(child(path, "imagePullPolicy")))
    elif pull not in PULL_POLICIES:
        causes.append(not_supported(child(path, "imagePullPolicy"), pull, PULL_POLICIES))
    causes += validate_resources(container.get("resources"), child(path, "resources"))
    security = get_dict(container, "securityContext")
    for field in ("runAsUser", "runAsGroup"):
        causes += id_range_causes(security, field, child(path, "securityContext"))
    return causes


def id_range_causes(body: Any, field: str, path: str) -> list[Cause]:
    value = get_int(body, field)
    if value is not None and not 0 <= value <= 0xFFFFFFFF:
        return [invalid(child(path, field), value, names.inclusive_range_error(0, 0xFFFFFFFF))]
    return []
