"""kubesim validation: kube-apiserver's 422 causes and messages for the kinds kubesim serves."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.kubesim.defaults import apply_defaults, prepare_service_update
from servicegroup.kubesim.errors import ApiError
from servicegroup.kubesim.fielderrors import NIL_COLLECTION, format_value, go_quote
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.validation import (
    Cause,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    qualified_kind,
    status_message,
    validate_create,
    validate_label_selector,
    validate_object_name,
    validate_update,
)

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    r"used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
KEY_NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def messages(causes: list[Cause]) -> list[str]:
    return [cause.error() for cause in causes]


def created(group: str, kind: str, obj: dict[str, Any]) -> list[Cause]:
    apply_defaults(group, kind, obj)
    return validate_create(group, kind, obj)


def updated(group: str, kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    apply_defaults(group, kind, old)
    apply_defaults(group, kind, new)
    return validate_update(group, kind, old, new)


def meta(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "resourceVersion": "1", **extra}


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx:1.25", **extra}


def deployment(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()]}},
    }
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(), "spec": body}


def pod_template_errors(**pod_spec: Any) -> list[str]:
    obj = deployment()
    obj["spec"]["template"]["spec"] = {"containers": [container()], **pod_spec}
    return messages(created("apps", "Deployment", obj))


# ---- Names and formats ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "label", "subdomain", "dns1035"),
    [
        ("web", True, True, True),
        ("web-1", True, True, True),
        ("1web", True, True, False),
        ("a.b", False, True, False),
        ("Web", False, False, False),
        ("web-", False, False, False),
        ("", False, False, False),
        ("a" * 63, True, True, True),
        ("a" * 64, False, True, False),
    ],
)
def test_dns_name_predicates(value: str, label: bool, subdomain: bool, dns1035: bool) -> None:
    assert is_dns1123_label(value) is label
    assert is_dns1123_subdomain(value) is subdomain
    assert is_dns1035_label(value) is dns1035


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("superedge.io/grid-selector", True),
        ("kubernetes.io/metadata.name", True),
        ("App_Name.1", True),
        ("a/b/c", False),
        ("/name", False),
        ("Example.com/name", False),
        ("-name", False),
        ("x" * 64, False),
    ],
)
def test_qualified_names(key: str, ok: bool) -> None:
    assert is_qualified_name(key) is ok


def test_label_values() -> None:
    assert is_valid_label_value("")
    assert is_valid_label_value("Zone_A.1")
    assert not is_valid_label_value("zone a")
    assert not is_valid_label_value("v" * 64)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abz09-.", max_size=70))
def test_a_dns_label_is_always_a_subdomain(value: str) -> None:
    if is_dns1123_label(value):
        assert is_dns1123_subdomain(value)
        assert is_valid_label_value(value)


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("Deployment", "Web", f'metadata.name: Invalid value: "Web": {SUBDOMAIN}'),
        ("ConfigMap", "a_b", f'metadata.name: Invalid value: "a_b": {SUBDOMAIN}'),
        ("Service", "1svc", f'metadata.name: Invalid value: "1svc": {DNS1035}'),
        (
            "Namespace",
            "edge.zone",
            'metadata.name: Invalid value: "edge.zone": must not contain dots',
        ),
        (
            "StatefulSet",
            "db.main",
            'metadata.name: Invalid value: "db.main": must not contain dots',
        ),
        ("Namespace", "Edge", f'metadata.name: Invalid value: "Edge": {LABEL}'),
        ("Pod", "", "metadata.name: Required value: name or generateName is required"),
    ],
)
def test_object_names_per_kind(kind: str, name: str, message: str) -> None:
    assert messages(validate_object_name(kind, name)) == [message]


def test_name_length_limits() -> None:
    assert validate_object_name("Deployment", "a" * 253) == []
    too_long = "a" * 254
    assert messages(validate_object_name("Deployment", too_long)) == [
        f'metadata.name: Invalid value: "{too_long}": must be no more than 253 characters'
    ]
    assert validate_object_name("Deployment", "a.b.c") == []
    assert messages(validate_object_name("Service", "s" * 64)) == [
        f'metadata.name: Invalid value: "{"s" * 64}": must be no more than 63 characters'
    ]


# ---- Status messages and value formatting ---------------------------------------------


def test_status_message_single_cause_has_no_brackets() -> None:
    cause = Cause("FieldValueRequired", "Required value", "spec.selector")
    assert status_message("Deployment.apps", "x", [cause]) == (
        'Deployment.apps "x" is invalid: spec.selector: Required value'
    )


def test_status_message_brackets_and_deduplicates() -> None:
    a = Cause("FieldValueRequired", "Required value", "spec.selector")
    b = Cause("FieldValueInvalid", 'Invalid value: "x": bad', "spec.x")
    assert status_message("Service", "s", [a, b, a]) == (
        'Service "s" is invalid: [spec.selector: Required value, spec.x: Invalid value: "x": bad]'
    )


def test_qualified_kind() -> None:
    assert qualified_kind("apps", "Deployment") == "Deployment.apps"
    assert qualified_kind("", "Service") == "Service"


def test_go_formatting_of_bad_values() -> None:
    assert go_quote('a"b\n\\') == '"a\\"b\\n\\\\"'
    assert go_quote("\x01é") == '"\\x01é"'
    # apimachinery turns a nil bad value into the string "null" and prints it with %q.
    assert format_value(None) == '"null"'
    assert format_value(NIL_COLLECTION) == "null"  # a nil map or slice
    assert format_value(True) == "true"
    assert format_value(3) == "3"
    assert format_value({"b": "1", "a": "<x>"}, sort_keys=True) == '{"a":"\\u003cx\\u003e","b":"1"}'
    assert format_value({"matchLabels": {"a": "b"}, "matchExpressions": []}) == (
        '{"matchLabels":{"a":"b"}}'
    )


# ---- Metadata -------------------------------------------------------------------------


def test_label_value_too_long() -> None:
    value = "v" * 64
    obj = {"metadata": meta("cfg", labels={"zone": value})}
    assert messages(created("", "ConfigMap", obj)) == [
        f'metadata.labels: Invalid value: "{value}": must be no more than 63 bytes'
    ]


def test_bad_label_key_and_value() -> None:
    obj = {"metadata": meta("cfg", labels={"-bad": "a b"})}
    assert messages(created("", "ConfigMap", obj)) == [
        f'metadata.labels: Invalid value: "-bad": {KEY_NAME_PART}',
        f'metadata.labels: Invalid value: "a b": {LABEL_VALUE}',
    ]


def test_label_key_prefix_rules() -> None:
    prefix = "p" * 254
    obj = {"metadata": meta("cfg", labels={f"{prefix}/name": "v"})}
    assert messages(created("", "ConfigMap", obj)) == [
        f'metadata.labels: Invalid value: "{prefix}/name": prefix part must be no more than 253 '
        "bytes"
    ]


def test_annotations() -> None:
    obj = {"metadata": meta("cfg", annotations={"Example.COM/Key": "x", "big": "x" * 262144})}
    assert messages(created("", "ConfigMap", obj)) == [
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    ]
    obj = {"metadata": meta("cfg", annotations={"a b": "x"})}
    assert [c.type for c in created("", "ConfigMap", obj)] == ["FieldValueInvalid"]


def test_owner_references() -> None:
    refs = [
        {
            "apiVersion": "superedge.io/v1",
            "kind": "DeploymentGrid",
            "name": "a",
            "uid": "1",
            "controller": True,
        },
        {
            "apiVersion": "superedge.io/v1",
            "kind": "DeploymentGrid",
            "name": "b",
            "uid": "2",
            "controller": True,
        },
        {"apiVersion": "", "kind": "", "name": "", "uid": ""},
    ]
    causes = created("", "ConfigMap", {"metadata": meta("cfg", ownerReferences=refs)})
    assert [c.field for c in causes] == [
        "metadata.ownerReferences",
        "metadata.ownerReferences.apiVersion",
        "metadata.ownerReferences.kind",
        "metadata.ownerReferences.name",
        "metadata.ownerReferences.uid",
    ]
    assert causes[0].message.endswith(
        'Only one reference can have Controller set to true. Found "true" in references for '
        "DeploymentGrid/a and DeploymentGrid/b"
    )
    assert causes[1].message == 'Invalid value: "": version must not be empty'
    assert causes[3].message == 'Invalid value: "": must not be empty'


def test_finalizers() -> None:
    core = {"metadata": meta("cfg", finalizers=["my-finalizer", "example.com/ok", "kubernetes"])}
    assert messages(created("", "ConfigMap", core)) == [
        'metadata.finalizers[0]: Invalid value: "my-finalizer": name is neither a standard '
        "finalizer name nor is it fully qualified"
    ]
    # coordination.k8s.io validates with apimachinery only: no standard-name rule.
    lease = {"metadata": meta("l", finalizers=["my-finalizer"])}
    assert created("coordination.k8s.io", "Lease", lease) == []
    both = {"metadata": meta("cfg", finalizers=["orphan", "foregroundDeletion"])}
    assert messages(created("", "ConfigMap", both)) == [
        'metadata.finalizers: Invalid value: ["orphan","foregroundDeletion"]: finalizer orphan '
        "and foregroundDeletion cannot be both set"
    ]


def test_namespace_is_required_for_namespaced_and_forbidden_for_cluster_kinds() -> None:
    assert messages(created("", "ConfigMap", {"metadata": {"name": "c"}})) == [
        "metadata.namespace: Required value"
    ]
    node = {"metadata": {"name": "n1", "namespace": "default"}}
    assert messages(created("", "Node", node)) == [
        "metadata.namespace: Forbidden: not allowed on this type"
    ]


def test_metadata_identity_is_immutable() -> None:
    old = {"metadata": meta("cfg", uid="u1")}
    new = {"metadata": meta("cfg", uid="u2")}
    assert 'metadata.uid: Invalid value: "u2": field is immutable' in messages(
        updated("", "ConfigMap", old, new)
    )


def test_no_new_finalizers_while_deleting() -> None:
    old = {"metadata": meta("cfg", deletionTimestamp="2024-01-01T00:00:00Z")}
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/f"]
    assert (
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being "
        'deleted, found new finalizers []string{"example.com/f"}'
    ) in messages(updated("", "ConfigMap", old, new))


def test_unknown_kinds_get_metadata_validation_only() -> None:
    grid = {"metadata": meta("grid"), "spec": {"template": {"anything": [1, 2]}}}
    assert validate_create("superedge.io", "DeploymentGrid", grid) == []
    bad = {"metadata": meta("Grid"), "spec": {}}
    assert messages(validate_create("superedge.io", "DeploymentGrid", bad)) == [
        f'metadata.name: Invalid value: "Grid": {SUBDOMAIN}'
    ]


def test_label_selector_helper() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "zone", "operator": "In"},
            {"key": "tier", "operator": "Exists", "values": ["x"]},
            {"key": "env", "operator": "Equals", "values": ["a b"]},
        ],
    }
    assert messages(validate_label_selector(selector, "spec.selector")) == [
        "spec.selector.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when "
        "`operator` is 'Exists' or 'DoesNotExist'",
        'spec.selector.matchExpressions[2].operator: Invalid value: "Equals": not a valid '
        "selector operator",
        f'spec.selector.matchExpressions[2].values[0]: Invalid value: "a b": {LABEL_VALUE}',
    ]


# ---- Deployments, ReplicaSets, DaemonSets ---------------------------------------------


def test_valid_deployment() -> None:
    assert created("apps", "Deployment", deployment()) == []


def test_deployment_without_selector() -> None:
    obj = deployment()
    del obj["spec"]["selector"]
    causes = created("apps", "Deployment", obj)
    assert status_message("Deployment.apps", "web", causes) == (
        'Deployment.apps "web" is invalid: [spec.selector: Required value, '
        'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match '
        "template `labels`]"
    )


def test_deployment_selector_must_match_template_labels() -> None:
    obj = deployment(
        selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}
    )
    assert messages(created("apps", "Deployment", obj)) == [
        'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match '
        "template `labels`"
    ]


def test_missing_template_labels_print_as_null() -> None:
    obj = deployment()
    del obj["spec"]["template"]["metadata"]["labels"]
    assert messages(created("apps", "Deployment", obj)) == [
        "spec.template.metadata.labels: Invalid value: null: `selector` does not match template "
        "`labels`"
    ]


def test_empty_and_unparseable_selectors() -> None:
    empty = deployment(selector={})
    assert messages(created("apps", "Deployment", empty)) == [
        "spec.selector: Invalid value: {}: empty selector is invalid for deployment"
    ]
    broken = deployment(selector={"matchExpressions": [{"key": "app", "operator": "Is"}]})
    assert messages(created("apps", "Deployment", broken))[-1] == (
        'spec.selector: Invalid value: {"matchExpressions":[{"key":"app","operator":"Is"}]}: '
        "invalid label selector"
    )


def test_deployment_spec_rules() -> None:
    obj = deployment(replicas=-1, minReadySeconds=700, revisionHistoryLimit=-2)
    assert messages(created("apps", "Deployment", obj)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
    ]


def test_rolling_update_may_not_have_both_zero() -> None:
    obj = deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    assert messages(created("apps", "Deployment", obj)) == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when '
        "`maxSurge` is 0"
    ]
    obj = deployment(strategy={"rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}})
    assert messages(created("apps", "Deployment", obj)) == [
        'spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": a valid percent string must '
        "be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
        "validation is '[0-9]+%')",
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater '
        "than 100%",
    ]


def test_deployment_strategy_types() -> None:
    recreate = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert messages(created("apps", "Deployment", recreate)) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
        "'Recreate'"
    ]
    other = deployment(strategy={"type": "BlueGreen"})
    assert messages(created("apps", "Deployment", other)) == [
        'spec.strategy: Unsupported value: {"type":"BlueGreen"}: supported values: "Recreate", '
        '"RollingUpdate"'
    ]


def test_workload_templates_must_restart_always() -> None:
    assert pod_template_errors(restartPolicy="Never") == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]
    assert pod_template_errors(activeDeadlineSeconds=5) == [
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in "
        "ReplicaSet is not Supported"
    ]


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web", "tier": "front"}})
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    causes = updated("apps", "Deployment", old, new)
    assert status_message("Deployment.apps", "web", causes) == (
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: '
        '{"matchLabels":{"app":"web","tier":"front"}}: field is immutable'
    )


def test_deployment_update_that_keeps_the_selector() -> None:
    old = deployment()
    new = deployment(replicas=5)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert updated("apps", "Deployment", old, new) == []


def test_replica_set_rules() -> None:
    rs = deployment()
    assert created("apps", "ReplicaSet", rs) == []
    rs = deployment(selector={})
    assert messages(created("apps", "ReplicaSet", rs)) == [
        "spec.selector: Invalid value: {}: empty selector is invalid for deployment"
    ]
    old, new = deployment(), deployment(selector={"matchLabels": {"app": "web", "x": "y"}})
    new["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert [c.field for c in updated("apps", "ReplicaSet", old, new)] == ["spec.selector"]


def test_daemon_set_rules() -> None:
    ds = deployment()
    assert created("apps", "DaemonSet", ds) == []
    ds = deployment(updateStrategy={"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
    assert messages(created("apps", "DaemonSet", ds)) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when "
        "maxUnavailable is non-zero"
    ]


# ---- Pod specs (through a Deployment template and through Pods) -----------------------


def test_containers_are_required() -> None:
    assert pod_template_errors(containers=[]) == ["spec.template.spec.containers: Required value"]


def test_container_names_and_images() -> None:
    errors = pod_template_errors(
        containers=[{"name": "App", "image": "a"}, {"name": "app2"}],
        initContainers=[{"name": "app2", "image": "b"}],
    )
    assert errors == [
        f'spec.template.spec.containers[0].name: Invalid value: "App": {LABEL}',
        "spec.template.spec.containers[1].image: Required value",
        'spec.template.spec.initContainers[0].name: Duplicate value: "app2"',
    ]


def test_container_ports() -> None:
    ports = [
        {"containerPort": 70000, "name": "http"},
        {"containerPort": 80, "name": "http", "protocol": "HTTP"},
        {"containerPort": 81, "name": "Web_1"},
        {"name": "metrics"},
    ]
    errors = pod_template_errors(containers=[container(ports=ports)])
    base = "spec.template.spec.containers[0].ports"
    assert errors == [
        f"{base}[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        f'{base}[1].name: Duplicate value: "http"',
        f'{base}[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        f'{base}[2].name: Invalid value: "Web_1": must contain only alpha-numeric characters '
        "(a-z, 0-9), and hyphens (-)",
        f"{base}[3].containerPort: Required value",
    ]


def test_requests_may_not_exceed_limits() -> None:
    resources = {"limits": {"cpu": "500m"}, "requests": {"cpu": "1000m"}}
    assert pod_template_errors(containers=[container(resources=resources)]) == [
        'spec.template.spec.containers[0].resources.requests: Invalid value: "1": must be less '
        "than or equal to cpu limit of 500m"
    ]


def test_resource_names_and_quantities() -> None:
    resources = {"limits": {"gpu": "1", "example.com/dongle": "1.5"}, "requests": {"cpu": "-1"}}
    base = "spec.template.spec.containers[0].resources"
    assert pod_template_errors(containers=[container(resources=resources)]) == [
        f'{base}.limits[gpu]: Invalid value: "gpu": must be a standard resource type or fully '
        "qualified",
        f'{base}.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        f'{base}.limits[example.com/dongle]: Invalid value: "1500m": must be an integer',
        f'{base}.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0',
    ]


def test_volumes_and_mounts() -> None:
    volumes = [
        {"name": "data", "emptyDir": {}},
        {"name": "data", "emptyDir": {}},
        {"name": "both", "emptyDir": {}, "configMap": {"name": "c"}},
        {"name": "cfg", "configMap": {"name": "", "defaultMode": 1000}},
    ]
    mounts = [{"name": "logs", "mountPath": "/logs"}, {"name": "data", "mountPath": "/logs"}]
    base = "spec.template.spec"
    assert pod_template_errors(volumes=volumes, containers=[container(volumeMounts=mounts)]) == [
        f'{base}.volumes[1].name: Duplicate value: "data"',
        f"{base}.volumes[2].configMap: Forbidden: may not specify more than 1 volume type",
        f"{base}.volumes[3].configMap.name: Required value",
        f"{base}.volumes[3].configMap.defaultMode: Invalid value: 1000: must be a number "
        "between 0 and 0777 (octal), both inclusive",
        f'{base}.containers[0].volumeMounts[0].name: Not found: "logs"',
        f'{base}.containers[0].volumeMounts[1].mountPath: Invalid value: "/logs": must be unique',
    ]


def test_env_vars() -> None:
    env = [
        {"name": "A=B", "value": "x"},
        {"name": "NODE", "valueFrom": {}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.nodeIP"}}},
        {"name": "CFG", "value": "x", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
    ]
    base = "spec.template.spec.containers[0].env"
    assert pod_template_errors(containers=[container(env=env)]) == [
        f'{base}[0].name: Invalid value: "A=B": a valid environment variable name must consist '
        "only of printable ASCII characters other than '='",
        f'{base}[1].valueFrom: Invalid value: "": must specify one of: `fieldRef`, '
        "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        f'{base}[2].valueFrom.fieldRef.fieldPath: Unsupported value: "status.nodeIP": supported '
        'values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", '
        '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", '
        '"status.podIPs"',
        f'{base}[3].valueFrom: Invalid value: "": may not be specified when `value` is not empty',
    ]


def test_probes() -> None:
    probes = {
        "livenessProbe": {"httpGet": {"port": 0}, "successThreshold": 2},
        "readinessProbe": {},
        "startupProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
    }
    base = "spec.template.spec.containers[0]"
    assert pod_template_errors(containers=[container(**probes)]) == [
        f"{base}.livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, "
        "inclusive",
        f"{base}.livenessProbe.successThreshold: Invalid value: 2: must be 1",
        f"{base}.readinessProbe: Required value: must specify a handler type",
        f"{base}.startupProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
    ]


def test_pod_level_fields() -> None:
    errors = pod_template_errors(
        dnsPolicy="Cluster",
        nodeSelector={"zone": "a b"},
        tolerations=[{"operator": "Equal", "value": "x"}],
        serviceAccountName="Bad",
    )
    base = "spec.template.spec"
    assert errors == [
        f'{base}.dnsPolicy: Unsupported value: "Cluster": supported values: '
        '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
        f'{base}.nodeSelector: Invalid value: "a b": {LABEL_VALUE}',
        f'{base}.serviceAccountName: Invalid value: "Bad": {SUBDOMAIN}',
        f'{base}.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when '
        '`key` is empty, which means "match all values and all keys"',
    ]


def test_image_pull_policy_and_termination_message_policy() -> None:
    c = container(imagePullPolicy="Sometimes", terminationMessagePolicy="Log")
    base = "spec.template.spec.containers[0]"
    assert pod_template_errors(containers=[c]) == [
        f'{base}.terminationMessagePolicy: Unsupported value: "Log": supported values: "File", '
        '"FallbackToLogsOnError"',
        f'{base}.imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"IfNotPresent", "Never"',
    ]


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("p"), "spec": {"containers": [container()], **spec}}


def test_pods() -> None:
    assert created("", "Pod", pod()) == []
    assert messages(created("", "Pod", pod(restartPolicy="Sometimes"))) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"'
    ]
    spaced = pod(containers=[container(image=" nginx")])
    assert messages(created("", "Pod", spaced)) == [
        'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing '
        "whitespace"
    ]


def test_pod_update_may_only_change_images() -> None:
    old = pod()
    new = pod(containers=[container(image="nginx:1.26")])
    assert updated("", "Pod", old, new) == []
    moved = pod(nodeName="other")
    causes = updated("", "Pod", pod(), moved)
    assert [c.field for c in causes] == ["spec"]
    assert causes[0].message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    )


def test_pod_template_in_pod_template_kind_is_not_validated_here() -> None:
    # PodTemplate is not served by kubesim: metadata only.
    assert validate_create("", "PodTemplate", {"metadata": meta("t"), "template": {}}) == []


# ---- StatefulSets ---------------------------------------------------------------------


def statefulset(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "db"}},
        "serviceName": "db",
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [container()]}},
    }
    body.update(spec)
    return {"metadata": meta("db"), "spec": body}


def test_valid_statefulset() -> None:
    assert created("apps", "StatefulSet", statefulset()) == []
    assert created("apps", "StatefulSet", statefulset(serviceName="")) == []


def test_statefulset_spec_rules() -> None:
    obj = statefulset(
        podManagementPolicy="Random",
        updateStrategy={"type": "OnDelete", "rollingUpdate": {"partition": 1}},
        selector={"matchLabels": {"app": "other"}},
    )
    assert messages(created("apps", "StatefulSet", obj)) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
        'spec.updateStrategy.rollingUpdate: Invalid value: {"partition":1}: only allowed for '
        "updateStrategy 'RollingUpdate'",
        'spec.template.metadata.labels: Invalid value: {"app":"db"}: `selector` does not match '
        "template `labels`",
    ]


def test_statefulset_template_podspec_is_not_validated_upstream() -> None:
    obj = statefulset()
    obj["spec"]["template"]["spec"]["containers"] = [{"name": "no-image"}]
    assert created("apps", "StatefulSet", obj) == []


def test_statefulset_forbidden_update() -> None:
    old = statefulset()
    new = statefulset(serviceName="db-headless")
    causes = updated("apps", "StatefulSet", old, new)
    assert status_message("StatefulSet.apps", "db", causes) == (
        'StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec for '
        "fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
    )
    assert [
        c.field
        for c in updated("apps", "StatefulSet", statefulset(), statefulset(revisionHistoryLimit=3))
    ] == ["spec"]


def test_statefulset_allowed_update() -> None:
    new = statefulset(replicas=3, minReadySeconds=5, updateStrategy={"type": "OnDelete"})
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:17"
    assert updated("apps", "StatefulSet", statefulset(), new) == []


# ---- Services -------------------------------------------------------------------------


def service(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("svc"), "spec": spec}


def allocated(obj: dict[str, Any], ip: str = "10.96.0.10") -> dict[str, Any]:
    apply_defaults("", "Service", obj)
    obj["spec"]["clusterIP"] = ip
    obj["spec"]["clusterIPs"] = [ip]
    return obj


def test_valid_services() -> None:
    assert created("", "Service", service(selector={"app": "web"}, ports=[{"port": 80}])) == []
    assert created("", "Service", service(clusterIP="None", selector={"app": "db"})) == []
    external = service(type="ExternalName", externalName="db.example.com.")
    assert created("", "Service", external) == []
    lb = service(type="LoadBalancer", ports=[{"port": 443, "nodePort": 30443}])
    assert created("", "Service", lb) == []


def test_service_ports() -> None:
    assert messages(created("", "Service", service())) == ["spec.ports: Required value"]
    ports = [
        {"port": 80},
        {"name": "http", "port": 0, "protocol": "HTTP"},
        {"name": "http", "port": 81, "targetPort": "Web_Port"},
    ]
    assert messages(created("", "Service", service(ports=ports))) == [
        "spec.ports[0].name: Required value",
        "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        # targetPort defaulted from the (invalid) port, as upstream does.
        "spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[2].name: Duplicate value: "http"',
        'spec.ports[2].targetPort: Invalid value: "Web_Port": must contain only alpha-numeric '
        "characters (a-z, 0-9), and hyphens (-)",
    ]


def test_service_duplicate_ports_and_node_ports() -> None:
    ports = [{"name": "a", "port": 80, "nodePort": 30000}, {"name": "b", "port": 80}]
    assert messages(created("", "Service", service(ports=ports))) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        'spec.ports[1]: Duplicate value: {"protocol":"TCP","port":80,"targetPort":0}',
    ]


def test_service_type_name_and_selector() -> None:
    obj = {
        "metadata": meta("my_svc"),
        "spec": {"type": "Internal", "ports": [{"port": 80}], "selector": {"app": "a b"}},
    }
    assert messages(created("", "Service", obj)) == [
        f'metadata.name: Invalid value: "my_svc": {DNS1035}',
        f'spec.selector: Invalid value: "a b": {LABEL_VALUE}',
        'spec.type: Unsupported value: "Internal": supported values: "ClusterIP", '
        '"ExternalName", "LoadBalancer", "NodePort"',
    ]


def test_external_name_requires_a_name() -> None:
    assert messages(created("", "Service", service(type="ExternalName"))) == [
        "spec.externalName: Required value"
    ]


def test_cluster_ip_may_not_change_once_set() -> None:
    old = allocated(service(selector={"app": "web"}, ports=[{"port": 80}]))
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"  # the client only sets the singular field
    prepare_service_update(old, new)
    apply_defaults("", "Service", new)
    causes = validate_update("", "Service", old, new)
    assert status_message("Service", "svc", causes) == (
        'Service "svc" is invalid: spec.clusterIPs[0]: Invalid value: ["10.96.0.11"]: may not '
        "change once set"
    )


def test_unchanged_cluster_ip_and_omitted_cluster_ip_are_fine() -> None:
    old = allocated(service(selector={"app": "web"}, ports=[{"port": 80}]))
    new = {"metadata": meta("svc"), "spec": {"selector": {"app": "web"}, "ports": [{"port": 81}]}}
    prepare_service_update(old, new)
    apply_defaults("", "Service", new)
    assert validate_update("", "Service", old, new) == []


def test_headless_to_cluster_ip_is_a_change() -> None:
    old = service(clusterIP="None", selector={"app": "db"}, ports=[{"port": 80}])
    apply_defaults("", "Service", old)
    new = allocated(service(selector={"app": "db"}, ports=[{"port": 80}]))
    assert messages(validate_update("", "Service", old, new)) == [
        'spec.clusterIPs[0]: Invalid value: ["10.96.0.10"]: may not change once set'
    ]


def test_cluster_ip_fields_must_agree() -> None:
    obj = service(ports=[{"port": 80}])
    apply_defaults("", "Service", obj)
    obj["spec"]["clusterIP"] = "10.96.0.1"
    obj["spec"]["clusterIPs"] = ["10.96.0.2"]
    assert messages(validate_create("", "Service", obj)) == [
        'spec.clusterIPs: Invalid value: ["10.96.0.2"]: first value must match `clusterIP`'
    ]


def test_load_balancer_health_check_node_port() -> None:
    lb = service(type="LoadBalancer", externalTrafficPolicy="Local", ports=[{"port": 80}])
    assert messages(created("", "Service", lb)) == ["spec.healthCheckNodePort: Required value"]
    node_port = service(type="NodePort", ports=[{"port": 80}], allocateLoadBalancerNodePorts=False)
    assert messages(created("", "Service", node_port)) == [
        "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is "
        "'LoadBalancer'"
    ]


def test_service_update_revalidates_metadata() -> None:
    old = allocated(service(ports=[{"port": 80}]))
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"zone": "a b"}
    assert f'metadata.labels: Invalid value: "a b": {LABEL_VALUE}' in messages(
        validate_update("", "Service", old, new)
    )


# ---- Namespaces, Nodes, ConfigMaps, Secrets, Leases -----------------------------------


def test_namespaces() -> None:
    assert created("", "Namespace", {"metadata": {"name": "edge"}}) == []
    ns = {"metadata": {"name": "edge"}, "spec": {"finalizers": ["custom"]}}
    assert messages(created("", "Namespace", ns)) == [
        'spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor '
        "is it fully qualified"
    ]


def test_nodes() -> None:
    node = {
        "metadata": {"name": "edge-1"},
        "spec": {"taints": [{"key": "k", "effect": "Evict"}]},
        "status": {"capacity": {"cpu": "-1"}},
    }
    assert messages(created("", "Node", node)) == [
        'metadata.taints[0].effect: Unsupported value: "Evict": supported values: "NoSchedule", '
        '"PreferNoSchedule", "NoExecute"',
        'status.capacity.cpu: Invalid value: "-1": must be greater than or equal to 0',
        # allocatable is defaulted from capacity before validation.
        'status.allocatable.cpu: Invalid value: "-1": must be greater than or equal to 0',
    ]
    old = {"metadata": {"name": "n", "resourceVersion": "1"}, "spec": {"podCIDRs": ["10.0.0.0/24"]}}
    new = {"metadata": {"name": "n", "resourceVersion": "1"}, "spec": {"podCIDRs": ["10.0.1.0/24"]}}
    assert messages(updated("", "Node", old, new)) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid'
    ]


def test_config_maps() -> None:
    cm = {"metadata": meta("cfg"), "data": {"a b": "x", "ok": "y"}, "binaryData": {"ok": "eQ=="}}
    assert messages(created("", "ConfigMap", cm)) == [
        'data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric '
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
        "used for validation is '[-._a-zA-Z0-9]+')",
        'data[ok]: Invalid value: "ok": duplicate of key present in binaryData',
    ]
    big = {"metadata": meta("cfg"), "data": {"k": "x" * (1024 * 1024 + 1)}}
    assert messages(created("", "ConfigMap", big)) == [
        ": Too long: may not be more than 1048576 bytes"
    ]


def test_immutable_config_map() -> None:
    old = {"metadata": meta("cfg"), "data": {"a": "1"}, "immutable": True}
    new = {"metadata": meta("cfg"), "data": {"a": "2"}, "immutable": True}
    assert messages(updated("", "ConfigMap", old, new)) == [
        "data: Forbidden: field is immutable when `immutable` is set"
    ]


def test_secrets() -> None:
    tls = {"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}
    assert messages(created("", "Secret", tls)) == ["data[tls.key]: Required value"]
    old = {"metadata": meta("s"), "data": {}}
    new = {"metadata": meta("s"), "type": "kubernetes.io/basic-auth", "data": {"username": "eA=="}}
    assert messages(updated("", "Secret", old, new)) == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable'
    ]


def test_leases() -> None:
    lease = {"metadata": meta("servicegroup-controller"), "spec": {"leaseDurationSeconds": 0}}
    assert messages(created("coordination.k8s.io", "Lease", lease)) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    ]
    ok = {"metadata": meta("l"), "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    assert created("coordination.k8s.io", "Lease", ok) == []


def test_controller_revisions() -> None:
    revision = {"metadata": meta("rev"), "revision": 1}
    assert messages(created("apps", "ControllerRevision", revision)) == [
        "data: Required value: data is mandatory"
    ]
    old = {"metadata": meta("rev"), "revision": 1, "data": {"a": 1}}
    new = {"metadata": meta("rev"), "revision": 1, "data": {"a": 2}}
    assert messages(updated("apps", "ControllerRevision", old, new)) == [
        'data: Invalid value: {"a":2}: field is immutable'
    ]


def test_crd_names_are_plural_dot_group() -> None:
    crd = {
        "metadata": {"name": "deploymentgrid.superedge.io"},
        "spec": {"group": "superedge.io", "names": {"plural": "deploymentgrids"}},
    }
    assert messages(validate_create("apiextensions.k8s.io", "CustomResourceDefinition", crd)) == [
        'metadata.name: Invalid value: "deploymentgrid.superedge.io": must be '
        'spec.names.plural+"."+spec.group'
    ]
    crd["metadata"]["name"] = "deploymentgrids.superedge.io"
    assert validate_create("apiextensions.k8s.io", "CustomResourceDefinition", crd) == []


# ---- Endpoints and EndpointSlices -----------------------------------------------------


def test_endpoints() -> None:
    ep = {
        "metadata": meta("svc"),
        "subsets": [
            {"ports": [{"port": 80}]},
            {"addresses": [{"ip": "10.0.0.300"}, {"ip": "127.0.0.1"}], "ports": [{"port": 80}]},
        ],
    }
    assert messages(created("", "Endpoints", ep)) == [
        "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`",
        'subsets[1].addresses[0].ip: Invalid value: "10.0.0.300": must be a valid IP address, '
        "(e.g. 10.9.8.7 or 2001:db8::ffff)",
        'subsets[1].addresses[0].ip: Invalid value: "10.0.0.300": must be a valid IP address',
        'subsets[1].addresses[1].ip: Invalid value: "127.0.0.1": may not be in the loopback '
        "range (127.0.0.0/8, ::1/128)",
    ]


def test_endpoint_slices() -> None:
    eps = {
        "metadata": meta("svc-abc"),
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "edge-1"}, {"addresses": []}],
        "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81, "protocol": "ICMP"}],
    }
    assert messages(created("discovery.k8s.io", "EndpointSlice", eps)) == [
        "endpoints[1].addresses: Required value: must contain at least 1 address",
        'ports[1].name: Duplicate value: "http"',
        'ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ]
    v6 = {"metadata": meta("s"), "addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}]}
    assert messages(created("discovery.k8s.io", "EndpointSlice", v6)) == [
        'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address'
    ]
    old = {"metadata": meta("s"), "addressType": "IPv4"}
    new = {"metadata": meta("s"), "addressType": "IPv6"}
    assert messages(updated("discovery.k8s.io", "EndpointSlice", old, new)) == [
        'addressType: Invalid value: "IPv6": field is immutable'
    ]


# ---- SuperEdge documentation examples (must be accepted unchanged) --------------------


def superedge_deployment_template() -> dict[str, Any]:
    env = [
        {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
        for name, path in (
            ("NODE_NAME", "spec.nodeName"),
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_IP", "status.podIP"),
        )
    ]
    return {
        "replicas": 2,
        "selector": {"matchLabels": {"appGrid": "echo"}},
        "strategy": {},
        "template": {
            "metadata": {"creationTimestamp": None, "labels": {"appGrid": "echo"}},
            "spec": {
                "containers": [
                    {
                        "image": "superedge/echoserver:2.2",
                        "name": "echo",
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "env": env,
                        "resources": {},
                    }
                ]
            },
        },
    }


def test_superedge_deploymentgrid_child_is_accepted() -> None:
    child = {"metadata": meta("deploymentgrid-demo-zone1"), "spec": superedge_deployment_template()}
    assert created("apps", "Deployment", child) == []


def test_superedge_statefulsetgrid_child_is_accepted() -> None:
    spec = superedge_deployment_template()
    del spec["strategy"]
    spec["serviceName"] = "servicegrid-demo-svc"
    spec["template"]["spec"]["terminationGracePeriodSeconds"] = 10
    child = {"metadata": meta("statefulsetgrid-demo-zone1"), "spec": spec}
    assert created("apps", "StatefulSet", child) == []


def test_superedge_servicegrid_child_is_accepted() -> None:
    svc = {
        "metadata": meta("servicegrid-demo-svc", annotations={"topologyKeys": '["zone"]'}),
        "spec": {
            "selector": {"appGrid": "echo"},
            "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
        },
    }
    assert created("", "Service", svc) == []


# ---- Robustness -----------------------------------------------------------------------

KINDS = [
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("", "Pod"),
    ("", "Service"),
    ("", "Secret"),
    ("", "ConfigMap"),
    ("", "Node"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("", "Endpoints"),
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "spec",
                    "template",
                    "containers",
                    "ports",
                    "selector",
                    "matchLabels",
                    "name",
                    "image",
                    "type",
                    "metadata",
                    "labels",
                    "data",
                    "subsets",
                    "endpoints",
                    "port",
                    "resources",
                    "limits",
                    "volumes",
                    "strategy",
                    "clusterIPs",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    old=st.dictionaries(st.sampled_from(["spec", "metadata", "data"]), JSON, max_size=3),
    new=st.dictionaries(st.sampled_from(["spec", "metadata", "data"]), JSON, max_size=3),
)
def test_validation_never_crashes_on_arbitrary_json(
    kind: tuple[str, str], old: dict[str, Any], new: dict[str, Any]
) -> None:
    group, name = kind
    before = copy.deepcopy(new)
    causes = validate_create(group, name, new) + validate_update(group, name, old, new)
    assert all(isinstance(c, Cause) and c.message for c in causes)
    assert new == before  # validation is pure


def test_crd_name_rule_is_reported_once(local: LocalClient) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "wrong.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    with pytest.raises(ApiError) as raised:
        local.create("customresourcedefinitions", crd)
    causes = raised.value.status["details"]["causes"]
    assert causes == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "wrong.example.com": must be spec.names.plural+"."'
            "+spec.group",
            "field": "metadata.name",
        }
    ]
    crd["metadata"]["name"] = "things.example.com"
    created = local.create("customresourcedefinitions", crd)
    changed = {**created, "spec": {**created["spec"], "group": "other.example.com"}}
    with pytest.raises(ApiError) as raised:
        local.update("customresourcedefinitions", changed)
    messages = [c["message"] for c in raised.value.status["details"]["causes"]]
    assert 'Invalid value: "other.example.com": field is immutable' in messages
