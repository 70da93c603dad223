"""Regression found by the reliability suite (scenario 7, hostile input): a Service switched
from NodePort to ClusterIP by server-side apply keeps the defaulted `externalTrafficPolicy`
in the merged object; kube-apiserver's dropTypeDependentFields clears it (as it clears node
ports), so the update is valid. Kubesim refused it with 422, stranding the ServiceGrid."""

from __future__ import annotations

import copy
from typing import Any

from servicegroup.kubesim.defaults import apply_defaults, prepare_service_update
from servicegroup.kubesim.validation_network import validate_service


def node_port_service() -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30000}],
            "clusterIP": "10.96.0.2",
            "clusterIPs": ["10.96.0.2"],
        },
    }
    apply_defaults("", "Service", obj)
    assert obj["spec"]["externalTrafficPolicy"] == "Cluster"
    return obj


def test_switch_to_cluster_ip_drops_the_kept_external_traffic_policy() -> None:
    old = node_port_service()
    new = copy.deepcopy(old)  # what an apply of type ClusterIP merges to
    new["spec"]["type"] = "ClusterIP"
    prepare_service_update(old, new)
    apply_defaults("", "Service", new)
    assert "externalTrafficPolicy" not in new["spec"]
    assert "nodePort" not in new["spec"]["ports"][0]
    assert validate_service(new) == []


def test_switch_keeps_an_external_traffic_policy_the_client_changed() -> None:
    old = node_port_service()
    new = copy.deepcopy(old)
    new["spec"].update(type="ClusterIP", externalTrafficPolicy="Local")
    prepare_service_update(old, new)
    assert new["spec"]["externalTrafficPolicy"] == "Local"  # and validation says why not
    assert validate_service(new) != []
