"""Server-side Tables: kube-apiserver's printer columns and cells, HumanDuration, CRD columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from servicegroup.kubesim.tables import go_float, human_duration, timestamp_since, to_table

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=5), **extra}


def table(group: str, kind: str, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return to_table(
        group=group,
        kind=kind,
        objects=[obj],
        list_meta=kw.pop("list_meta", {"resourceVersion": "7"}),
        columns=kw.pop("columns", None),
        include_object=kw.pop("include_object", "Metadata"),
        now=NOW,
    )


def header(result: dict[str, Any], *, wide: bool = False) -> list[str]:
    return [c["name"] for c in result["columnDefinitions"] if wide or c["priority"] == 0]


def cells(result: dict[str, Any]) -> list[Any]:
    return result["rows"][0]["cells"]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (-0.5, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (123, "2m3s"),
        (599, "9m59s"),
        (600, "10m"),
        (601, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60 + 30, "3h5m"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 3599, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (7 * 86400 + 23 * 3600, "7d23h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (735 * 86400, "2y5d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: float, expected: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == expected


def test_timestamp_since_handles_unset_and_zero_times() -> None:
    assert timestamp_since(None, NOW) == "<unknown>"
    assert timestamp_since("", NOW) == "<unknown>"
    assert timestamp_since("0001-01-01T00:00:00Z", NOW) == "<unknown>"
    assert timestamp_since(ago(seconds=30), NOW) == "30s"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3.0, "3"), (0.5, "0.5"), (123456.0, "123456"), (1e6, "1e+06"), (1.5e-5, "1.5e-05")],
)
def test_go_float_prints_like_fmt_v(value: float, expected: str) -> None:
    assert go_float(value) == expected


def test_table_envelope_metadata_and_partial_object() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm"), "data": {"a": "1"}}
    result = table("", "ConfigMap", obj, list_meta={"resourceVersion": "9", "continue": "tok"})
    assert result["kind"] == "Table"
    assert result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {"resourceVersion": "9", "continue": "tok"}
    row = result["rows"][0]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    definition = result["columnDefinitions"][0]
    assert set(definition) == {"name", "type", "format", "description", "priority"}
    assert definition["format"] == "name"
    assert "unique within a namespace" in definition["description"]


def test_include_object_variants() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm")}
    assert table("", "ConfigMap", obj, include_object="Object")["rows"][0]["object"] is obj
    assert "object" not in table("", "ConfigMap", obj, include_object="None")["rows"][0]


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": meta("web-0"),
        "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]},
        "status": status,
    }


def running(name: str, *, ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
        **extra,
    }


def test_pod_columns_and_running_cells() -> None:
    result = table(
        "",
        "Pod",
        pod(
            phase="Running",
            podIPs=[{"ip": "10.0.0.5"}],
            containerStatuses=[running("app"), running("sidecar")],
        ),
    )
    assert header(result) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert header(result, wide=True)[5:] == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    assert cells(result) == [
        "web-0",
        "2/2",
        "Running",
        "0",
        "5m",
        "10.0.0.5",
        "node-a",
        "<none>",
        "<none>",
    ]
    assert "conditions" not in result["rows"][0]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"phase": "Pending"}, "Pending"),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
            },
            "ContainerCreating",
        ),
        (
            {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 4,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    }
                ],
            },
            "CrashLoopBackOff",
        ),
        (
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    }
                ],
            },
            "Completed",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 137}},
                    }
                ],
            },
            "ExitCode:137",
        ),
        ({"phase": "Failed", "reason": "Evicted"}, "Evicted"),
    ],
)
def test_pod_status_column_like_kubectl(status: dict[str, Any], expected: str) -> None:
    assert cells(table("", "Pod", pod(**status)))[2] == expected


def test_terminating_pod_and_completed_condition() -> None:
    obj = pod(phase="Running", containerStatuses=[running("app")])
    obj["metadata"]["deletionTimestamp"] = ago(seconds=10)
    assert cells(table("", "Pod", obj))[2] == "Terminating"
    done = table("", "Pod", pod(phase="Succeeded"))
    assert done["rows"][0]["conditions"][0]["reason"] == "Succeeded"


def test_pod_restarts_show_last_restart_age() -> None:
    status = running(
        "app", restarts=3, lastState={"terminated": {"finishedAt": ago(minutes=2), "exitCode": 1}}
    )
    result = table("", "Pod", pod(phase="Running", containerStatuses=[status]))
    assert cells(result)[1] == "1/2"
    assert cells(result)[3] == "3 (2m ago)"


def test_pod_init_containers_status() -> None:
    obj = pod(
        phase="Pending",
        initContainerStatuses=[
            {"name": "init", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
        ],
    )
    obj["spec"]["initContainers"] = [{"name": "init"}]
    assert cells(table("", "Pod", obj))[2] == "Init:0/1"


def deployment() -> dict[str, Any]:
    return {
        "metadata": meta("web"),
        "spec": {
            "replicas": 2,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
            },
            "template": {
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1"},
                        {"name": "log", "image": "busybox"},
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }


def test_deployment_columns_and_cells() -> None:
    result = table("apps", "Deployment", deployment())
    assert header(result) == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert header(result, wide=True)[5:] == ["Containers", "Images", "Selector"]
    assert cells(result) == [
        "web",
        "2/2",
        2,
        2,
        "5m",
        "nginx,log",
        "nginx:1,busybox",
        "app=web,tier in (a,b)",
    ]


def test_replicaset_and_statefulset() -> None:
    rs = deployment()
    rs["status"] = {"replicas": 2, "readyReplicas": 1}
    result = table("apps", "ReplicaSet", rs)
    assert header(result) == ["Name", "Desired", "Current", "Ready", "Age"]
    assert cells(result)[:5] == ["web", 2, 2, 1, "5m"]
    assert cells(result)[-1] == "app=web,tier in (a,b)"
    sts = deployment()
    sts["status"] = {"readyReplicas": 1}
    result = table("apps", "StatefulSet", sts)
    assert header(result) == ["Name", "Ready", "Age"]
    assert cells(result) == ["web", "1/2", "5m", "nginx,log", "nginx:1,busybox"]


def test_service_ports_and_external_ip() -> None:
    svc = {
        "metadata": meta("svc"),
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30080},
                {"port": 53, "protocol": "UDP"},
            ],
            "selector": {"b": "2", "a": "1"},
        },
    }
    result = table("", "Service", svc)
    assert header(result) == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    assert cells(result) == [
        "svc",
        "NodePort",
        "10.96.0.10",
        "<none>",
        "80:30080/TCP,53/UDP",
        "5m",
        "a=1,b=2",
    ]
    headless = {"metadata": meta("h"), "spec": {"type": "ClusterIP", "clusterIPs": ["None"]}}
    assert cells(table("", "Service", headless))[2:5] == ["None", "<none>", "<none>"]
    lb = {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.0.0.1"]}}
    assert cells(table("", "Service", lb))[3] == "<pending>"


def test_node_columns() -> None:
    node = {
        "metadata": {
            "name": "edge-1",
            "creationTimestamp": ago(days=3),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian"},
        },
    }
    result = table("", "Node", node)
    assert header(result) == ["Name", "Status", "Roles", "Age", "Version"]
    assert cells(result) == [
        "edge-1",
        "NotReady,SchedulingDisabled",
        "control-plane,edge",
        "3d",
        "v1.32.0",
        "192.168.1.10",
        "<none>",
        "Debian",
        "<unknown>",
        "<unknown>",
    ]
    bare = {"metadata": {"name": "n", "creationTimestamp": ago(hours=1)}}
    assert cells(table("", "Node", bare))[1:3] == ["Unknown", "<none>"]


def test_namespace_configmap_secret_lease() -> None:
    ns = {"metadata": meta("prod"), "status": {"phase": "Active"}}
    assert header(table("", "Namespace", ns)) == ["Name", "Status", "Age"]
    assert cells(table("", "Namespace", ns)) == ["prod", "Active", "5m"]
    cm = {"metadata": meta("cm"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert header(table("", "ConfigMap", cm)) == ["Name", "Data", "Age"]
    assert cells(table("", "ConfigMap", cm)) == ["cm", 3, "5m"]
    secret = {"metadata": meta("s"), "type": "Opaque", "data": {"a": "MQ=="}}
    assert header(table("", "Secret", secret)) == ["Name", "Type", "Data", "Age"]
    assert cells(table("", "Secret", secret)) == ["s", "Opaque", 1, "5m"]
    lease = {"metadata": meta("servicegroup-controller"), "spec": {"holderIdentity": "pod-1"}}
    assert header(table("coordination.k8s.io", "Lease", lease)) == ["Name", "Holder", "Age"]
    assert cells(table("coordination.k8s.io", "Lease", lease)) == [
        "servicegroup-controller",
        "pod-1",
        "5m",
    ]


def test_endpoints_and_endpointslices() -> None:
    endpoints = {
        "metadata": meta("svc"),
        "subsets": [
            {
                "addresses": [
                    {"ip": "10.0.0.1"},
                    {"ip": "10.0.0.2"},
                    {"ip": "fd00::3"},
                    {"ip": "10.0.0.4"},
                ],
                "ports": [{"port": 8080}],
            }
        ],
    }
    result = table("", "Endpoints", endpoints)
    assert header(result) == ["Name", "Endpoints", "Age"]
    assert cells(result)[1] == "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more..."
    assert cells(table("", "Endpoints", {"metadata": meta("e")}))[1] == "<none>"
    slice_ = {
        "metadata": meta("svc-abc"),
        "addressType": "IPv4",
        "ports": [{"port": 8080, "name": "http"}, {"name": "metrics"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
    }
    result = table("discovery.k8s.io", "EndpointSlice", slice_)
    assert header(result) == ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert cells(result) == ["svc-abc", "IPv4", "8080,metrics,*", "10.0.0.1,10.0.0.2", "5m"]
    empty = {"metadata": meta("e"), "addressType": "IPv4"}
    assert cells(table("discovery.k8s.io", "EndpointSlice", empty))[2:4] == ["<unset>", "<unset>"]


def test_events_core_and_events_v1() -> None:
    core = {
        "metadata": meta("web.1"),
        "involvedObject": {"kind": "Deployment", "name": "web", "fieldPath": "spec"},
        "reason": "ScalingReplicaSet",
        "message": "Scaled up  \n",
        "type": "Normal",
        "firstTimestamp": ago(minutes=10),
        "lastTimestamp": ago(minutes=1),
        "count": 3,
        "source": {"component": "deployment-controller"},
    }
    result = table("", "Event", core)
    assert header(result) == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert cells(result) == [
        "60s",
        "Normal",
        "ScalingReplicaSet",
        "deployment/web",
        "spec",
        "deployment-controller",
        "Scaled up",
        "10m",
        3,
        "web.1",
    ]
    v1 = {
        "metadata": meta("grid.2"),
        "regarding": {"kind": "DeploymentGrid", "name": "demo"},
        "reason": "ChildCreated",
        "note": "created",
        "type": "Normal",
        "eventTime": ago(seconds=30),
        "reportingController": "servicegroup-controller",
        "reportingInstance": "pod-1",
    }
    assert cells(table("events.k8s.io", "Event", v1)) == [
        "30s",
        "Normal",
        "ChildCreated",
        "deploymentgrid/demo",
        "",
        "servicegroup-controller, pod-1",
        "created",
        "30s",
        1,
        "grid.2",
    ]


def test_controllerrevision_and_crd() -> None:
    revision = {
        "metadata": meta(
            "web-6d4f",
            ownerReferences=[
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}
            ],
        ),
        "revision": 2,
    }
    result = table("apps", "ControllerRevision", revision)
    assert header(result) == ["Name", "Controller", "Revision", "Age"]
    assert cells(result) == ["web-6d4f", "statefulset.apps/web", 2, "5m"]
    crd = {
        "metadata": {
            "name": "deploymentgrids.superedge.io",
            "creationTimestamp": "2024-04-30T10:00:00Z",
        }
    }
    result = table("apiextensions.k8s.io", "CustomResourceDefinition", crd)
    assert header(result) == ["Name", "Created At"]
    assert result["columnDefinitions"][1]["type"] == "date"
    assert cells(result) == ["deploymentgrids.superedge.io", "2024-04-30T10:00:00Z"]


def grid(**status: Any) -> dict[str, Any]:
    return {
        "metadata": meta("demo"),
        "spec": {"gridUniqKey": "zone", "list": [{"name": "a"}, {"name": "b"}], "weights": [0.5]},
        "status": {
            "conditions": [
                {"type": "Synced", "status": "True"},
                {"type": "Ready", "status": "False"},
            ],
            **status,
        },
    }


COLUMNS = [
    {"name": "Key", "type": "string", "jsonPath": ".spec.gridUniqKey"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "First", "type": "string", "jsonPath": ".spec.list[0].name", "priority": 1},
    {"name": "Names", "type": "string", "jsonPath": ".spec.list[*].name"},
    {"name": "Units", "type": "integer", "jsonPath": ".status.units"},
    {"name": "Weight", "type": "number", "jsonPath": ".spec.weights[0]"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Since", "type": "date", "jsonPath": ".status.since", "description": "When."},
    {"name": "List", "type": "string", "jsonPath": ".spec.list"},
]


def test_custom_resource_printer_columns() -> None:
    result = table(
        "superedge.io", "DeploymentGrid", grid(units=3.0, since=ago(hours=2)), columns=COLUMNS
    )
    names = [c["name"] for c in result["columnDefinitions"]]
    assert names == [
        "Name",
        "Key",
        "Ready",
        "First",
        "Names",
        "Units",
        "Weight",
        "Paused",
        "Since",
        "List",
    ]
    assert result["columnDefinitions"][3]["priority"] == 1
    assert result["columnDefinitions"][8]["description"] == "When."
    assert result["columnDefinitions"][1]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.gridUniqKey"
    )
    assert cells(result) == [
        "demo",
        "zone",
        "False",
        "a",
        "a",
        3,
        0.5,
        None,
        "120m",
        '[{"name":"a"},{"name":"b"}]',
    ]


def test_custom_resource_without_columns_gets_age() -> None:
    result = table("superedge.io", "DeploymentGrid", grid(), columns=[])
    assert header(result) == ["Name", "Age"]
    assert result["columnDefinitions"][1]["type"] == "date"
    assert cells(result) == ["demo", "5m"]


def test_custom_resource_date_column_invalid_and_bad_path_falls_back() -> None:
    columns = [{"name": "Since", "type": "date", "jsonPath": ".status.since"}]
    assert cells(table("x.io", "K", grid(since="yesterday"), columns=columns))[1] == "<invalid>"
    bad = [{"name": "Broken", "type": "string", "jsonPath": ".spec[unterminated"}]
    result = table("x.io", "K", grid(), columns=bad)
    assert header(result) == ["Name", "Created At"]


def test_unknown_builtin_kind_uses_default_convertor() -> None:
    result = table("batch", "Job", {"metadata": {"name": "j"}})
    assert header(result) == ["Name", "Created At"]
    assert cells(result) == ["j", "0001-01-01T00:00:00Z"]


def test_daemonset_columns_and_cells() -> None:
    ds = {
        "metadata": meta("agent"),
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "spec": {
                    "nodeSelector": {"zone": "a", "kubernetes.io/os": "linux"},
                    "containers": [{"name": "c", "image": "nginx"}, {"name": "d", "image": "x"}],
                }
            },
        },
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 2,
            "numberReady": 1,
            "updatedNumberScheduled": 2,
            "numberAvailable": 1,
        },
    }
    result = table("apps", "DaemonSet", ds)
    assert header(result) == [
        "Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age",
    ]  # fmt: skip
    assert header(result, wide=True)[-3:] == ["Containers", "Images", "Selector"]
    assert cells(result) == [
        "agent", 3, 2, 1, 2, 1, "kubernetes.io/os=linux,zone=a", "5m", "c,d", "nginx,x",
        "app=agent",
    ]  # fmt: skip
    empty = table("apps", "DaemonSet", {"metadata": meta("bare"), "spec": {}})
    assert cells(empty)[6] == "<none>"
    assert cells(empty)[-1] == "<none>"


def test_service_account_and_rbac_columns() -> None:
    sa = table("", "ServiceAccount", {"metadata": meta("bot"), "secrets": [{"name": "t"}]})
    assert header(sa) == ["Name", "Secrets", "Age"]
    assert cells(sa) == ["bot", 1, "5m"]
    role = table("rbac.authorization.k8s.io", "ClusterRole", {"metadata": meta("view")})
    assert [(c["name"], c["type"]) for c in role["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert cells(role) == ["view", ago(minutes=5)]
    binding = {
        "metadata": meta("b"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "User", "name": "bob"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "bot", "namespace": "ci"},
            {"kind": "ServiceAccount", "name": "orphan"},
        ],
    }
    result = table("rbac.authorization.k8s.io", "RoleBinding", binding)
    assert header(result) == ["Name", "Role", "Age"]
    assert header(result, wide=True)[3:] == ["Users", "Groups", "ServiceAccounts"]
    assert cells(result) == ["b", "ClusterRole/view", "5m", "alice, bob", "devs", "ci/bot, /orphan"]
    # The RBAC printers live in the rbac group only: elsewhere the default columns apply.
    other = table("example.com", "RoleBinding", {"metadata": meta("r")})
    assert header(other) == ["Name", "Created At"]
