"""What the daemon's caches keep, and which updates count as changes (transforms.py)."""

from __future__ import annotations

import copy
from typing import Any

from dnsbuild import pod, sg, ssg, sts

from servicegroup.dns.transforms import (
    change_handler,
    grid_transform,
    node_transform,
    pod_transform,
    statefulset_transform,
)


def full_pod() -> dict[str, Any]:
    p = pod(sts(ssg("web"), "zone-1", service_name="x-svc"), 0, "10.0.0.1")
    p["metadata"].update(
        resourceVersion="7",
        managedFields=[{"manager": "kubelet"}],
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
    )
    p["spec"] = {"containers": [{"name": "c", "image": "i"}], "nodeName": "node-1"}
    p["status"]["conditions"] += [
        {"type": "ContainersReady", "status": "True"},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t"},
    ]
    p["status"]["containerStatuses"] = [{"name": "c", "restartCount": 3}]
    return p


def test_pod_keeps_only_what_records_read() -> None:
    original = full_pod()
    kept = pod_transform(copy.deepcopy(original))
    assert kept == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-zone-1-0",
            "namespace": "default",
            "uid": "uid-pod-web-zone-1-0",
            "resourceVersion": "7",
            "ownerReferences": original["metadata"]["ownerReferences"],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "podIPs": [{"ip": "10.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    assert pod_transform({"metadata": {"name": "p"}}) == {"metadata": {"name": "p"}, "status": {}}


def test_other_kinds_keep_identity_and_the_fields_they_need() -> None:
    grid = ssg("web")
    grid["spec"]["template"] = {"replicas": 3}
    assert grid_transform(grid)["spec"] == {"gridUniqKey": "zone"}
    assert grid_transform(sg("net"))["metadata"]["uid"] == "uid-sg-default-net"
    node = {"metadata": {"name": "n", "labels": {"zone": "a"}}, "status": {"images": ["big"]}}
    assert node_transform(node) == {"metadata": {"name": "n", "labels": {"zone": "a"}}}
    statefulset = sts(ssg("web"), "zone-1", service_name="x-svc")
    statefulset["spec"]["template"] = {"spec": {"containers": []}}
    statefulset["status"] = {"readyReplicas": 3}
    kept = statefulset_transform(statefulset)
    assert kept["spec"] == {"serviceName": "x-svc", "replicas": 3}
    assert "status" not in kept


def test_only_real_changes_signal() -> None:
    calls: list[int] = []
    handler = change_handler(lambda: calls.append(1))
    assert handler.on_add is not None
    assert handler.on_update is not None
    assert handler.on_delete is not None
    old = pod_transform(full_pod())
    heartbeat = full_pod()
    heartbeat["metadata"]["resourceVersion"] = "8"
    heartbeat["status"]["containerStatuses"] = [{"name": "c", "restartCount": 4}]
    handler.on_update(old, pod_transform(heartbeat))
    assert calls == []
    new_ip = full_pod()
    new_ip["status"]["podIP"] = "10.0.0.2"
    handler.on_update(old, pod_transform(new_ip))
    handler.on_add(old, False)
    handler.on_delete(old)
    assert calls == [1, 1, 1]
