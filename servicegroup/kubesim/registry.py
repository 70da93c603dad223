"""The resource type table of kubesim: which resources it serves and how each behaves.

Owns: `ResourceType` (one served group/version/resource with its kind, scope, names,
verbs, subresources and the strategy facts kube-apiserver's registry encodes per type:
create-on-update, unconditional update, generation policy, graceful deletion, field
selectors) and `Registry` (built-ins plus the custom resources of established CRDs).

Invariants:
- Objects are stored per `StorageKey` (group, plural): every served version of a resource
  shares one storage, as in kube-apiserver (custom resources without conversion, core and
  events.k8s.io Events).
- Lookups are O(1) dict lookups; the table changes only through `register`/`unregister`,
  and every change bumps `generation` so discovery caches can be rebuilt lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
NAMESPACE_VERBS: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS: tuple[str, ...] = ("get", "patch", "update")

# Which changes bump metadata.generation (kube's registry strategies, PrepareForUpdate):
# none -> never (the generic registry keeps the old generation: Pods, Services, Nodes,
# Namespaces, ConfigMaps, Secrets, Events, Leases, RBAC...); spec -> a change of .spec
# (ReplicaSets, StatefulSets, DaemonSets, CRDs); spec+annotations -> Deployments
# (annotations are copied to ReplicaSets); nonmeta -> any change outside metadata (status
# included unless the status subresource resets it), as for custom resources;
# nonmeta+labels -> EndpointSlices (anything outside metadata, or the labels).
GenerationPolicy = Literal["none", "spec", "spec+annotations", "nonmeta", "nonmeta+labels"]
RBAC_GROUP = "rbac.authorization.k8s.io"

BASE_FIELD_SELECTORS: tuple[str, ...] = ("metadata.name", "metadata.namespace")


class StorageKey(NamedTuple):
    group: str
    plural: str


@dataclass(frozen=True)
class ResourceType:
    """One served resource (a group/version/plural)."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    generation: GenerationPolicy = "none"
    allow_create_on_update: bool = False
    allow_unconditional_update: bool = True
    graceful_delete: bool = False
    field_selectors: tuple[str, ...] = BASE_FIELD_SELECTORS
    # The name of the CRD that defines this resource (None for built-ins).
    crd: str | None = None
    # The CRD version's schema and printer columns (custom resources only).
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)
    scale_paths: tuple[str, str, str | None] | None = field(default=None, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> StorageKey:
        return StorageKey(self.group, self.plural)

    @property
    def key(self) -> str:
        """`deployments.apps`, `pods`: the name used in logs, accounting and errors."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def group_path(self) -> str:
        """`/api/v1` or `/apis/{group}/{version}`."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _rt(
    group: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    version: str = "v1",
    singular: str | None = None,
    **kwargs: Any,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=singular or kind.lower(),
        kind=kind,
        namespaced=namespaced,
        **kwargs,
    )


POD_FIELD_SELECTORS = (
    *BASE_FIELD_SELECTORS,
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
)
EVENT_FIELD_SELECTORS = (
    *BASE_FIELD_SELECTORS,
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

BUILTINS: tuple[ResourceType, ...] = (
    _rt(
        "",
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=NAMESPACE_VERBS,
        subresources=("status", "finalize"),
        field_selectors=(*BASE_FIELD_SELECTORS, "status.phase"),
    ),
    _rt(
        "",
        "nodes",
        "Node",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        field_selectors=(*BASE_FIELD_SELECTORS, "spec.unschedulable"),
    ),
    _rt(
        "",
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        subresources=("status",),
        graceful_delete=True,
        field_selectors=POD_FIELD_SELECTORS,
    ),
    _rt(
        "",
        "services",
        "Service",
        short_names=("svc",),
        categories=("all",),
        subresources=("status",),
        allow_create_on_update=True,
        field_selectors=(*BASE_FIELD_SELECTORS, "spec.clusterIP", "spec.type"),
    ),
    _rt(
        "",
        "endpoints",
        "Endpoints",
        singular="endpoints",
        short_names=("ep",),
        allow_create_on_update=True,
    ),
    _rt(
        "",
        "events",
        "Event",
        short_names=("ev",),
        allow_create_on_update=True,
        field_selectors=EVENT_FIELD_SELECTORS,
    ),
    _rt("", "configmaps", "ConfigMap", short_names=("cm",)),
    _rt("", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _rt("", "secrets", "Secret", field_selectors=(*BASE_FIELD_SELECTORS, "type")),
    _rt(
        "apps",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
        generation="spec+annotations",
        scale_paths=(".spec.replicas", ".status.replicas", None),
    ),
    _rt(
        "apps",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
        generation="spec",
        field_selectors=(*BASE_FIELD_SELECTORS, "status.replicas"),
        scale_paths=(".spec.replicas", ".status.replicas", None),
    ),
    _rt(
        "apps",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        categories=("all",),
        subresources=("status", "scale"),
        generation="spec",
        scale_paths=(".spec.replicas", ".status.replicas", None),
    ),
    _rt(
        "apps",
        "daemonsets",
        "DaemonSet",
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
        generation="spec",
    ),
    _rt("apps", "controllerrevisions", "ControllerRevision"),
    _rt(
        "events.k8s.io",
        "events",
        "Event",
        short_names=("ev",),
        allow_create_on_update=True,
        field_selectors=EVENT_FIELD_SELECTORS,
    ),
    _rt("discovery.k8s.io", "endpointslices", "EndpointSlice", generation="nonmeta+labels"),
    _rt("coordination.k8s.io", "leases", "Lease", allow_create_on_update=True),
    # The RBAC registries allow create-on-update (a PUT of a missing role creates it).
    _rt(RBAC_GROUP, "roles", "Role", allow_create_on_update=True),
    _rt(RBAC_GROUP, "rolebindings", "RoleBinding", allow_create_on_update=True),
    _rt(RBAC_GROUP, "clusterroles", "ClusterRole", namespaced=False, allow_create_on_update=True),
    _rt(
        RBAC_GROUP,
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
        allow_create_on_update=True,
    ),
    _rt(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
        generation="spec",
        allow_unconditional_update=False,
    ),
)

# The two Event APIs share the core storage (the apiserver stores events.k8s.io Events as
# core v1 Events and converts on the way in and out).
_SHARED_STORAGE: dict[tuple[str, str], StorageKey] = {
    ("events.k8s.io", "events"): StorageKey("", "events"),
}


class Registry:
    """Every served resource, looked up by path parts, kind or short name."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._by_gvk: dict[tuple[str, str, str], ResourceType] = {}
        self.generation = 0
        for rt in BUILTINS:
            self.register(rt)

    def register(self, rt: ResourceType) -> None:
        self._by_gvr[(rt.group, rt.version, rt.plural)] = rt
        self._by_gvk[(rt.group, rt.version, rt.kind)] = rt
        self.generation += 1

    def unregister(self, group: str, version: str, plural: str) -> None:
        rt = self._by_gvr.pop((group, version, plural), None)
        if rt is not None:
            self._by_gvk.pop((rt.group, rt.version, rt.kind), None)
            self.generation += 1

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        return self._by_gvk.get((group, version, kind))

    def by_api_version_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return self._by_gvk.get((group, version, kind))

    def any_version(self, group: str, plural: str) -> ResourceType | None:
        """The preferred (first registered) served version of a resource."""
        for rt in self._by_gvr.values():
            if rt.group == group and rt.plural == plural:
                return rt
        return None

    def storage_key(self, rt: ResourceType) -> StorageKey:
        return _SHARED_STORAGE.get((rt.group, rt.plural), rt.storage_key)

    def for_storage(self, key: StorageKey) -> ResourceType | None:
        """A served resource whose objects live in storage `key` (its storage form)."""
        return self.any_version(key.group, key.plural)

    def storage_keys(self) -> list[StorageKey]:
        """Every distinct storage, each once."""
        seen: dict[StorageKey, None] = {}
        for rt in self._by_gvr.values():
            seen[self.storage_key(rt)] = None
        return list(seen)

    def lookup(self, name: str) -> ResourceType:
        """Resolve `pods`, `deployments.apps`, `deploy`, `Deployment` or `apps/v1/deployments`."""
        if name.count("/") == 2:
            group, version, plural = name.split("/")
            rt = self.get(group, version, plural)
        elif name.count("/") == 1:
            version, plural = name.split("/")
            rt = self.get("", version, plural)
        else:
            rt = self._find(name)
        if rt is None:
            raise KeyError(f"kubesim serves no resource {name!r}")
        return rt

    def _find(self, name: str) -> ResourceType | None:
        plural, _, group = name.partition(".")
        candidates = [
            rt
            for rt in self._by_gvr.values()
            if (group in ("", rt.group))
            and name.partition(".")[0] in (rt.plural, rt.singular, rt.kind, *rt.short_names)
        ]
        if not group:
            core = [rt for rt in candidates if rt.group == ""]
            candidates = core or candidates
        if not candidates and group:
            # A dotted name may also be a plain plural of a group with dots in its name.
            candidates = [rt for rt in self._by_gvr.values() if rt.key == name]
        del plural
        return candidates[0] if candidates else None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_gvr.values()))

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, in registration order (core group under "")."""
        result: dict[str, list[str]] = {}
        for rt in self._by_gvr.values():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._by_gvr.values() if rt.group == group and rt.version == version]
