"""kubesim defaulting: every default kube-apiserver applies, and idempotence."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.kubesim import quantity
from servicegroup.kubesim.defaults import (
    apply_defaults,
    defaults_for_template,
    needs_cluster_ip,
    prepare_service_update,
)
from servicegroup.kubesim.defaults_pod import image_tag, pod_qos_class


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx:1.25", **extra}


def deployment(spec: dict[str, Any] | None = None, **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container()], **pod_spec},
            },
            **(spec or {}),
        },
    }


def defaulted(group: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    apply_defaults(group, kind, obj)
    return obj


def pod(**spec: Any) -> dict[str, Any]:
    body = {"containers": [container()], **spec}
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": body}
    return defaulted("", "Pod", obj)


def template_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


# ---- PodSpec --------------------------------------------------------------------------


def test_pod_template_gets_podspec_and_container_defaults() -> None:
    spec = template_spec(defaulted("apps", "Deployment", deployment()))
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "IfNotPresent"
    # A non-pointer struct Go always serializes.
    assert c["resources"] == {}


def test_enable_service_links_is_defaulted_for_pods_only() -> None:
    assert pod()["spec"]["enableServiceLinks"] is True
    assert "enableServiceLinks" not in template_spec(defaulted("apps", "Deployment", deployment()))


def test_explicit_podspec_values_are_kept() -> None:
    spec = template_spec(
        defaulted(
            "apps",
            "Deployment",
            deployment(
                restartPolicy="Never",
                dnsPolicy="Default",
                terminationGracePeriodSeconds=0,
                schedulerName="other",
            ),
        )
    )
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["schedulerName"]) == (
        "Never",
        "Default",
        "other",
    )
    assert spec["terminationGracePeriodSeconds"] == 0


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("docker.io/library/nginx", "Always"),
        ("localhost:5000/nginx", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx:1.25", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("Nginx", "IfNotPresent"),  # unparseable reference
    ],
)
def test_image_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    spec = pod(containers=[{"name": "a", "image": image}])["spec"]
    assert spec["containers"][0]["imagePullPolicy"] == policy


def test_explicit_pull_policy_is_kept() -> None:
    spec = pod(containers=[container(imagePullPolicy="Never")])["spec"]
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


def test_image_tag_distinguishes_registry_port_from_tag() -> None:
    assert image_tag("registry:5000/team/app") == "latest"
    assert image_tag("registry:5000/team/app:v2") == "v2"


def test_container_ports_env_and_init_containers() -> None:
    env = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    spec = pod(
        containers=[container(ports=[{"containerPort": 80}], env=env)],
        initContainers=[{"name": "init", "image": "busybox", "ports": [{"containerPort": 9}]}],
    )["spec"]
    assert spec["containers"][0]["ports"][0]["protocol"] == "TCP"
    assert spec["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    init = spec["initContainers"][0]
    assert init["ports"][0]["protocol"] == "TCP"
    assert init["imagePullPolicy"] == "Always"
    assert init["terminationMessagePolicy"] == "File"


def test_probe_defaults() -> None:
    probes = {
        "livenessProbe": {"httpGet": {"port": 80}},
        "readinessProbe": {"grpc": {"port": 9000}},
        "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
    }
    c = pod(containers=[container(**probes)])["spec"]["containers"][0]
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert c["startupProbe"]["periodSeconds"] == 5


def test_lifecycle_http_get_defaults() -> None:
    lifecycle = {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}}
    c = pod(containers=[container(lifecycle=lifecycle)])["spec"]["containers"][0]
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/stop", "scheme": "HTTP"}


def test_volume_defaults() -> None:
    volumes = [
        {"name": "scratch"},
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
        {"name": "host", "hostPath": {"path": "/var/log"}},
        {
            "name": "info",
            "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]},
        },
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
    ]
    by_name = {v["name"]: v for v in pod(volumes=volumes)["spec"]["volumes"]}
    assert by_name["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert by_name["cfg"]["configMap"]["defaultMode"] == 420
    assert by_name["sec"]["secret"]["defaultMode"] == 0o400
    assert by_name["host"]["hostPath"]["type"] == ""
    info = by_name["info"]["downwardAPI"]
    assert info["defaultMode"] == 420
    assert info["items"][0]["fieldRef"]["apiVersion"] == "v1"
    projected = by_name["token"]["projected"]
    assert projected["defaultMode"] == 420
    assert projected["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600


def test_pod_requests_default_to_limits_but_template_requests_do_not() -> None:
    limits = {"cpu": "1", "memory": "128Mi"}
    resources = {"limits": dict(limits), "requests": {"cpu": "100m"}}
    c = pod(containers=[container(resources=copy.deepcopy(resources))])["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    obj = deployment(containers=[container(resources={"limits": dict(limits)})])
    c = template_spec(defaulted("apps", "Deployment", obj))["containers"][0]
    assert "requests" not in c["resources"]


def test_host_network_pods_get_host_ports() -> None:
    spec = pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 8080}])])["spec"]
    assert spec["containers"][0]["ports"][0]["hostPort"] == 8080


def test_quantities_are_stored_canonically() -> None:
    resources = {"limits": {"cpu": 0.5, "memory": "1024Mi"}, "requests": {"cpu": "1000m"}}
    c = pod(containers=[container(resources=resources)])["spec"]["containers"][0]
    assert c["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "1", "memory": "1Gi"},
    }


def test_pod_qos_class() -> None:
    guaranteed = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert pod_qos_class(pod(containers=[container(resources=guaranteed)])["spec"]) == "Guaranteed"
    burstable = {"requests": {"cpu": "100m"}}
    assert pod_qos_class(pod(containers=[container(resources=burstable)])["spec"]) == "Burstable"
    assert pod_qos_class(pod()["spec"]) == "BestEffort"


# ---- Quantities -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("0.5", "500m"),
        (0.25, "250m"),
        (1, "1"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("0.1m", "1m"),  # rounded up to milli precision
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Ki", "512"),  # binary below 1024 prints as decimal
        ("100Mi", "100Mi"),
        ("1000", "1k"),
        ("1500000", "1500k"),
        ("1e3", "1e3"),
        ("12e2", "1200"),
        ("0", "0"),
        ("2G", "2G"),
    ],
)
def test_canonical_quantities(raw: Any, stored: str) -> None:
    assert quantity.canonicalize(raw) == stored


def test_unparseable_quantity_is_left_alone() -> None:
    assert quantity.canonicalize("lots") == "lots"
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        quantity.parse_quantity("1.2.3")


@settings(max_examples=200, deadline=None)
@given(
    number=st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False),
    suffix=st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "e3", "e-2"]),
)
def test_canonical_form_is_a_fixed_point(number: Any, suffix: str) -> None:
    once = quantity.canonicalize(f"{number}{suffix}")
    assert quantity.canonicalize(once) == once
    # Printing never changes the (milli-rounded) value.
    rounded = quantity.round_up_milli(quantity.parse_quantity(f"{number}{suffix}"))
    assert quantity.parse_quantity(once).value == rounded.value


# ---- Workloads ------------------------------------------------------------------------


def test_deployment_defaults() -> None:
    spec = defaulted("apps", "Deployment", deployment())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert "minReadySeconds" not in spec


def test_deployment_keeps_zero_replicas_and_recreate() -> None:
    spec = defaulted(
        "apps", "Deployment", deployment({"replicas": 0, "strategy": {"type": "Recreate"}})
    )["spec"]
    assert spec["replicas"] == 0
    assert spec["strategy"] == {"type": "Recreate"}


def test_partial_rolling_update_is_completed() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    spec = defaulted("apps", "Deployment", deployment({"strategy": strategy}))["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}


def test_superedge_style_template_with_null_timestamp_and_empty_strategy() -> None:
    obj = deployment({"strategy": {}})
    obj["spec"]["template"]["metadata"]["creationTimestamp"] = None
    template_spec(obj)["containers"][0]["resources"] = {}
    spec = defaulted("apps", "Deployment", obj)["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": "25%"}
    # Since Kubernetes 1.33 a zero creationTimestamp is omitted instead of written as null.
    assert spec["template"]["metadata"] == {"labels": {"app": "web"}}


def test_template_metadata_is_always_present() -> None:
    template: dict[str, Any] = {"spec": {"containers": [container()]}}
    defaults_for_template(template)
    assert template["metadata"] == {}
    assert template["spec"]["dnsPolicy"] == "ClusterFirst"


def test_replica_set_and_replication_controller_defaults() -> None:
    rs = {"spec": {"template": {"spec": {"containers": [container()]}}}}
    assert defaulted("apps", "ReplicaSet", rs)["spec"]["replicas"] == 1
    rc = {"metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}
    defaulted("", "ReplicationController", rc)
    assert rc["spec"]["selector"] == {"a": "b"}
    assert rc["metadata"]["labels"] == {"a": "b"}
    assert rc["spec"]["replicas"] == 1


def statefulset(**spec: Any) -> dict[str, Any]:
    body = {
        "selector": {"matchLabels": {"app": "db"}},
        "serviceName": "db",
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [container()]}},
        **spec,
    }
    obj = {"metadata": {"name": "db", "namespace": "default"}, "spec": body}
    return defaulted("apps", "StatefulSet", obj)


def test_statefulset_defaults() -> None:
    spec = statefulset()["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    assert "minReadySeconds" not in spec
    assert template_spec({"spec": spec})["terminationGracePeriodSeconds"] == 30


def test_statefulset_explicit_rolling_update_type_gets_no_partition() -> None:
    spec = statefulset(updateStrategy={"type": "RollingUpdate"})["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    spec = statefulset(updateStrategy={"type": "OnDelete"})["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}


def test_statefulset_volume_claim_templates() -> None:
    claim = {
        "metadata": {"name": "data", "creationTimestamp": None},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1024Mi"}},
        },
    }
    stored = statefulset(volumeClaimTemplates=[claim])["spec"]["volumeClaimTemplates"][0]
    assert stored == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Pending"},
    }


def test_daemonset_defaults() -> None:
    obj = {"spec": {"template": {"spec": {"containers": [container()]}}}}
    spec = defaulted("apps", "DaemonSet", obj)["spec"]
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert spec["revisionHistoryLimit"] == 10


# ---- Services -------------------------------------------------------------------------


def service(**spec: Any) -> dict[str, Any]:
    obj = {"metadata": {"name": "svc", "namespace": "default"}, "spec": spec}
    return defaulted("", "Service", obj)


def test_cluster_ip_service_defaults() -> None:
    spec = service(selector={"app": "web"}, ports=[{"port": 80}])["spec"]
    assert spec == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "sessionAffinity": "None",
        "type": "ClusterIP",
        "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv4"],
    }
    assert "externalTrafficPolicy" not in spec


def test_named_target_port_is_kept() -> None:
    spec = service(ports=[{"port": 80, "targetPort": "http", "protocol": "UDP"}])["spec"]
    assert spec["ports"] == [{"port": 80, "targetPort": "http", "protocol": "UDP"}]


def test_node_port_and_load_balancer_defaults() -> None:
    node_port = service(type="NodePort", ports=[{"port": 80}])["spec"]
    assert node_port["externalTrafficPolicy"] == "Cluster"
    assert "allocateLoadBalancerNodePorts" not in node_port
    lb = service(type="LoadBalancer", ports=[{"port": 80}])["spec"]
    assert lb["externalTrafficPolicy"] == "Cluster"
    assert lb["allocateLoadBalancerNodePorts"] is True
    external_ips = service(externalIPs=["192.0.2.1"], ports=[{"port": 80}])["spec"]
    assert external_ips["externalTrafficPolicy"] == "Cluster"


def test_headless_services() -> None:
    with_selector = service(clusterIP="None", selector={"app": "db"})["spec"]
    assert with_selector["clusterIPs"] == ["None"]
    assert with_selector["ipFamilyPolicy"] == "SingleStack"
    assert with_selector["ipFamilies"] == ["IPv4"]
    selectorless = service(clusterIP="None")["spec"]
    assert selectorless["ipFamilyPolicy"] == "RequireDualStack"
    assert selectorless["ipFamilies"] == ["IPv4", "IPv6"]


def test_external_name_service_gets_no_ip_fields() -> None:
    spec = service(type="ExternalName", externalName="example.com")["spec"]
    assert spec == {
        "type": "ExternalName",
        "externalName": "example.com",
        "sessionAffinity": "None",
    }


def test_session_affinity_config() -> None:
    spec = service(sessionAffinity="ClientIP", ports=[{"port": 80}])["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    cfg = {"clientIP": {"timeoutSeconds": 5}}
    spec = service(sessionAffinityConfig=cfg, ports=[{"port": 80}])["spec"]
    assert "sessionAffinityConfig" not in spec  # dropped when affinity is None


def test_ip_families_follow_a_requested_cluster_ip() -> None:
    spec = service(clusterIP="fd00::10", ports=[{"port": 80}])["spec"]
    assert spec["clusterIPs"] == ["fd00::10"]
    assert spec["ipFamilies"] == ["IPv6"]


@pytest.mark.parametrize(
    ("spec", "needed"),
    [
        ({}, True),
        ({"type": "NodePort"}, True),
        ({"clusterIP": "None"}, False),
        ({"clusterIP": "10.96.0.20"}, False),
        ({"type": "ExternalName", "externalName": "a.b"}, False),
    ],
)
def test_needs_cluster_ip(spec: dict[str, Any], needed: bool) -> None:
    assert needs_cluster_ip({"spec": spec}) is needed


def allocated_service() -> dict[str, Any]:
    obj = service(type="NodePort", ports=[{"name": "http", "port": 80}])
    obj["spec"]["clusterIP"] = "10.96.0.10"
    obj["spec"]["clusterIPs"] = ["10.96.0.10"]
    obj["spec"]["ports"][0]["nodePort"] = 30080
    return obj


def test_update_carries_allocated_values_over() -> None:
    old = allocated_service()
    new = {"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}}
    prepare_service_update(old, new)
    apply_defaults("", "Service", new)
    assert new["spec"]["clusterIP"] == "10.96.0.10"
    assert new["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert new["spec"]["ports"][0]["nodePort"] == 30080
    assert new["spec"] == old["spec"]


def test_update_of_singular_cluster_ip_moves_the_plural_along() -> None:
    old = allocated_service()
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"
    prepare_service_update(old, new)
    assert new["spec"]["clusterIPs"] == ["10.96.0.11"]


def test_switch_to_external_name_drops_ip_fields_and_node_ports() -> None:
    old = allocated_service()
    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="example.com")
    prepare_service_update(old, new)
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert field not in new["spec"]
    assert "nodePort" not in new["spec"]["ports"][0]


def test_update_adopts_the_old_ip_family_policy() -> None:
    old = allocated_service()
    old["spec"]["ipFamilyPolicy"] = "PreferDualStack"
    new = {"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}}
    prepare_service_update(old, new)
    assert new["spec"]["ipFamilyPolicy"] == "PreferDualStack"


# ---- Other kinds ----------------------------------------------------------------------


def test_endpoints_and_endpoint_slice_ports() -> None:
    ep = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    assert defaulted("", "Endpoints", ep)["subsets"][0]["ports"] == [
        {"port": 80, "protocol": "TCP"}
    ]
    eps = {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{}]}
    defaulted("discovery.k8s.io", "EndpointSlice", eps)
    assert eps["ports"] == [{"name": "", "protocol": "TCP"}]
    assert eps["endpoints"][0]["conditions"] == {}
    empty = defaulted("discovery.k8s.io", "EndpointSlice", {"addressType": "IPv4"})
    assert empty["endpoints"] is None and empty["ports"] is None


def test_namespace_defaults() -> None:
    ns = defaulted("", "Namespace", {"metadata": {"name": "edge"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "edge"}
    assert ns["status"] == {"phase": "Active"}


def test_secret_defaults_fold_string_data_into_data() -> None:
    secret = {"stringData": {"user": "admin"}, "data": {"pass": "cw=="}}
    defaulted("", "Secret", secret)
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert base64.b64decode(secret["data"]["user"]) == b"admin"
    assert secret["data"]["pass"] == "cw=="


def test_node_allocatable_defaults_to_capacity() -> None:
    node = {"status": {"capacity": {"cpu": "4", "memory": "8192Mi"}}}
    defaulted("", "Node", node)
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}
    assert node["status"]["capacity"]["memory"] == "8Gi"


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("", "ConfigMap"),
        ("coordination.k8s.io", "Lease"),
        ("", "Event"),
        ("apps", "ControllerRevision"),
        ("superedge.io", "DeploymentGrid"),
    ],
)
def test_kinds_without_defaults_are_untouched(group: str, kind: str) -> None:
    obj = {"metadata": {"name": "x"}, "spec": {"template": {"spec": {}}}, "data": {"a": "b"}}
    before = copy.deepcopy(obj)
    apply_defaults(group, kind, obj)
    assert obj == before


# ---- Idempotence and robustness -------------------------------------------------------

SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("apps", "Deployment", deployment({"strategy": {}})),
    (
        "apps",
        "StatefulSet",
        {
            "spec": {
                "template": {"spec": {"containers": [container()]}},
                "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "1"}}}}],
            }
        },
    ),
    ("apps", "DaemonSet", {"spec": {"template": {"spec": {"containers": [container()]}}}}),
    (
        "",
        "Pod",
        {"spec": {"hostNetwork": True, "containers": [container(ports=[{"containerPort": 1}])]}},
    ),
    ("", "Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    ("", "Service", {"spec": {"clusterIP": "None"}}),
    ("", "Namespace", {"metadata": {"name": "ns"}}),
    ("", "Secret", {"stringData": {"a": "b"}}),
    ("discovery.k8s.io", "EndpointSlice", {"endpoints": [{"addresses": ["10.0.0.1"]}]}),
    ("", "Node", {"status": {"capacity": {"cpu": "1000m"}}}),
]


@pytest.mark.parametrize(("group", "kind", "obj"), SAMPLES)
def test_defaulting_twice_equals_defaulting_once(
    group: str, kind: str, obj: dict[str, Any]
) -> None:
    once = copy.deepcopy(obj)
    apply_defaults(group, kind, once)
    twice = copy.deepcopy(once)
    apply_defaults(group, kind, twice)
    assert twice == once
    assert once != obj  # something was defaulted


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "spec",
                    "template",
                    "containers",
                    "ports",
                    "type",
                    "name",
                    "image",
                    "selector",
                    "strategy",
                    "rollingUpdate",
                    "resources",
                    "limits",
                    "volumes",
                    "clusterIP",
                    "updateStrategy",
                    "metadata",
                    "labels",
                    "protocol",
                    "port",
                    "httpGet",
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
    kind=st.sampled_from([(g, k) for g, k, _ in SAMPLES]),
    body=st.dictionaries(st.sampled_from(["spec", "metadata", "status"]), JSON, max_size=3),
)
def test_arbitrary_json_never_crashes_and_stays_idempotent(
    kind: tuple[str, str], body: dict[str, Any]
) -> None:
    group, name = kind
    apply_defaults(group, name, body)
    again = copy.deepcopy(body)
    apply_defaults(group, name, again)
    assert again == body
