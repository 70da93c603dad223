"""Builders of the raw objects the DNS daemon reads, shaped as the API server returns them."""

from __future__ import annotations

from typing import Any

from servicegroup.grid.labels import GRID_SELECTOR, GRID_UNIQ_KEY, NODEUNIT
from servicegroup.grid.naming import child_name

NS = "default"


def owner(kind: str, name: str, uid: str, api_version: str = "superedge.io/v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def ssg(name: str, *, key: str = "zone", ns: str = NS, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "StatefulSetGrid",
        "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-ssg-{ns}-{name}"},
        "spec": {"gridUniqKey": key},
    }


def sg(name: str, *, key: str = "zone", ns: str = NS, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "ServiceGrid",
        "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-sg-{ns}-{name}"},
        "spec": {"gridUniqKey": key},
    }


def service(grid: dict[str, Any]) -> dict[str, Any]:
    meta = grid["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{meta['name']}-svc",
            "namespace": meta["namespace"],
            "uid": f"uid-svc-{meta['name']}",
            "labels": {GRID_SELECTOR: meta["name"], GRID_UNIQ_KEY: grid["spec"]["gridUniqKey"]},
            "ownerReferences": [owner("ServiceGrid", meta["name"], meta["uid"])],
        },
        "spec": {"clusterIP": "None"},
    }


def sts(
    grid: dict[str, Any], unit: str, *, service_name: str, replicas: int | None = 3
) -> dict[str, Any]:
    meta = grid["metadata"]
    name = child_name(meta["name"], unit, kind="StatefulSet")
    spec: dict[str, Any] = {"serviceName": service_name}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "uid": f"uid-sts-{name}",
            "labels": {
                GRID_SELECTOR: meta["name"],
                GRID_UNIQ_KEY: grid["spec"]["gridUniqKey"],
                NODEUNIT: unit,
            },
            "ownerReferences": [owner("StatefulSetGrid", meta["name"], meta["uid"])],
        },
        "spec": spec,
    }


def pod(
    statefulset: dict[str, Any],
    ordinal: int,
    ip: str | None,
    *,
    ready: bool = True,
    phase: str = "Running",
    ips: list[str] | None = None,
) -> dict[str, Any]:
    meta = statefulset["metadata"]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip is not None:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": address} for address in (ips or [ip])]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{ordinal}",
            "namespace": meta["namespace"],
            "uid": f"uid-pod-{meta['name']}-{ordinal}",
            "labels": {"statefulset.kubernetes.io/pod-name": f"{meta['name']}-{ordinal}"},
            "ownerReferences": [
                owner("StatefulSet", meta["name"], meta["uid"], api_version="apps/v1")
            ],
        },
        "status": status,
    }


def by_key(*objects: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`namespace/name` -> object, as an informer store keys them."""
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objects}
