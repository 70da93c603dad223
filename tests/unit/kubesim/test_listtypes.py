"""Schema facts of built-in kinds (k8s.io/api markers and tags) and CRD schema conversion."""

from __future__ import annotations

import pytest

from servicegroup.kubesim.listtypes import (
    ITEM,
    FieldPath,
    ListType,
    builtin_list_types,
    crd_list_types,
)

POD_SPEC: FieldPath = ("spec", "template", "spec")
CONTAINER: FieldPath = (*POD_SPEC, "containers", ITEM)


@pytest.mark.parametrize(
    ("path", "list_type", "strategy", "merge_key"),
    [
        ((*POD_SPEC, "containers"), ListType("map", ("name",)), "merge", "name"),
        ((*POD_SPEC, "initContainers"), ListType("map", ("name",)), "merge", "name"),
        ((*POD_SPEC, "ephemeralContainers"), ListType("map", ("name",)), "merge", "name"),
        (
            (*CONTAINER, "ports"),
            ListType("map", ("containerPort", "protocol")),
            "merge",
            "containerPort",
        ),
        ((*CONTAINER, "env"), ListType("map", ("name",)), "merge", "name"),
        ((*CONTAINER, "envFrom"), ListType("atomic"), None, None),
        ((*CONTAINER, "volumeMounts"), ListType("map", ("mountPath",)), "merge", "mountPath"),
        ((*CONTAINER, "volumeDevices"), ListType("map", ("devicePath",)), "merge", "devicePath"),
        ((*CONTAINER, "command"), ListType("atomic"), None, None),
        ((*CONTAINER, "args"), ListType("atomic"), None, None),
        ((*CONTAINER, "resources", "claims"), ListType("map", ("name",)), None, None),
        ((*POD_SPEC, "volumes"), ListType("map", ("name",)), "merge,retainKeys", "name"),
        ((*POD_SPEC, "tolerations"), ListType("atomic"), None, None),
        ((*POD_SPEC, "imagePullSecrets"), ListType("map", ("name",)), "merge", "name"),
        ((*POD_SPEC, "hostAliases"), ListType("map", ("ip",)), "merge", "ip"),
        (
            (*POD_SPEC, "topologySpreadConstraints"),
            ListType("map", ("topologyKey", "whenUnsatisfiable")),
            "merge",
            "topologyKey",
        ),
        ((*POD_SPEC, "resourceClaims"), ListType("map", ("name",)), "merge,retainKeys", "name"),
        ((*POD_SPEC, "schedulingGates"), ListType("map", ("name",)), "merge", "name"),
        ((*POD_SPEC, "readinessGates"), ListType("atomic"), None, None),
        (("metadata", "ownerReferences"), ListType("map", ("uid",)), "merge", "uid"),
        (("metadata", "finalizers"), ListType("set"), "merge", None),
        (("metadata", "managedFields"), ListType("atomic"), None, None),
        (("spec", "template", "metadata", "finalizers"), ListType("set"), "merge", None),
        (("status", "conditions"), ListType("map", ("type",)), "merge", "type"),
        (("spec", "unknownList"), ListType("atomic"), None, None),
    ],
)
def test_deployment_lists(
    path: FieldPath, list_type: ListType, strategy: str | None, merge_key: str | None
) -> None:
    types = builtin_list_types("apps", "Deployment")
    assert types.list_type(path) == list_type
    assert types.patch_strategy(path) == strategy
    assert types.patch_merge_key(path) == merge_key


@pytest.mark.parametrize(
    ("group", "kind"), [("apps", "StatefulSet"), ("apps", "ReplicaSet"), ("apps", "DaemonSet")]
)
def test_every_pod_template_has_the_pod_spec_facts(group: str, kind: str) -> None:
    types = builtin_list_types(group, kind)
    assert types.list_type((*CONTAINER, "ports")) == ListType("map", ("containerPort", "protocol"))
    assert types.patch_merge_key((*POD_SPEC, "volumes")) == "name"
    assert types.map_type((*POD_SPEC, "nodeSelector")) == "atomic"


def test_pod_lists_and_maps() -> None:
    pod = builtin_list_types("", "Pod")
    assert pod.list_type(("spec", "containers")) == ListType("map", ("name",))
    assert pod.list_type(("status", "podIPs")) == ListType("map", ("ip",))
    assert pod.list_type(("status", "containerStatuses")) == ListType("atomic")
    assert pod.list_type(("status", "hostIPs")) == ListType("atomic")
    assert pod.patch_merge_key(("status", "hostIPs")) == "ip"
    assert pod.map_type(("metadata", "labels")) == "granular"
    assert pod.map_type(("spec", "nodeSelector")) == "atomic"
    assert pod.map_type(("spec", "containers", ITEM, "resources", "limits")) == "granular"
    # LocalObjectReference and the key selectors are `+structType=atomic`.
    assert pod.map_type(("spec", "imagePullSecrets", ITEM)) == "atomic"
    env_ref = ("spec", "containers", ITEM, "env", ITEM, "valueFrom", "secretKeyRef")
    assert pod.map_type(env_ref) == "atomic"
    assert pod.map_type(("spec", "affinity", "nodeAffinity")) == "granular"


def test_selectors_and_owner_references_are_atomic() -> None:
    types = builtin_list_types("apps", "Deployment")
    assert types.map_type(("spec", "selector")) == "atomic"
    assert types.map_type(("metadata", "ownerReferences", ITEM)) == "atomic"
    assert types.patch_strategy(("spec", "strategy")) == "retainKeys"
    assert types.map_type(("spec", "unknown", "nested")) == "granular"


@pytest.mark.parametrize(
    ("group", "kind", "path", "list_type", "merge_key"),
    [
        ("", "Service", ("spec", "ports"), ListType("map", ("port", "protocol")), "port"),
        ("", "Service", ("spec", "clusterIPs"), ListType("atomic"), None),
        ("", "Service", ("spec", "ipFamilies"), ListType("atomic"), None),
        ("", "Service", ("status", "loadBalancer", "ingress"), ListType("atomic"), None),
        ("", "Service", ("status", "conditions"), ListType("map", ("type",)), "type"),
        ("", "Endpoints", ("subsets",), ListType("atomic"), None),
        ("discovery.k8s.io", "EndpointSlice", ("endpoints",), ListType("atomic"), None),
        ("discovery.k8s.io", "EndpointSlice", ("ports",), ListType("atomic"), None),
        ("", "Node", ("spec", "taints"), ListType("atomic"), None),
        ("", "Node", ("spec", "podCIDRs"), ListType("set"), None),
        ("", "Node", ("status", "addresses"), ListType("map", ("type",)), "type"),
        ("", "Node", ("status", "conditions"), ListType("map", ("type",)), "type"),
        ("", "Node", ("status", "images"), ListType("atomic"), None),
        ("", "Namespace", ("spec", "finalizers"), ListType("atomic"), None),
        ("", "Namespace", ("status", "conditions"), ListType("map", ("type",)), "type"),
        ("apps", "StatefulSet", ("spec", "volumeClaimTemplates"), ListType("atomic"), None),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            ("spec", "versions"),
            ListType("atomic"),
            None,
        ),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            ("status", "conditions"),
            ListType("map", ("type",)),
            None,
        ),
        ("coordination.k8s.io", "Lease", ("metadata", "finalizers"), ListType("set"), None),
    ],
)
def test_other_builtin_lists(
    group: str, kind: str, path: tuple[str, ...], list_type: ListType, merge_key: str | None
) -> None:
    types = builtin_list_types(group, kind)
    assert types.list_type(path) == list_type
    assert types.patch_merge_key(path) == merge_key


def test_builtin_maps_and_unknown_kinds() -> None:
    assert builtin_list_types("", "ConfigMap").map_type(("data",)) == "granular"
    assert builtin_list_types("", "Secret").map_type(("stringData",)) == "granular"
    assert builtin_list_types("", "Service").map_type(("spec", "selector")) == "atomic"
    assert builtin_list_types("", "Node").map_type(("status", "capacity")) == "granular"
    assert builtin_list_types("apps", "ControllerRevision").map_type(("data",)) == "atomic"
    generic = builtin_list_types("example.com", "Unknown")
    assert generic.supports_smp
    assert generic.list_type(("metadata", "ownerReferences")) == ListType("map", ("uid",))
    assert generic.list_type(("spec", "things")) == ListType("atomic")


def test_container_port_and_service_port_keys_default_protocol_to_tcp() -> None:
    pod = builtin_list_types("", "Pod")
    assert pod.node(("spec", "containers", ITEM, "ports")).key_defaults["protocol"] == "TCP"
    service = builtin_list_types("", "Service")
    assert service.node(("spec", "ports")).key_defaults == {"port": 0, "protocol": "TCP"}


CRD_SCHEMA = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "zone"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "zone": {"type": "string", "default": "a"},
                        },
                    },
                },
                "tags": {
                    "type": "array",
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                },
                "plain": {"type": "array", "items": {"type": "string"}},
                "selector": {
                    "type": "object",
                    "x-kubernetes-map-type": "atomic",
                    "additionalProperties": {"type": "string"},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "port": {"x-kubernetes-int-or-string": True},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "items": {"type": "object"},
                }
            },
        },
    },
}


def test_crd_list_types_follow_the_schema_markers() -> None:
    types = crd_list_types(CRD_SCHEMA)
    assert not types.supports_smp
    assert types.list_type(("spec", "items")) == ListType("map", ("name", "zone"))
    assert types.node(("spec", "items")).key_defaults == {"zone": "a"}
    assert types.list_type(("spec", "tags")) == ListType("set")
    assert types.list_type(("spec", "plain")) == ListType("atomic")
    assert types.map_type(("spec", "selector")) == "atomic"
    assert types.map_type(("spec", "labels")) == "granular"
    assert types.list_type(("status", "conditions")) == ListType("map", ("type",))
    assert types.patch_strategy(("spec", "items")) is None
    assert types.patch_merge_key(("status", "conditions")) is None


def test_crd_preserve_unknown_fields_are_deduced_and_metadata_is_object_meta() -> None:
    types = crd_list_types(CRD_SCHEMA)
    assert types.map_type(("spec", "template", "anything", "deeper")) == "granular"
    assert types.list_type(("spec", "template", "someList")) == ListType("atomic")
    assert types.node(("spec", "template", "x")).kind == "deduced"
    assert types.list_type(("metadata", "ownerReferences")) == ListType("map", ("uid",))
    assert types.list_type(("metadata", "finalizers")) == ListType("set")
    assert types.node(("spec", "port")).kind == "scalar"
    empty = crd_list_types({})
    assert empty.list_type(("metadata", "finalizers")) == ListType("set")
    assert empty.node(("spec", "x")).kind == "deduced"
