"""Server-side printing: raw objects -> a `meta.k8s.io/v1` Table, as kube-apiserver renders it.

kubectl get asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever columns
the server sends (priority 0 by default, all with `-o wide`). This module owns the column
definitions and cell values of kube-apiserver's printers (pkg/printers/internalversion) for
the built-in kinds kubesim serves, the apiextensions table convertor for custom resources
(NAME + additionalPrinterColumns, evaluated with `jsonpath`), the default convertor (NAME,
CREATED AT) for everything else, and apimachinery's `HumanDuration` for ages.

Invariants: the server always prints "wide" (every column, kubectl hides priority > 0);
rows follow the order of `objects`; objects are never mutated; times are judged against the
injected `now`, never the wall clock; a cell the printer cannot compute is `None` (JSON null),
exactly where the apiserver would put nil.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from servicegroup.kubesim import jsonpath

__all__ = [
    "TABLE_API_VERSION",
    "human_duration",
    "timestamp_since",
    "to_table",
]

TABLE_API_VERSION = "meta.k8s.io/v1"

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."

# (name, type, priority, description); format is "name" for the NAME column only.
_ColumnSpec = tuple[str, str, int, str]

_NAME: _ColumnSpec = ("Name", "string", 0, _NAME_DOC)
_AGE: _ColumnSpec = ("Age", "string", 0, _CREATED_DOC)

# The RBAC printers describe `roleRef` with the v1beta1 text, for both binding kinds.
_BINDING_COLUMNS: tuple[_ColumnSpec, ...] = (
    _NAME,
    ("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error."),  # noqa: E501
    _AGE,
    ("Users", "string", 1, "Users in the roleBinding"),
    ("Groups", "string", 1, "Groups in the roleBinding"),
    ("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
)  # fmt: skip

_COLUMNS: dict[str, tuple[_ColumnSpec, ...]] = {
    "Pod": (
        _NAME,
        ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
        ("Status", "string", 0, "The aggregate status of the containers in this pod."),
        (
            "Restarts",
            "string",
            0,
            "The number of times the containers in this pod have been restarted and when the "
            "last container in this pod has restarted.",
        ),
        _AGE,
        ("IP", "string", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),  # noqa: E501
        ("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
        ("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),  # noqa: E501
        ("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),  # noqa: E501
    ),
    "Deployment": (
        _NAME,
        ("Ready", "string", 0, "Number of the pod with ready state"),
        ("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),  # noqa: E501
        ("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),  # noqa: E501
        _AGE,
        ("Containers", "string", 1, _CONTAINERS_DOC),
        ("Images", "string", 1, _IMAGES_DOC),
        ("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),  # noqa: E501
    ),
    "ReplicaSet": (
        _NAME,
        ("Desired", "integer", 0, "Replicas is the number of desired replicas."),
        ("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
        ("Ready", "integer", 0, "The number of ready replicas for this replica set."),
        _AGE,
        ("Containers", "string", 1, _CONTAINERS_DOC),
        ("Images", "string", 1, _IMAGES_DOC),
        ("Selector", "string", 1, "Selector is a label query over pods that should match the replica count."),  # noqa: E501
    ),
    "StatefulSet": (
        _NAME,
        ("Ready", "string", 0, "Number of the pod with ready state"),
        _AGE,
        ("Containers", "string", 1, _CONTAINERS_DOC),
        ("Images", "string", 1, _IMAGES_DOC),
    ),
    "DaemonSet": (
        _NAME,
        ("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),  # noqa: E501
        ("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),  # noqa: E501
        ("Ready", "integer", 0, "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),  # noqa: E501
        ("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),  # noqa: E501
        ("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),  # noqa: E501
        ("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"),  # noqa: E501
        _AGE,
        ("Containers", "string", 1, _CONTAINERS_DOC),
        ("Images", "string", 1, _IMAGES_DOC),
        ("Selector", "string", 1, "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),  # noqa: E501
    ),
    "ServiceAccount": (
        _NAME,
        ("Secrets", "string", 0, 'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The "kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret'),  # noqa: E501
        _AGE,
    ),
    "Role": (_NAME, ("Created At", "date", 0, _CREATED_DOC)),
    "ClusterRole": (_NAME, ("Created At", "date", 0, _CREATED_DOC)),
    "RoleBinding": _BINDING_COLUMNS,
    "ClusterRoleBinding": _BINDING_COLUMNS,
    "Service": (
        _NAME,
        ("Type", "string", 0, "type determines how the Service is exposed."),
        ("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),  # noqa: E501
        ("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),  # noqa: E501
        ("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
        _AGE,
        ("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),  # noqa: E501
    ),
    "Node": (
        _NAME,
        ("Status", "string", 0, "The status of the node"),
        ("Roles", "string", 0, "The roles of the node"),
        _AGE,
        ("Version", "string", 0, "Kubelet Version reported by the node."),
        ("Internal-IP", "string", 1, "List of addresses reachable to the node."),
        ("External-IP", "string", 1, "List of addresses reachable to the node."),
        ("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),  # noqa: E501
        ("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),  # noqa: E501
        ("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),  # noqa: E501
    ),
    "Namespace": (_NAME, ("Status", "string", 0, "The status of the namespace"), _AGE),
    "Endpoints": (
        _NAME,
        ("Endpoints", "string", 0, "The set of all endpoints is the union of all subsets."),
        _AGE,
    ),
    "EndpointSlice": (
        _NAME,
        ("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice."),  # noqa: E501
        ("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),  # noqa: E501
        ("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
        _AGE,
    ),
    "Event": (
        ("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),  # noqa: E501
        ("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future"),  # noqa: E501
        ("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),  # noqa: E501
        ("Object", "string", 0, "The object that this event is about."),
        ("Subobject", "string", 1, "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go-field access statement."),  # noqa: E501
        ("Source", "string", 1, "The component reporting this event. Should be a short machine understandable string."),  # noqa: E501
        ("Message", "string", 0, "A human-readable description of the status of this operation."),
        ("First Seen", "string", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),  # noqa: E501
        ("Count", "string", 1, "The number of times this event has occurred."),
        ("Name", "string", 1, _NAME_DOC),
    ),
    "ConfigMap": (
        _NAME,
        ("Data", "string", 0, "Data contains the configuration data."),
        _AGE,
    ),
    "Secret": (
        _NAME,
        ("Type", "string", 0, "Used to facilitate programmatic handling of secret data."),
        ("Data", "string", 0, "Data contains the secret data."),
        _AGE,
    ),
    "Lease": (
        _NAME,
        ("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."),  # noqa: E501
        _AGE,
    ),
    "ControllerRevision": (
        _NAME,
        ("Controller", "string", 0, "Controller of the object"),
        ("Revision", "string", 0, "Revision indicates the revision of the state represented by Data."),  # noqa: E501
        _AGE,
    ),
}  # fmt: skip

# Kinds whose printer lives in kube-apiserver for exactly this group (Event has two groups).
_GROUPS: dict[str, frozenset[str]] = {
    "Pod": frozenset({""}),
    "Service": frozenset({""}),
    "Node": frozenset({""}),
    "Namespace": frozenset({""}),
    "Endpoints": frozenset({""}),
    "ConfigMap": frozenset({""}),
    "Secret": frozenset({""}),
    "Event": frozenset({"", "events.k8s.io"}),
    "Deployment": frozenset({"apps"}),
    "ReplicaSet": frozenset({"apps"}),
    "StatefulSet": frozenset({"apps"}),
    "DaemonSet": frozenset({"apps"}),
    "ControllerRevision": frozenset({"apps"}),
    "ServiceAccount": frozenset({""}),
    "Role": frozenset({"rbac.authorization.k8s.io"}),
    "ClusterRole": frozenset({"rbac.authorization.k8s.io"}),
    "RoleBinding": frozenset({"rbac.authorization.k8s.io"}),
    "ClusterRoleBinding": frozenset({"rbac.authorization.k8s.io"}),
    "EndpointSlice": frozenset({"discovery.k8s.io"}),
    "Lease": frozenset({"coordination.k8s.io"}),
}

_DEFAULT_COLUMNS: tuple[dict[str, Any], ...] = (
    {"name": "Name", "type": "string", "format": "name", "description": _NAME_DOC, "priority": 0},
    {
        "name": "Created At",
        "type": "date",
        "format": "",
        "description": _CREATED_DOC,
        "priority": 0,
    },
)


def to_table(
    *,
    group: str,
    kind: str,
    objects: list[dict[str, Any]],
    list_meta: dict[str, Any],
    columns: list[dict[str, Any]] | None,
    include_object: str,
    now: datetime,
) -> dict[str, Any]:
    """Render `objects` as a meta.k8s.io/v1 Table.

    `columns` is None for built-in kinds and the served version's additionalPrinterColumns
    (possibly empty) for custom resources. `include_object` is the TableOptions value:
    "Metadata" (kubectl's default: a PartialObjectMetadata per row), "Object" or "None".
    `list_meta` (resourceVersion, continue, remainingItemCount) becomes the Table's metadata.
    """
    if columns is not None:
        definitions, row_fn = _custom_resource_printer(columns, now)
    elif kind in _COLUMNS and group in _GROUPS[kind]:
        definitions = [_definition(spec) for spec in _COLUMNS[kind]]
        row_fn = _bind(_ROW_PRINTERS[kind], now)
    else:
        definitions = [dict(column) for column in _DEFAULT_COLUMNS]
        row_fn = _default_row
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_fn(obj)}
        conditions = _row_conditions(kind, group, obj) if columns is None else None
        if conditions:
            row["conditions"] = conditions
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    metadata = {
        key: list_meta[key]
        for key in ("resourceVersion", "continue", "remainingItemCount")
        if list_meta.get(key) not in (None, "")
    }
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    }


def human_duration(delta: timedelta) -> str:
    """apimachinery's duration.HumanDuration: ~2-3 significant figures, e.g. 45s, 3m20s, 5d."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds = _trunc_div(micros, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def timestamp_since(timestamp: str | None, now: datetime) -> str:
    """translateTimestampSince: `<unknown>` for an unset time, else the HumanDuration age."""
    moment = _parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration(now - moment)


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division truncating toward zero, like Go's int(d.Seconds())."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year <= 1:
        return None  # Go's zero time
    return moment


def _definition(spec: _ColumnSpec) -> dict[str, Any]:
    name, kind, priority, description = spec
    return {
        "name": name,
        "type": kind,
        "format": "name" if spec is _NAME or (name == "Name" and kind == "string") else "",
        "description": description,
        "priority": priority,
    }


def _row_object(obj: dict[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": obj.get("metadata") or {},
    }


def _row_conditions(kind: str, group: str, obj: dict[str, Any]) -> list[dict[str, Any]] | None:
    if kind != "Pod" or group != "":
        return None
    phase = _get(obj, "status", "phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Failed",
                "message": "The pod failed.",
            }
        ]
    return None


def _default_row(obj: dict[str, Any]) -> list[Any]:
    created = _parse_time(_get(obj, "metadata", "creationTimestamp"))
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else None
    return [_name(obj), stamp or "0001-01-01T00:00:00Z"]


_RowFn = Callable[[dict[str, Any]], list[Any]]


def _bind(printer: Callable[[dict[str, Any], datetime], list[Any]], now: datetime) -> _RowFn:
    return lambda obj: printer(obj, now)


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The list at `value` with every non-object entry read as an empty object."""
    return [_dict(item) for item in _list(value)]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _name(obj: dict[str, Any]) -> str:
    return str(_get(obj, "metadata", "name") or "")


def _age(obj: dict[str, Any], now: datetime) -> str:
    return timestamp_since(_get(obj, "metadata", "creationTimestamp"), now)


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = [_dict(c) for c in _list(_get(template_spec, "containers"))]
    names = ",".join(str(c.get("name") or "") for c in containers)
    images = ",".join(str(c.get("image") or "") for c in containers)
    return names, images


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: sorted `k=v` pairs joined by commas, `<none>` when empty."""
    pairs = sorted(_dict(labels).items())
    return ",".join(f"{k}={v}" for k, v in pairs) if pairs else "<none>"


def selector_string(selector: Any) -> str | None:
    """metav1.LabelSelectorAsSelector(...).String(); None when the selector is invalid."""
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in sorted(_dict(selector.get("matchLabels")).items()):
        requirements.append((key, f"{key}={value}"))
    for expr in _dicts(selector.get("matchExpressions")):
        key = str(expr.get("key") or "")
        operator = expr.get("operator")
        values = sorted(str(v) for v in _list(expr.get("values")))
        if operator == "In" and values:
            requirements.append((key, f"{key} in ({','.join(values)})"))
        elif operator == "NotIn" and values:
            requirements.append((key, f"{key} notin ({','.join(values)})"))
        elif operator == "Exists" and not values:
            requirements.append((key, key))
        elif operator == "DoesNotExist" and not values:
            requirements.append((key, f"!{key}"))
        else:
            return None
    requirements.sort(key=lambda item: item[0])
    return ",".join(text for _, text in requirements)


def _format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: `<none>` for an empty selector, `<error>` for a bad one."""
    text = selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def _print_pod(pod: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(pod.get("spec"))
    status = _dict(pod.get("status"))
    restarts = 0
    restartable_restarts = 0
    total = len(_list(spec.get("containers")))
    ready = 0
    last_restart: datetime | None = None
    last_restartable_restart: datetime | None = None
    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or "") or phase
    for condition in _dicts(status.get("conditions")):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {str(_dict(c).get("name")): _dict(c) for c in _list(spec.get("initContainers"))}
    total += sum(1 for c in init_specs.values() if c.get("restartPolicy") == "Always")

    initializing = False
    init_statuses = [_dict(s) for s in _list(status.get("initContainerStatuses"))]
    for index, container in enumerate(init_statuses):
        restarts += _int(container.get("restartCount"))
        finished = _parse_time(_get(container, "lastState", "terminated", "finishedAt"))
        if finished and (last_restart is None or last_restart < finished):
            last_restart = finished
        restartable = (
            init_specs.get(str(container.get("name")), {}).get("restartPolicy") == "Always"
        )
        if restartable:
            restartable_restarts += _int(container.get("restartCount"))
            if finished and (
                last_restartable_restart is None or last_restartable_restart < finished
            ):
                last_restartable_restart = finished
        terminated = _get(container, "state", "terminated")
        waiting = _get(container, "state", "waiting")
        if isinstance(terminated, dict) and _int(terminated.get("exitCode")) == 0:
            continue
        if restartable and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            if not terminated.get("reason"):
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Init:Signal:{signal}"
                    if signal
                    else f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
                )
            else:
                reason = f"Init:{terminated['reason']}"
        elif (
            isinstance(waiting, dict)
            and waiting.get("reason")
            and waiting.get("reason") != "PodInitializing"
        ):
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(
        _dict(c).get("type") == "Initialized" and _dict(c).get("status") == "True"
        for c in _list(status.get("conditions"))
    )
    if not initializing or initialized:
        restarts = restartable_restarts
        last_restart = last_restartable_restart
        has_running = False
        for container in reversed([_dict(s) for s in _list(status.get("containerStatuses"))]):
            restarts += _int(container.get("restartCount"))
            finished = _parse_time(_get(container, "lastState", "terminated", "finishedAt"))
            if finished and (last_restart is None or last_restart < finished):
                last_restart = finished
            waiting = _get(container, "state", "waiting")
            terminated = _get(container, "state", "terminated")
            if isinstance(waiting, dict) and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(terminated, dict) and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif isinstance(terminated, dict):
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Signal:{signal}" if signal else f"ExitCode:{_int(terminated.get('exitCode'))}"
                )
            elif container.get("ready") is True and isinstance(
                _get(container, "state", "running"), dict
            ):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                _dict(c).get("type") == "Ready" and _dict(c).get("status") == "True"
                for c in _list(status.get("conditions"))
            )
            reason = "Running" if pod_ready else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Failed", "Succeeded"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = _list(status.get("podIPs"))
    pod_ip = str(_dict(pod_ips[0]).get("ip") or "") if pod_ips else ""
    gates = _list(spec.get("readinessGates"))
    readiness = "<none>"
    if gates:
        conditions = [_dict(c) for c in _list(status.get("conditions"))]
        true_count = 0
        for gate in gates:
            wanted = _dict(gate).get("conditionType")
            for condition in conditions:
                if condition.get("type") == wanted:
                    true_count += condition.get("status") == "True"
                    break
        readiness = f"{true_count}/{len(gates)}"
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _age(pod, now),
        pod_ip or "<none>",
        str(spec.get("nodeName") or "") or "<none>",
        str(status.get("nominatedNodeName") or "") or "<none>",
        readiness,
    ]


def _print_deployment(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    names, images = _containers(_get(spec, "template", "spec"))
    selector = selector_string(spec.get("selector"))
    return [
        _name(obj),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'))}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


def _print_replicaset(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    names, images = _containers(_get(spec, "template", "spec"))
    return [
        _name(obj),
        _int(spec.get("replicas")),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


def _print_statefulset(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    names, images = _containers(_get(spec, "template", "spec"))
    ready = _int(_get(obj, "status", "readyReplicas"))
    return [_name(obj), f"{ready}/{_int(spec.get('replicas'))}", _age(obj, now), names, images]


def _print_daemonset(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    template_spec = _get(spec, "template", "spec")
    names, images = _containers(template_spec)
    return [
        _name(obj),
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        format_labels(_get(template_spec, "nodeSelector")),
        _age(obj, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


def _print_serviceaccount(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), len(_list(obj.get("secrets"))), _age(obj, now)]


def _print_role(obj: dict[str, Any], now: datetime) -> list[Any]:
    # CreationTimestamp.UTC().Format(time.RFC3339); the zero time when unset.
    created = _parse_time(_get(obj, "metadata", "creationTimestamp"))
    m = created.astimezone(UTC) if created else datetime(1, 1, 1, tzinfo=UTC)
    stamp = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"
    return [_name(obj), stamp]


def _print_rolebinding(obj: dict[str, Any], now: datetime) -> list[Any]:
    role_ref = _dict(obj.get("roleRef"))
    users: list[str] = []
    groups: list[str] = []
    service_accounts: list[str] = []
    for subject in _dicts(obj.get("subjects")):
        kind, name = subject.get("kind"), str(subject.get("name") or "")
        if kind == "ServiceAccount":
            service_accounts.append(f"{subject.get('namespace') or ''}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return [
        _name(obj),
        f"{role_ref.get('kind') or ''}/{role_ref.get('name') or ''}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(service_accounts),
    ]


def _service_external_ip(spec: dict[str, Any], status: dict[str, Any]) -> str:
    external = [str(ip) for ip in _list(spec.get("externalIPs"))]
    kind = spec.get("type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = set()
        for entry in _dicts(_get(status, "loadBalancer", "ingress")):
            if entry.get("ip"):
                ingress.add(str(entry["ip"]))
            elif entry.get("hostname"):
                ingress.add(str(entry["hostname"]))
        lb_ips = ",".join(sorted(ingress))
        if external:
            return ",".join(([*lb_ips.split(",")] if lb_ips else []) + external)
        return lb_ips or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def _print_service(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    cluster_ips = _list(spec.get("clusterIPs"))
    ports = []
    for port in _dicts(spec.get("ports")):
        protocol = port.get("protocol") or ""
        if _int(port.get("nodePort")) > 0:
            ports.append(f"{_int(port.get('port'))}:{_int(port.get('nodePort'))}/{protocol}")
        else:
            ports.append(f"{_int(port.get('port'))}/{protocol}")
    return [
        _name(obj),
        str(spec.get("type") or ""),
        str(cluster_ips[0]) if cluster_ips else "<none>",
        _service_external_ip(spec, _dict(obj.get("status"))),
        ",".join(ports) or "<none>",
        _age(obj, now),
        format_labels(spec.get("selector")),
    ]


def _print_node(obj: dict[str, Any], now: datetime) -> list[Any]:
    status = _dict(obj.get("status"))
    states: list[str] = []
    for condition in _dicts(status.get("conditions")):
        if condition.get("type") == "Ready":
            states = ["Ready" if condition.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if _get(obj, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in _dict(_get(obj, "metadata", "labels")).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/") :]:
            roles.add(key[len("node-role.kubernetes.io/") :])
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    info = _dict(status.get("nodeInfo"))

    def address(kind: str) -> str:
        for entry in _list(status.get("addresses")):
            if _dict(entry).get("type") == kind:
                return str(_dict(entry).get("address") or "")
        return "<none>"

    return [
        _name(obj),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(obj, now),
        str(info.get("kubeletVersion") or ""),
        address("InternalIP"),
        address("ExternalIP"),
        str(info.get("osImage") or "") or "<unknown>",
        str(info.get("kernelVersion") or "") or "<unknown>",
        str(info.get("containerRuntimeVersion") or "") or "<unknown>",
    ]


def _print_namespace(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), str(_get(obj, "status", "phase") or ""), _age(obj, now)]


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _print_endpoints(obj: dict[str, Any], now: datetime) -> list[Any]:
    subsets = [_dict(s) for s in _list(obj.get("subsets"))]
    if not subsets:
        return [_name(obj), "<none>", _age(obj, now)]
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for subset in subsets:
        addresses = [str(_dict(a).get("ip") or "") for a in _list(subset.get("addresses"))]
        ports = [_dict(p) for p in _list(subset.get("ports"))]
        if not ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_join_host_port(ip, _int(port.get("port"))))
    text = ",".join(shown)
    if more:
        text = f"{text} + {count - limit} more..."
    return [_name(obj), text, _age(obj, now)]


def _list_with_more(shown: list[str], more: bool, count: int, limit: int) -> str:
    text = ",".join(shown)
    if more:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def _print_endpointslice(obj: dict[str, Any], now: datetime) -> list[Any]:
    limit = 3
    ports: list[str] = []
    more, count = False, 0
    for port in _dicts(obj.get("ports")):
        if len(ports) < limit:
            if isinstance(port.get("port"), int):
                ports.append(str(port["port"]))
            elif port.get("name") is not None:
                ports.append(str(port["name"]))
            else:
                ports.append("*")
        elif len(ports) == limit:
            more = True
        count += 1
    addresses: list[str] = []
    more_addresses, address_count = False, 0
    for endpoint in _list(obj.get("endpoints")):
        for address in _list(_dict(endpoint).get("addresses")):
            if len(addresses) < limit:
                addresses.append(str(address))
            elif len(addresses) == limit:
                more_addresses = True
            address_count += 1
    return [
        _name(obj),
        str(obj.get("addressType") or ""),
        _list_with_more(ports, more, count, limit),
        _list_with_more(addresses, more_addresses, address_count, limit),
        _age(obj, now),
    ]


def _event_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event seen through core/v1 field names (the internal type)."""
    if "regarding" not in obj and "note" not in obj and "deprecatedSource" not in obj:
        return obj
    return {
        "metadata": obj.get("metadata"),
        "involvedObject": obj.get("regarding"),
        "reason": obj.get("reason"),
        "message": obj.get("note"),
        "source": obj.get("deprecatedSource"),
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount"),
        "type": obj.get("type"),
        "eventTime": obj.get("eventTime"),
        "series": obj.get("series"),
        "reportingComponent": obj.get("reportingController"),
        "reportingInstance": obj.get("reportingInstance"),
    }


def _print_event(obj: dict[str, Any], now: datetime) -> list[Any]:
    event = _event_fields(obj)
    first = timestamp_since(event.get("firstTimestamp"), now)
    if _parse_time(event.get("firstTimestamp")) is None:
        first = timestamp_since(event.get("eventTime"), now)
    last = timestamp_since(event.get("lastTimestamp"), now)
    if _parse_time(event.get("lastTimestamp")) is None:
        last = first
    count = _int(event.get("count"))
    series = event.get("series")
    if isinstance(series, dict):
        last = timestamp_since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1
    involved = _dict(event.get("involvedObject"))
    target = str(involved.get("kind") or "").lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    source = _dict(event.get("source"))
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return [
        last,
        str(event.get("type") or ""),
        str(event.get("reason") or ""),
        target,
        str(involved.get("fieldPath") or ""),
        f"{component}, {host}" if host else str(component),
        str(event.get("message") or "").strip(),
        first,
        count,
        _name(obj),
    ]


def _print_configmap(obj: dict[str, Any], now: datetime) -> list[Any]:
    data = len(_dict(obj.get("data"))) + len(_dict(obj.get("binaryData")))
    return [_name(obj), data, _age(obj, now)]


def _print_secret(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), str(obj.get("type") or ""), len(_dict(obj.get("data"))), _age(obj, now)]


def _print_lease(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), str(_get(obj, "spec", "holderIdentity") or ""), _age(obj, now)]


def _print_controllerrevision(obj: dict[str, Any], now: datetime) -> list[Any]:
    controller = "<none>"
    for ref in _dicts(_get(obj, "metadata", "ownerReferences")):
        if ref.get("controller") is True:
            api_version = str(ref.get("apiVersion") or "")
            group = api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""
            kind = str(ref.get("kind") or "")
            group_kind = f"{kind}.{group}" if group else kind
            controller = (
                f"{group_kind.lower()}/{ref.get('name')}" if group_kind else str(ref.get("name"))
            )
            break
    return [_name(obj), controller, _int(obj.get("revision")), _age(obj, now)]


_ROW_PRINTERS: dict[str, Callable[[dict[str, Any], datetime], list[Any]]] = {
    "Pod": _print_pod,
    "Deployment": _print_deployment,
    "ReplicaSet": _print_replicaset,
    "StatefulSet": _print_statefulset,
    "DaemonSet": _print_daemonset,
    "ServiceAccount": _print_serviceaccount,
    "Role": _print_role,
    "ClusterRole": _print_role,
    "RoleBinding": _print_rolebinding,
    "ClusterRoleBinding": _print_rolebinding,
    "Service": _print_service,
    "Node": _print_node,
    "Namespace": _print_namespace,
    "Endpoints": _print_endpoints,
    "EndpointSlice": _print_endpointslice,
    "Event": _print_event,
    "ConfigMap": _print_configmap,
    "Secret": _print_secret,
    "Lease": _print_lease,
    "ControllerRevision": _print_controllerrevision,
}


def _custom_resource_printer(
    columns: list[dict[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], _RowFn]:
    """The apiextensions table convertor: NAME, then the printer columns (Age when none)."""
    if not columns:
        columns = [
            {
                "name": "Age",
                "type": "date",
                "description": _CREATED_DOC,
                "jsonPath": ".metadata.creationTimestamp",
            }
        ]
    try:
        paths = [jsonpath.parse(str(column.get("jsonPath") or "")) for column in columns]
    except jsonpath.JSONPathError:
        # kube-apiserver logs the bad printer specification and falls back to default printing.
        return [dict(column) for column in _DEFAULT_COLUMNS], _default_row
    definitions = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": _NAME_DOC,
            "priority": 0,
        }
    ]
    for column in columns:
        description = column.get("description") or (
            f"Custom resource definition column (in JSONPath format): {column.get('jsonPath')}"
        )
        definitions.append(
            {
                "name": column.get("name", ""),
                "type": column.get("type", ""),
                "format": column.get("format", ""),
                "description": description,
                "priority": _int(column.get("priority")),
            }
        )
    kinds = [str(column.get("type") or "") for column in columns]

    def row(obj: dict[str, Any]) -> list[Any]:
        cells: list[Any] = [_name(obj)]
        for path, kind in zip(paths, kinds, strict=True):
            results = path.find(obj)
            if not results:
                cells.append(None)
                continue
            # Only the first match is printed: the apiserver assumes a simple path.
            cells.append(_cell(kind, results[0], now))
        return cells

    return definitions, row


def _cell(kind: str, value: Any, now: datetime) -> Any:
    if value is None:
        return None
    if kind == "string":
        return _print_value(value)
    if kind == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return int(value)
        return None
    if kind == "number":
        if isinstance(value, bool):
            return None
        return float(value) if isinstance(value, int | float) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        if not isinstance(value, str):
            return None
        try:
            return timestamp_since(value, now)
        except ValueError:
            return "<invalid>"
    return None


def _print_value(value: Any) -> str:
    """client-go jsonpath PrintResults for one value: JSON for maps/lists, fmt %v otherwise."""
    if isinstance(value, dict | list):
        return go_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def go_float(value: float) -> str:
    """Go's fmt `%v` for a float64 (strconv 'g', shortest, exponent from 1e6 or below 1e-4)."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    point = len(text) + exponent  # position of the decimal point
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{prefix}{text}{'0' * (point - len(text))}"
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_json(value: Any) -> str:
    """encoding/json.Marshal: compact, sorted keys, HTML-escaped, integral floats without .0."""
    text = json.dumps(_json_ready(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value
