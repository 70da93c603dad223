"""The e2e suite's cluster: `RealCluster`, a `CtlCluster` (ctl_scenarios) on a real cluster.

`real_cluster(kubeconfig)` opens the cluster SERVICEGROUP_E2E_KUBECONFIG points at and
prepares what one test needs, undoing it afterwards:
- the grid CRDs, created when absent (never changed or removed: other tests may use them);
- a namespace of its own, `sg-e2e-<random>` (deleted afterwards, with everything in it);
- a NodeUnit key of its own, `e2e.servicegroup.io/unit-<random>`, set on up to five
  schedulable nodes (Ready, not cordoned, no NoSchedule/NoExecute taint): node i gets
  zone-(i mod 3), so five nodes give kubesim's shape (zone-0 and zone-1 with two nodes,
  zone-2 with one) and fewer give fewer or smaller units (scenarios that need more skip).
  Every node labelled is unlabelled afterwards.
Controllers run in-process with the kubeconfig's credentials, watching only the test's
namespace; their Lease lives there too.

Test-side requests go through kubernetes_asyncio (User-Agent `servicegroup-e2e-tests`),
not through the client under test. There is no request accounting on a real cluster:
`writes()` is the controllers' own count of the write requests they sent. Nodes are never
created or deleted. `SERVICEGROUP_E2E_TIME_SCALE` (default 10) stretches every timeout the
scenarios give (they are sized for kubesim). The cluster must be able to pull the upstream
examples' images (superedge/echoserver:2.2 and 2.3, Docker Hub) and must not run another
servicegroup controller that watches the test namespaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
from ctl_scenarios.cluster import TABLE, ZONES, CtlCluster, Obj, skip
from kubernetes_asyncio import client, config

from servicegroup.api.crds import crd_manifests
from servicegroup.kube.config import ClientConfig, load_config
from servicegroup.kube.resources import ALL, CRDS, EVENTS_V1, NAMESPACES, NODES, ResourceRef

USER_AGENT = "servicegroup-e2e-tests/1.0"
MAX_NODES = 5
TIME_SCALE = float(os.environ.get("SERVICEGROUP_E2E_TIME_SCALE", "10"))
_REFS: dict[str, ResourceRef] = {ref.plural: ref for ref in ALL if ref is not EVENTS_V1}
_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
_KINDS = {ref.kind: ref for ref in ALL if ref is not EVENTS_V1}


class RealCluster(CtlCluster):
    """A real cluster; see the module docstring."""

    has_request_accounting = False
    can_add_nodes = False
    has_workloads = True
    lenient_crds = False
    poll_interval = 0.25

    def __init__(
        self,
        *,
        api: client.ApiClient,
        config: ClientConfig,
        namespace: str,
        key: str,
        node_units: dict[str, str],
    ) -> None:
        super().__init__(
            namespace=namespace, key=key, node_units=node_units, lease_namespace=namespace
        )
        self.api = api
        self.config = config
        self.time_scale = TIME_SCALE
        self.labelled: set[str] = set()
        self.namespaces: list[str] = []

    def client_config(self) -> ClientConfig:
        return self.config

    def controller_defaults(self) -> dict[str, Any]:
        return {"namespaces": (self.namespace,), "leader_elect_namespace": self.namespace}

    # ---- HTTP ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> tuple[int, Any]:
        """(status, parsed JSON body); never raises on an error status."""
        headers = {"Accept": accept}
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

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.request(method, path, **kwargs)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {body}"
        return body

    def _path(self, resource: str, name: str | None = None, namespace: str | None = None) -> str:
        ref = _REFS[resource]
        ns = (namespace or self.namespace) if ref.namespaced else None
        return ref.object_path(name, ns) if name else ref.collection_path(ns)

    # ---- API access ------------------------------------------------------------------

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj | None:
        status, body = await self.request("GET", self._path(resource, name, namespace))
        if status == 404:
            return None
        assert status == 200, f"GET {resource}/{name} -> {status}: {body}"
        return body  # type: ignore[no-any-return]

    async def items(
        self, resource: str, *, label_selector: str = "", namespace: str | None = None
    ) -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        body = await self.call("GET", self._path(resource, None, namespace), query=query)
        return list(body.get("items") or [])

    def _create_path(self, obj: Obj, resource: str | None) -> str:
        ref = _REFS[resource] if resource else _KINDS[obj["kind"]]
        namespace = (obj.get("metadata") or {}).get("namespace")
        return self._path(ref.plural, None, namespace)

    async def create(self, obj: Obj, resource: str | None = None) -> Obj:
        return await self.call("POST", self._create_path(obj, resource), body=obj)  # type: ignore[no-any-return]

    async def try_create(self, obj: Obj) -> tuple[int, str]:
        status, body = await self.request("POST", self._create_path(obj, None), body=obj)
        return status, ((body or {}).get("reason") or "") if status >= 300 else ""

    async def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        manager: str = "kubectl-edit",
        patch_type: str = "merge",
    ) -> Obj:
        return await self.call(  # type: ignore[no-any-return]
            "PATCH",
            self._path(resource, name),
            body=patch,
            query=[("fieldManager", manager)],
            content_type=_PATCH_TYPES[patch_type],
        )

    async def delete(self, resource: str, name: str, *, namespace: str | None = None) -> None:
        await self.call("DELETE", self._path(resource, name, namespace))

    async def table(self, resource: str) -> Obj:
        return await self.call("GET", self._path(resource), accept=TABLE)  # type: ignore[no-any-return]

    async def create_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        await self.call("POST", NAMESPACES.collection_path(), body={"metadata": {"name": name}})
        self.namespaces.append(name)
        return name

    async def _label_node(self, node: str, value: str | None) -> None:
        if value is not None:
            self.labelled.add(node)
        await self.call(
            "PATCH",
            NODES.object_path(node),
            body={"metadata": {"labels": {self.key: value}}},
            query=[("fieldManager", "kubectl-label")],
            content_type=_PATCH_TYPES["merge"],
        )

    # ---- counting --------------------------------------------------------------------

    def writes(self) -> int:
        return sum(running.write_requests() for running in self.started)

    # ---- setup and cleanup -----------------------------------------------------------

    async def ensure_crds(self) -> None:
        """Create the grid CRDs when absent, then wait until they are served."""
        names = []
        for crd in crd_manifests():
            name = crd["metadata"]["name"]
            names.append(name)
            status, body = await self.request("GET", CRDS.object_path(name))
            if status == 404:
                print(f"e2e: creating CRD {name}")
                await self.call("POST", CRDS.collection_path(), body=crd)
            else:
                assert status == 200, f"GET CRD {name} -> {status}: {body}"

        async def established() -> bool:
            for name in names:
                crd = await self.get("customresourcedefinitions", name)
                conditions = ((crd or {}).get("status") or {}).get("conditions") or ()
                if not any(
                    c.get("type") == "Established" and c.get("status") == "True" for c in conditions
                ):
                    return False
            return True

        await self.wait_for(established, what="grid CRDs established", timeout=6)
        for plural in ("deploymentgrids", "statefulsetgrids", "servicegrids"):
            await self.wait_for(
                lambda p=plural: self._served(p), what=f"{plural} served", timeout=6
            )

    async def _served(self, plural: str) -> bool:
        status, _ = await self.request("GET", self._path(plural))
        return status == 200

    async def cleanup(self) -> None:
        """Stop the controllers, delete the namespaces, unlabel every node we labelled."""
        try:
            await self.stop_all()
        finally:
            for name in self.namespaces:
                await self.request("DELETE", NAMESPACES.object_path(name))
            for node in sorted(self.labelled):
                status, body = await self.request(
                    "PATCH",
                    NODES.object_path(node),
                    body={"metadata": {"labels": {self.key: None}}},
                    content_type=_PATCH_TYPES["merge"],
                )
                if status not in (200, 404):
                    print(f"e2e: could not unlabel node {node} ({self.key}): {status} {body}")


def schedulable_nodes(nodes: list[Obj]) -> list[str]:
    """Nodes a plain pod can land on: Ready, not cordoned, no NoSchedule/NoExecute taint."""
    names: list[str] = []
    for node in nodes:
        spec = node.get("spec") or {}
        if spec.get("unschedulable"):
            continue
        if any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or ()):
            continue
        conditions = (node.get("status") or {}).get("conditions") or ()
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            continue
        names.append(node["metadata"]["name"])
    return sorted(names)


@contextlib.asynccontextmanager
async def real_cluster(kubeconfig: str) -> AsyncIterator[RealCluster]:
    """The cluster of `kubeconfig`, prepared for one test (module docstring), then tidied."""
    configuration = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    try:
        controller_config = await load_config(kubeconfig=kubeconfig)
        cluster = RealCluster(
            api=api,
            config=controller_config,
            namespace=f"sg-e2e-{secrets.token_hex(4)}",
            key=f"e2e.servicegroup.io/unit-{secrets.token_hex(3)}",
            node_units={},
        )
        found = await cluster.call("GET", NODES.collection_path())
        nodes = schedulable_nodes(found["items"])[:MAX_NODES]
        if not nodes:
            skip("the e2e cluster has no schedulable node")
        try:
            await cluster.ensure_crds()
            await cluster.call(
                "POST", NAMESPACES.collection_path(), body={"metadata": {"name": cluster.namespace}}
            )
            cluster.namespaces.append(cluster.namespace)
            for index, node in enumerate(nodes):
                await cluster.relabel(node, ZONES[index % len(ZONES)])
            cluster.zones = tuple(sorted(cluster.units()))
            print(
                f"e2e: namespace {cluster.namespace}, key {cluster.key}, units "
                + ", ".join(f"{u}={cluster.nodes_of(u)}" for u in cluster.zones)
                + "; no request accounting here: exact per-resource request counts are"
                " checked on kubesim only"
            )
            yield cluster
        finally:
            await cluster.cleanup()
    finally:
        await api.close()
