"""The static table of every API resource servicegroup reads or writes.

A `ResourceRef` carries what a REST path needs (group, version, plural, namespaced) and
what a log line or metric label shows (`kind`, `key`). Nothing here does I/O.
"""

from __future__ import annotations

from typing import NamedTuple


class ResourceRef(NamedTuple):
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """`v1` for the core group, `group/version` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """A short stable name for logs and metric labels: `deployments.apps`, `nodes`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def collection_path(self, namespace: str | None = None) -> str:
        """The URL path of the collection, across namespaces when `namespace` is None."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def object_path(
        self, name: str, namespace: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of one object (or of its subresource)."""
        if self.namespaced and not namespace:
            raise ValueError(f"{self.key} is namespaced: a namespace is required")
        path = f"{self.collection_path(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path


SUPEREDGE_GROUP = "superedge.io"

NAMESPACES = ResourceRef("", "v1", "namespaces", "Namespace", False)
NODES = ResourceRef("", "v1", "nodes", "Node", False)
PODS = ResourceRef("", "v1", "pods", "Pod", True)
SERVICES = ResourceRef("", "v1", "services", "Service", True)
ENDPOINTS = ResourceRef("", "v1", "endpoints", "Endpoints", True)
EVENTS = ResourceRef("", "v1", "events", "Event", True)
EVENTS_V1 = ResourceRef("events.k8s.io", "v1", "events", "Event", True)
CONFIGMAPS = ResourceRef("", "v1", "configmaps", "ConfigMap", True)
SECRETS = ResourceRef("", "v1", "secrets", "Secret", True)
DEPLOYMENTS = ResourceRef("apps", "v1", "deployments", "Deployment", True)
REPLICASETS = ResourceRef("apps", "v1", "replicasets", "ReplicaSet", True)
STATEFULSETS = ResourceRef("apps", "v1", "statefulsets", "StatefulSet", True)
ENDPOINTSLICES = ResourceRef("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
LEASES = ResourceRef("coordination.k8s.io", "v1", "leases", "Lease", True)
CRDS = ResourceRef(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)
DEPLOYMENTGRIDS = ResourceRef(SUPEREDGE_GROUP, "v1", "deploymentgrids", "DeploymentGrid", True)
STATEFULSETGRIDS = ResourceRef(SUPEREDGE_GROUP, "v1", "statefulsetgrids", "StatefulSetGrid", True)
SERVICEGRIDS = ResourceRef(SUPEREDGE_GROUP, "v1", "servicegrids", "ServiceGrid", True)

ALL: tuple[ResourceRef, ...] = (
    NAMESPACES, NODES, PODS, SERVICES, ENDPOINTS, EVENTS, EVENTS_V1, CONFIGMAPS, SECRETS,
    DEPLOYMENTS, REPLICASETS, STATEFULSETS, ENDPOINTSLICES, LEASES, CRDS,
    DEPLOYMENTGRIDS, STATEFULSETGRIDS, SERVICEGRIDS,
)  # fmt: skip


def by_kind(api_version: str, kind: str) -> ResourceRef:
    """Look a resource up by apiVersion and kind; KeyError when we do not know it."""
    for ref in ALL:
        if ref.api_version == api_version and ref.kind == kind:
            return ref
    raise KeyError(f"unknown resource {api_version} {kind}")
