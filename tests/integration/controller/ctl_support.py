"""The controller suite's cluster on kubesim: `SimCluster`, a `CtlCluster` (ctl_scenarios).

One KubeSim (workload simulation on: scheduler, kubelets, Deployment / StatefulSet /
EndpointSlice controllers) with five nodes in three NodeUnits of label `zone`, the grid CRDs
installed, and any number of in-process controllers talking to it over HTTP, exactly as
`servicegroup controller` does. Test-side reads and writes go through kubesim's in-process
client, so they never count as requests: kubesim's request accounting then shows the
controllers' requests alone (User-Agent product `servicegroup`). Nodes can be added and
deleted; the namespace is `default` and the key `zone`, so the upstream examples are used
unchanged.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ctl_scenarios.cluster import TABLE, CtlCluster, Obj

from servicegroup.api.crds import crd_manifests
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.accounting import WRITE_VERBS
from servicegroup.kubesim.app import KubeSim, NodeSpec
from servicegroup.kubesim.errors import ApiError as SimApiError
from servicegroup.kubesim.local import LocalClient

NS = "default"
PRODUCT = "servicegroup"
LEASES = "leases.coordination.k8s.io"
# Three NodeUnits of label `zone`; zone-2 has a single node.
NODES: dict[str, str] = {
    "node-0a": "zone-0",
    "node-0b": "zone-0",
    "node-1a": "zone-1",
    "node-1b": "zone-1",
    "node-2a": "zone-2",
}
_CONSTRAINTS = ("x-kubernetes-validations", "pattern", "minLength", "maxLength")
_GRID_PLURALS = ("deploymentgrids", "statefulsetgrids", "servicegrids")
_RESOURCES = {
    "DeploymentGrid": "deploymentgrids",
    "StatefulSetGrid": "statefulsetgrids",
    "ServiceGrid": "servicegrids",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "Service": "services",
    "Namespace": "namespaces",
    "Node": "nodes",
}


def lenient_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD without CEL rules and string constraints, as upstream's CRD is.

    Lets bad input reach the controller, whose own validation must then catch it (SPEC B8:
    a cluster without CEL, or grids created under an older, laxer CRD).
    """
    crd = copy.deepcopy(crd)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for constraint in _CONSTRAINTS:
                node.pop(constraint, None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        strip(schema)
        metadata = schema.get("properties", {}).get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("properties", None)
    return crd


class SimCluster(CtlCluster):
    """KubeSim in-process; see the module docstring."""

    has_request_accounting = True
    can_add_nodes = True

    def __init__(self, *, sim: KubeSim, workloads: Any, tmp: Path, lenient: bool) -> None:
        super().__init__(
            namespace=NS, key="zone", node_units=NODES, lease_namespace="servicegroup-system"
        )
        self.sim = sim
        self.workloads = workloads
        self.tmp = tmp
        self.has_workloads = workloads is not None
        self.lenient_crds = lenient

    @property
    def api(self) -> LocalClient:
        """Test-side access (in-process: not counted by request accounting)."""
        return self.sim.client(manager="integration-test")

    def client_config(self) -> ClientConfig:
        return ClientConfig.for_server(self.sim.url)

    # ---- API access ------------------------------------------------------------------

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj | None:
        try:
            return self.api.get(resource, name, namespace=self._ns(resource, namespace))
        except SimApiError as err:
            if err.code == 404:
                return None
            raise

    async def items(
        self, resource: str, *, label_selector: str = "", namespace: str | None = None
    ) -> list[Obj]:
        return self.api.list(
            resource, namespace=self._ns(resource, namespace), label_selector=label_selector
        )

    async def create(self, obj: Obj, resource: str | None = None) -> Obj:
        resource = resource or _RESOURCES[obj["kind"]]
        namespace = (obj.get("metadata") or {}).get("namespace")
        return self.api.create(resource, obj, namespace=self._ns(resource, namespace))

    async def try_create(self, obj: Obj) -> tuple[int, str]:
        try:
            await self.create(obj)
        except SimApiError as err:
            return err.code, err.reason
        return 201, ""

    async def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        manager: str = "kubectl-edit",
        patch_type: str = "merge",
    ) -> Obj:
        return self.sim.client(manager=manager).patch(
            resource, name, patch, namespace=self._ns(resource, None), patch_type=patch_type
        )

    async def delete(self, resource: str, name: str, *, namespace: str | None = None) -> None:
        self.api.delete(resource, name, namespace=self._ns(resource, namespace))

    async def table(self, resource: str) -> Obj:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{self.sim.url}/apis/superedge.io/v1/namespaces/{self.namespace}/{resource}",
                headers={"Accept": TABLE},
            ) as response,
        ):
            body: Obj = await response.json()
            return body

    async def create_namespace(self, prefix: str) -> str:
        self.api.create("namespaces", {"metadata": {"name": prefix}})
        return prefix

    async def _label_node(self, node: str, value: str | None) -> None:
        patch = {"metadata": {"labels": {self.key: value}}}
        self.sim.client(manager="kubectl-label").patch("nodes", node, patch)

    async def _add_node(self, name: str, unit: str) -> None:
        self.add_node(name, **{self.key: unit})

    async def _delete_node(self, name: str) -> None:
        self.api.delete("nodes", name)

    def add_node(self, name: str, **labels: str) -> None:
        if self.workloads is not None:
            self.workloads.nodes.add_node(
                name + (":" + ",".join(f"{k}={v}" for k, v in labels.items()) if labels else "")
            )
        else:
            self.sim.add_node(NodeSpec(name, labels))

    def _ns(self, resource: str, namespace: str | None) -> str | None:
        if resource in ("nodes", "namespaces", "customresourcedefinitions"):
            return None
        return namespace or self.namespace

    # ---- counting --------------------------------------------------------------------

    def writes(self, resource: str | None = None) -> int:
        """Create/update/patch/delete requests the controller(s) made so far.

        Lease renewals (leader election's heartbeat) are not counted: they are the one write
        a controller keeps making at rest, by design.
        """
        return sum(
            entry.count
            for entry in self.sim.requests.snapshot()
            if entry.user_agent == PRODUCT
            and entry.verb in WRITE_VERBS
            and entry.resource != LEASES
            and (resource is None or entry.resource == resource)
        )

    def count(self, *, verb: str, resource: str, subresource: str = "") -> int:
        return self.sim.requests.count(
            verb=verb, resource=resource, subresource=subresource, user_agent_product=PRODUCT
        )


async def start_sim_cluster(
    tmp: Path, *, workloads: bool = True, lenient: bool = False
) -> SimCluster:
    sim = KubeSim(bookmark_interval=0.5, gc_dangling_delay=0.05)
    await sim.start()
    try:
        sim_workloads: Any = None
        if workloads:
            try:
                from servicegroup.kubesim.workloads import WorkloadOptions, Workloads
            except ImportError as err:
                pytest.skip(f"kubesim workload simulation not available: {err}")
            sim_workloads = Workloads(
                engine=sim.engine, options=WorkloadOptions(pod_start_delay=0.02)
            )
            sim.start_task(sim_workloads.run(), name="kubesim-workloads")
        cluster = SimCluster(sim=sim, workloads=sim_workloads, tmp=tmp, lenient=lenient)
        for name, zone in NODES.items():
            cluster.add_node(name, zone=zone)
        for crd in crd_manifests():
            cluster.api.create("customresourcedefinitions", lenient_crd(crd) if lenient else crd)
        cluster.api.create("namespaces", {"metadata": {"name": "servicegroup-system"}})
        await sim.settle()
        await cluster.wait_for(
            lambda: all(_served(cluster, plural) for plural in _GRID_PLURALS),
            what="grid CRDs served",
        )
        return cluster
    except BaseException:
        await sim.stop()
        raise


def _served(cluster: SimCluster, plural: str) -> bool:
    try:
        cluster.api.list(plural, namespace=NS)
    except (SimApiError, KeyError, LookupError):
        return False
    return True
