"""Schema facts of the built-in kinds kubesim serves, for patching and server-side apply.

Owns `BUILTIN_ROOTS`: (group, kind) -> root `TypeNode`. Each fact comes from the k8s.io/api
Go types as the apiserver sees them: `+listType` / `+listMapKey` / `+mapType` /
`+structType` markers (SSA), `patchStrategy` / `patchMergeKey` struct tags (SMP), OpenAPI
defaults of list-map key fields (a container port without `protocol` is keyed as TCP) and
which fields a zero-valued Go object already carries (`zero`). Only the parts that change
merge behaviour are written down; every other field is `open` (maps merged key by key,
lists replaced as a whole), which is what those untagged fields do anyway.

Invariant: lists without markers are atomic, as SSA treats untagged built-in lists;
list-maps with `patchStrategy:"merge"` are SMP-merged by their first key.
"""

from __future__ import annotations

from servicegroup.kubesim.typenode import (
    ATOMIC_ANY,
    ATOMIC_LIST,
    SCALAR,
    TypeNode,
    listing,
    map_list,
    mapping,
    struct,
)

ATOMIC_STRUCT = struct(atomic=True)

OBJECT_META = struct(
    {
        "labels": mapping(),
        "annotations": mapping(),
        "finalizers": listing(SCALAR, "set", strategy="merge"),
        # OwnerReference is `+structType=atomic`: an item is owned and replaced whole.
        "ownerReferences": map_list(ATOMIC_STRUCT, "uid"),
        "managedFields": ATOMIC_LIST,
    }
)
META_FIELD = OBJECT_META.with_(zero="map")

LABEL_SELECTOR = struct({"matchLabels": mapping(), "matchExpressions": ATOMIC_LIST}, atomic=True)
CONDITIONS = map_list(struct(), "type")

# ---- pods -------------------------------------------------------------------------------

_RESOURCES = struct(
    {
        "limits": mapping(),
        "requests": mapping(),
        # `+listType=map +listMapKey=name` without a patch strategy: SMP replaces it.
        "claims": map_list(struct(), "name", strategy=None),
    }
)
_HANDLER = struct(
    {
        "exec": struct({"command": ATOMIC_LIST}),
        "httpGet": struct({"httpHeaders": ATOMIC_LIST}),
    }
)
_ENV_VAR = struct(
    {
        "valueFrom": struct(
            {
                "configMapKeyRef": ATOMIC_STRUCT,
                "secretKeyRef": ATOMIC_STRUCT,
                "fieldRef": ATOMIC_STRUCT,
                "resourceFieldRef": ATOMIC_STRUCT,
                "fileKeyRef": ATOMIC_STRUCT,
            }
        )
    }
)
_CONTAINER_FIELDS: dict[str, TypeNode] = {
    "args": ATOMIC_LIST,
    "command": ATOMIC_LIST,
    "env": map_list(_ENV_VAR, "name"),
    "envFrom": ATOMIC_LIST,
    "ports": map_list(
        struct(), "containerPort", "protocol", defaults={"containerPort": 0, "protocol": "TCP"}
    ),
    "resources": _RESOURCES.with_(zero="map"),
    "volumeMounts": map_list(struct(), "mountPath"),
    "volumeDevices": map_list(struct(), "devicePath"),
    "resizePolicy": ATOMIC_LIST,
    "restartPolicyRules": ATOMIC_LIST,
    "lifecycle": struct({"postStart": _HANDLER, "preStop": _HANDLER}),
    "livenessProbe": _HANDLER,
    "readinessProbe": _HANDLER,
    "startupProbe": _HANDLER,
    "securityContext": struct({"capabilities": struct({"add": ATOMIC_LIST, "drop": ATOMIC_LIST})}),
}
CONTAINER = struct(_CONTAINER_FIELDS)

_PVC_SPEC = struct(
    {
        "accessModes": ATOMIC_LIST,
        "selector": LABEL_SELECTOR,
        "dataSource": ATOMIC_STRUCT,
        "resources": struct({"limits": mapping(), "requests": mapping()}, zero="map"),
    }
)
_SECRET_REF = {"secretRef": ATOMIC_STRUCT}
VOLUME = struct(
    {
        "configMap": struct({"items": ATOMIC_LIST}),
        "secret": struct({"items": ATOMIC_LIST}),
        "downwardAPI": struct({"items": ATOMIC_LIST}),
        "projected": struct({"sources": ATOMIC_LIST}),
        "csi": struct({"nodePublishSecretRef": ATOMIC_STRUCT, "volumeAttributes": mapping()}),
        "ephemeral": struct(
            {"volumeClaimTemplate": struct({"metadata": META_FIELD, "spec": _PVC_SPEC})}
        ),
        "cephfs": struct({"monitors": ATOMIC_LIST, **_SECRET_REF}),
        "cinder": struct(_SECRET_REF),
        "flexVolume": struct({"options": mapping(), **_SECRET_REF}),
        "iscsi": struct({"portals": ATOMIC_LIST, **_SECRET_REF}),
        "rbd": struct({"monitors": ATOMIC_LIST, **_SECRET_REF}),
        "scaleIO": struct(_SECRET_REF),
        "storageos": struct(_SECRET_REF),
        "fc": struct({"targetWWNs": ATOMIC_LIST, "wwids": ATOMIC_LIST}),
    }
)
_AFFINITY_TERMS = struct(
    {
        "requiredDuringSchedulingIgnoredDuringExecution": ATOMIC_LIST,
        "preferredDuringSchedulingIgnoredDuringExecution": ATOMIC_LIST,
    }
)
POD_SPEC = struct(
    {
        "volumes": map_list(VOLUME, "name", strategy="merge,retainKeys"),
        "initContainers": map_list(CONTAINER, "name"),
        # `json:"containers"` has no omitempty: a zero PodSpec carries `containers: null`.
        "containers": map_list(CONTAINER, "name", zero="null"),
        "ephemeralContainers": map_list(CONTAINER, "name"),
        # LocalObjectReference is `+structType=atomic`.
        "imagePullSecrets": map_list(ATOMIC_STRUCT, "name"),
        "tolerations": ATOMIC_LIST,
        "hostAliases": map_list(struct({"hostnames": ATOMIC_LIST}), "ip"),
        "readinessGates": ATOMIC_LIST,
        "topologySpreadConstraints": map_list(
            struct({"labelSelector": LABEL_SELECTOR, "matchLabelKeys": ATOMIC_LIST}),
            "topologyKey",
            "whenUnsatisfiable",
        ),
        "resourceClaims": map_list(struct(), "name", strategy="merge,retainKeys"),
        "schedulingGates": map_list(struct(), "name"),
        "nodeSelector": mapping(atomic=True),
        "overhead": mapping(),
        "resources": _RESOURCES,
        "securityContext": struct({"supplementalGroups": ATOMIC_LIST, "sysctls": ATOMIC_LIST}),
        "dnsConfig": struct(
            {"nameservers": ATOMIC_LIST, "searches": ATOMIC_LIST, "options": ATOMIC_LIST}
        ),
        "affinity": struct(
            {
                "nodeAffinity": struct(
                    {
                        "requiredDuringSchedulingIgnoredDuringExecution": ATOMIC_STRUCT,
                        "preferredDuringSchedulingIgnoredDuringExecution": ATOMIC_LIST,
                    }
                ),
                "podAffinity": _AFFINITY_TERMS,
                "podAntiAffinity": _AFFINITY_TERMS,
            }
        ),
    }
)
POD_STATUS = struct(
    {
        "conditions": CONDITIONS,
        "containerStatuses": ATOMIC_LIST,
        "initContainerStatuses": ATOMIC_LIST,
        "ephemeralContainerStatuses": ATOMIC_LIST,
        # Atomic for SSA, yet SMP-merged by ip (the tags disagree upstream too).
        "hostIPs": listing(struct(), "atomic", strategy="merge", merge_key="ip"),
        "podIPs": map_list(struct(), "ip"),
        "resourceClaimStatuses": map_list(struct(), "name", strategy="merge,retainKeys"),
        "allocatedResources": mapping(),
    }
)
POD_TEMPLATE_SPEC = struct({"metadata": META_FIELD, "spec": POD_SPEC.with_(zero="map")})


def _root(**fields: TypeNode) -> TypeNode:
    return struct({"apiVersion": SCALAR, "kind": SCALAR, "metadata": META_FIELD, **fields})


def _status(**fields: TypeNode) -> TypeNode:
    return struct({"conditions": CONDITIONS, **fields}, zero="map")


_TEMPLATE = POD_TEMPLATE_SPEC.with_(zero="map")

DEPLOYMENT = _root(
    spec=struct(
        {
            "selector": LABEL_SELECTOR,
            "template": _TEMPLATE,
            "strategy": struct(zero="map", strategy="retainKeys"),
        },
        zero="map",
    ),
    status=_status(),
)
REPLICA_SET = _root(
    spec=struct({"selector": LABEL_SELECTOR, "template": _TEMPLATE}, zero="map"),
    status=_status(),
)
STATEFUL_SET = _root(
    spec=struct(
        {
            "selector": LABEL_SELECTOR,
            "template": _TEMPLATE,
            "updateStrategy": struct(zero="map"),
            "volumeClaimTemplates": ATOMIC_LIST,
        },
        zero="map",
    ),
    status=_status(),
)
DAEMON_SET = _root(
    spec=struct(
        {"selector": LABEL_SELECTOR, "template": _TEMPLATE, "updateStrategy": struct(zero="map")},
        zero="map",
    ),
    status=_status(),
)
POD = _root(spec=POD_SPEC.with_(zero="map"), status=POD_STATUS.with_(zero="map"))
POD_TEMPLATE = _root(template=_TEMPLATE)
CONTROLLER_REVISION = _root(data=ATOMIC_ANY)

SERVICE = _root(
    spec=struct(
        {
            "ports": map_list(
                struct(), "port", "protocol", defaults={"port": 0, "protocol": "TCP"}
            ),
            "selector": mapping(atomic=True),
            "clusterIPs": ATOMIC_LIST,
            "externalIPs": ATOMIC_LIST,
            "ipFamilies": ATOMIC_LIST,
            "loadBalancerSourceRanges": ATOMIC_LIST,
        },
        zero="map",
    ),
    status=_status(loadBalancer=struct({"ingress": ATOMIC_LIST}, zero="map")),
)
ENDPOINTS = _root(subsets=ATOMIC_LIST)
ENDPOINT_SLICE = _root(endpoints=listing(struct(), "atomic", zero="null"), ports=ATOMIC_LIST)

NODE = _root(
    spec=struct(
        {"podCIDRs": listing(SCALAR, "set", strategy="merge"), "taints": ATOMIC_LIST}, zero="map"
    ),
    status=_status(
        addresses=map_list(struct(), "type"),
        capacity=mapping(),
        allocatable=mapping(),
        images=ATOMIC_LIST,
        volumesInUse=ATOMIC_LIST,
        volumesAttached=ATOMIC_LIST,
        runtimeHandlers=ATOMIC_LIST,
        daemonEndpoints=struct(zero="map"),
        nodeInfo=struct(zero="map"),
    ),
)
NAMESPACE = _root(spec=struct({"finalizers": ATOMIC_LIST}, zero="map"), status=_status())
CONFIG_MAP = _root(data=mapping(), binaryData=mapping())
SECRET = _root(data=mapping(), stringData=mapping())
LEASE = _root(spec=struct(zero="map"))
EVENT = _root(
    involvedObject=ATOMIC_STRUCT.with_(zero="map"),
    related=ATOMIC_STRUCT,
    source=struct(zero="map"),
)
EVENTS_V1_EVENT = _root(
    regarding=ATOMIC_STRUCT.with_(zero="map"),
    related=ATOMIC_STRUCT,
    deprecatedSource=struct(zero="map"),
)
_NAMES = struct({"shortNames": ATOMIC_LIST, "categories": ATOMIC_LIST}, zero="map")
CUSTOM_RESOURCE_DEFINITION = _root(
    spec=struct(
        {"names": _NAMES, "versions": listing(struct(), "atomic", zero="null")}, zero="map"
    ),
    status=struct(
        {
            "conditions": map_list(struct(), "type", strategy=None),
            "storedVersions": ATOMIC_LIST,
            "acceptedNames": _NAMES,
        },
        zero="map",
    ),
)
SERVICE_ACCOUNT = _root(
    # ObjectReference is `+structType=atomic`; LocalObjectReference too.
    secrets=map_list(ATOMIC_STRUCT, "name"),
    imagePullSecrets=ATOMIC_LIST,
)
# `rules` has no omitempty (a role without rules carries `rules: null`); every PolicyRule
# list, the subjects and the aggregation selectors are `+listType=atomic`.
ROLE = _root(rules=listing(struct(), "atomic", zero="null"))
CLUSTER_ROLE = _root(
    rules=listing(struct(), "atomic", zero="null"),
    aggregationRule=struct({"clusterRoleSelectors": ATOMIC_LIST}),
)
ROLE_BINDING = _root(subjects=ATOMIC_LIST, roleRef=struct(zero="map"))
GENERIC = _root()

BUILTIN_ROOTS: dict[tuple[str, str], TypeNode] = {
    ("", "Pod"): POD,
    ("", "PodTemplate"): POD_TEMPLATE,
    ("", "Service"): SERVICE,
    ("", "Endpoints"): ENDPOINTS,
    ("", "Node"): NODE,
    ("", "Namespace"): NAMESPACE,
    ("", "ConfigMap"): CONFIG_MAP,
    ("", "Secret"): SECRET,
    ("", "Event"): EVENT,
    ("apps", "Deployment"): DEPLOYMENT,
    ("apps", "ReplicaSet"): REPLICA_SET,
    ("apps", "StatefulSet"): STATEFUL_SET,
    ("apps", "DaemonSet"): DAEMON_SET,
    ("apps", "ControllerRevision"): CONTROLLER_REVISION,
    ("discovery.k8s.io", "EndpointSlice"): ENDPOINT_SLICE,
    ("coordination.k8s.io", "Lease"): LEASE,
    ("events.k8s.io", "Event"): EVENTS_V1_EVENT,
    ("", "ServiceAccount"): SERVICE_ACCOUNT,
    ("rbac.authorization.k8s.io", "Role"): ROLE,
    ("rbac.authorization.k8s.io", "ClusterRole"): CLUSTER_ROLE,
    ("rbac.authorization.k8s.io", "RoleBinding"): ROLE_BINDING,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ROLE_BINDING,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): CUSTOM_RESOURCE_DEFINITION,
}
