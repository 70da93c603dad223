"""Shared helpers of the workload simulation tests.

Two kinds of environment:
- `Cluster`: an API server reached over HTTP only (kubesim with its workloads running, or
  the real cluster of SERVICEGROUP_E2E_KUBECONFIG), used by the scenarios that hold kubesim
  and a real cluster to the same assertions;
- `SimEnv`: an in-process kubesim for kubesim-only behaviour (node API, fake clock, exact
  write counts), read through the in-process client.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from kubernetes_asyncio import client

from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.workloads import Workloads

Obj = dict[str, Any]
T = TypeVar("T")

E2E_KUBECONFIG = os.environ.get("SERVICEGROUP_E2E_KUBECONFIG")
USER_AGENT = "servicegroup-workload-tests/1.0"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"


async def eventually(
    predicate: Callable[[], T | Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.01
) -> T:
    """Poll a sync or async predicate until it returns something truthy (or fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        last = value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


def deployment(
    name: str,
    *,
    replicas: int = 2,
    labels: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    strategy: Obj | None = None,
    image: str = PAUSE_IMAGE,
    ports: list[Obj] | None = None,
) -> Obj:
    labels = labels or {"app": name}
    pod_spec: Obj = {
        "containers": [{"name": "main", "image": image, **({"ports": ports} if ports else {})}],
        "terminationGracePeriodSeconds": 1,
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if strategy is not None:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def statefulset(
    name: str,
    *,
    replicas: int = 3,
    service: str,
    policy: str = "OrderedReady",
    image: str = PAUSE_IMAGE,
) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": service,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "main", "image": image}],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


def service(name: str, *, selector: dict[str, str], headless: bool = False, port: int = 80) -> Obj:
    spec: Obj = {
        "selector": selector,
        "ports": [{"name": "http", "port": port, "targetPort": port}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def condition(obj: Obj, type_: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return None


def pod_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


@dataclass
class Cluster:
    """An API server under test, reached over HTTP only."""

    api: client.ApiClient
    namespace: str
    nodes: list[str]
    label_key: str
    sim: KubeSim | None = None
    workloads: Workloads | None = None
    timeout: float = 15.0
    labelled: set[str] = field(default_factory=set)

    @property
    def is_sim(self) -> bool:
        return self.sim is not None

    def path(self, resource: str, name: str | None = None) -> str:
        """Namespaced collection or object path: `deployments`, `pods`, `endpointslices`..."""
        prefix = {
            "deployments": "/apis/apps/v1",
            "replicasets": "/apis/apps/v1",
            "statefulsets": "/apis/apps/v1",
            "controllerrevisions": "/apis/apps/v1",
            "endpointslices": "/apis/discovery.k8s.io/v1",
        }.get(resource, "/api/v1")
        path = f"{prefix}/namespaces/{self.namespace}/{resource}"
        return f"{path}/{name}" if name else path

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            response = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                _preload_content=False,
                auth_settings=["BearerToken"],
            )
        except client.ApiException as err:
            return err.status, orjson.loads(err.body) if err.body else None
        data = await response.read()
        return response.status, orjson.loads(data) if data else None

    async def call(self, method: str, path: str, **kwargs: Any) -> Obj:
        status, body = await self.request(method, path, **kwargs)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {body}"
        return body  # type: ignore[no-any-return]

    async def create(self, resource: str, body: Obj) -> Obj:
        return await self.call("POST", self.path(resource), body=body)

    async def get(self, resource: str, name: str) -> Obj | None:
        status, body = await self.request("GET", self.path(resource, name))
        if status == 404:
            return None
        assert status == 200, f"GET {resource}/{name} -> {status}: {body}"
        return body  # type: ignore[no-any-return]

    async def items(self, resource: str, *, selector: str | None = None) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else []
        body = await self.call("GET", self.path(resource), query=query)
        return list(body.get("items") or [])

    async def patch(self, resource: str, name: str, patch: Obj) -> Obj:
        return await self.call(
            "PATCH",
            self.path(resource, name),
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def delete(self, resource: str, name: str) -> Obj:
        return await self.call("DELETE", self.path(resource, name))

    async def label_node(self, node: str, value: str | None) -> None:
        await self.call(
            "PATCH",
            f"/api/v1/nodes/{node}",
            body={"metadata": {"labels": {self.label_key: value}}},
            content_type="application/merge-patch+json",
        )
        if value is None:
            self.labelled.discard(node)
        else:
            self.labelled.add(node)

    async def eventually(
        self, predicate: Callable[[], Any], *, timeout: float | None = None
    ) -> Any:
        return await eventually(predicate, timeout=timeout or self.timeout, interval=0.02)

    async def watch(
        self, resource: str, *, selector: str, opened: asyncio.Event | None = None
    ) -> AsyncIterator[Obj]:
        """Watch events of a namespaced resource from now on (one JSON line each).

        `opened` is set once the watch is established: nothing after that is missed.
        """
        listed = await self.call("GET", self.path(resource), query=[("labelSelector", selector)])
        response = await self.api.call_api(
            self.path(resource),
            "GET",
            query_params=[
                ("watch", "true"),
                ("labelSelector", selector),
                ("resourceVersion", listed["metadata"]["resourceVersion"]),
            ],
            header_params={"Accept": "application/json"},
            _preload_content=False,
            auth_settings=["BearerToken"],
        )
        if opened is not None:
            opened.set()
        try:
            while True:
                line = await response.content.readline()
                if not line:
                    return
                yield json.loads(line)
        finally:
            response.close()

    async def cleanup(self) -> None:
        for node in list(self.labelled):
            await self.label_node(node, None)
        await self.request("DELETE", f"/api/v1/namespaces/{self.namespace}")


def schedulable_nodes(nodes: list[Obj]) -> list[str]:
    """Nodes a plain pod can land on: Ready, not cordoned, no NoSchedule/NoExecute taint."""
    names: list[str] = []
    for node in nodes:
        spec = node.get("spec") or {}
        if spec.get("unschedulable"):
            continue
        if any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or ()):
            continue
        ready = condition(node, "Ready")
        if ready is None or ready.get("status") != "True":
            continue
        names.append(node["metadata"]["name"])
    return sorted(names)


def fresh_label_key() -> str:
    return f"wl-test.servicegroup.dev/unit-{secrets.token_hex(3)}"


@dataclass
class SimEnv:
    """An in-process kubesim with its workloads, for kubesim-only behaviour."""

    sim: KubeSim
    workloads: Workloads
    client: LocalClient
    namespace: str = "default"

    def pods(self, selector: str = "") -> list[Obj]:
        return self.client.list("pods", namespace=self.namespace, label_selector=selector)

    def get(self, resource: str, name: str) -> Obj | None:
        rt = self.client.resource(resource)
        found = self.sim.engine.store.get(self.sim.engine.storage_key(rt), self.namespace, name)
        return found

    def create(self, resource: str, body: Obj) -> Obj:
        return self.client.create(resource, body, namespace=self.namespace)

    async def eventually(self, predicate: Callable[[], Any], *, timeout: float = 10.0) -> Any:
        return await eventually(predicate, timeout=timeout)
