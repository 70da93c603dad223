"""Match check: ownership, applied hash, derivative compare of the fields we set."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicegroup.api.models import DeploymentGrid, parse_grid
from servicegroup.grid.compare import (
    applied_hash,
    controlled_by,
    controller_of,
    is_derivative,
    matches,
    parse_quantity,
)
from servicegroup.grid.render import render_service, render_units

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
UID = "uid-1"


def desired_deployment() -> dict[str, Any]:
    raw = yaml.safe_load((FIXTURES / "deploymentgrid-demo.yaml").read_text())
    raw["metadata"]["uid"] = UID
    grid = parse_grid(raw)
    assert isinstance(grid, DeploymentGrid)
    return render_units(grid, ["zone-0"]).children["zone-0"].obj


def as_served(desired: dict[str, Any]) -> dict[str, Any]:
    """What an API server returns after applying `desired`: defaults and server fields added."""
    live = copy.deepcopy(desired)
    del live["apiVersion"], live["kind"]  # list responses omit them
    meta = live["metadata"]
    meta.update(
        uid="child-uid", resourceVersion="7", generation=1, creationTimestamp="2026-01-01T00:00:00Z"
    )
    meta["annotations"]["deployment.kubernetes.io/revision"] = "1"
    spec = live["spec"]
    spec.update(progressDeadlineSeconds=600, revisionHistoryLimit=10)
    spec["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    pod = spec["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    container = pod["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    for env in container["env"]:
        env["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
    live["status"] = {"replicas": 2}
    return live


def test_hash_is_stable_and_ignores_its_own_annotation() -> None:
    desired = desired_deployment()
    value = desired["metadata"]["annotations"]["superedge.io/applied-hash"]
    assert len(value) == 16
    assert applied_hash(desired) == value
    reordered = dict(reversed(list(desired.items())))
    assert applied_hash(reordered) == value
    without = copy.deepcopy(desired)
    del without["metadata"]["annotations"]
    assert applied_hash(without) == value
    changed = copy.deepcopy(desired)
    changed["spec"]["replicas"] = 3
    assert applied_hash(changed) != value
    reordered_env = copy.deepcopy(desired)
    reordered_env["spec"]["template"]["spec"]["containers"][0]["env"].reverse()
    assert applied_hash(reordered_env) != value, "list order is part of what we apply"


def test_a_freshly_served_child_matches() -> None:
    desired = desired_deployment()
    assert matches(as_served(desired), desired, owner_uid=UID)


def test_not_controlled_by_the_grid_never_matches() -> None:
    desired = desired_deployment()
    live = as_served(desired)
    assert not matches(live, desired, owner_uid="other")
    live["metadata"]["ownerReferences"][0]["controller"] = False
    assert not matches(live, desired, owner_uid=UID)
    assert controller_of(live) is None
    assert not controlled_by(live, UID)
    assert not controlled_by({"metadata": {}}, "")


def test_stale_hash_does_not_match() -> None:
    desired = desired_deployment()
    live = as_served(desired)
    live["metadata"]["annotations"]["superedge.io/applied-hash"] = "0" * 16
    assert not matches(live, desired, owner_uid=UID)
    del live["metadata"]["annotations"]["superedge.io/applied-hash"]
    assert not matches(live, desired, owner_uid=UID)


@pytest.mark.parametrize(
    "edit",
    [
        lambda o: o["spec"].__setitem__("replicas", 5),
        lambda o: o["spec"]["template"]["spec"]["nodeSelector"].__setitem__("zone", "zone-9"),
        lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("image", "evil:1"),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["env"].pop(1),
        lambda o: o["metadata"]["labels"].pop("superedge.io/nodeunit"),
        lambda o: o["spec"]["template"]["metadata"]["labels"].__setitem__("appGrid", "x"),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["ports"][0].__setitem__(
            "containerPort", 9090
        ),
    ],
)
def test_hand_edits_of_our_fields_do_not_match(edit: Any) -> None:
    desired = desired_deployment()
    live = as_served(desired)
    edit(live)
    assert not matches(live, desired, owner_uid=UID)


def test_fields_others_add_are_ignored() -> None:
    desired = desired_deployment()
    live = as_served(desired)
    live["metadata"]["labels"]["team"] = "edge"
    live["metadata"]["annotations"]["other-tool/seen"] = "yes"
    pod = live["spec"]["template"]["spec"]
    pod["containers"].insert(0, {"name": "sidecar", "image": "proxy"})  # injected, reordered
    pod["containers"][1]["env"].append({"name": "EXTRA", "value": "1"})
    pod["tolerations"] = [{"key": "k", "operator": "Exists"}]
    assert matches(live, desired, owner_uid=UID)


def test_keyed_lists_match_regardless_of_live_order() -> None:
    desired = {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}
    live = {"containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "1", "x": 1}]}
    assert is_derivative(desired, live)
    live["containers"][1]["image"] = "9"
    assert not is_derivative(desired, live)


def test_ports_are_keyed_by_port_and_protocol_defaulting_to_tcp() -> None:
    desired = {"ports": [{"port": 80, "targetPort": 8080}]}
    live = {
        "ports": [
            {"port": 53, "protocol": "UDP"},
            {"port": 80, "protocol": "TCP", "targetPort": 8080},
        ]
    }
    assert is_derivative(desired, live)
    assert not is_derivative({"ports": [{"port": 80, "protocol": "UDP"}]}, live)


def test_unkeyed_lists_compare_pairwise_with_equal_length() -> None:
    assert is_derivative({"args": ["a", "b"]}, {"args": ["a", "b"]})
    assert not is_derivative({"args": ["a", "b"]}, {"args": ["b", "a"]})
    assert not is_derivative({"args": ["a"]}, {"args": ["a", "b"]})
    assert not is_derivative({"args": ["a"]}, {"args": "a"})


def test_zero_values_match_absent_live_fields() -> None:
    assert is_derivative({"paused": False, "name": "", "n": 0, "m": {}, "l": [], "x": None}, {})
    assert is_derivative({"resources": {"limits": {}}}, {})
    assert is_derivative({"strategy": {}}, {"strategy": {"type": "Recreate"}})
    assert is_derivative({"creationTimestamp": None}, {"creationTimestamp": "2026-01-01T00:00:00Z"})
    assert not is_derivative({"paused": True}, {})
    assert not is_derivative({"replicas": 1}, {})


def test_scalars_are_strict() -> None:
    assert not is_derivative({"a": True}, {"a": 1})
    assert not is_derivative({"a": 1}, {"a": "1"})
    assert not is_derivative({"a": {"b": 1}}, {"a": "x"})


def test_quantities_compare_by_value() -> None:
    desired = {"resources": {"limits": {"cpu": 0.5, "memory": "1024Mi"}, "requests": {"cpu": "1"}}}
    live = {"resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "1000m"}}}
    assert is_derivative(desired, live)
    live["resources"]["limits"]["memory"] = "2Gi"
    assert not is_derivative(desired, live)
    assert is_derivative({"emptyDir": {"sizeLimit": "1G"}}, {"emptyDir": {"sizeLimit": "1000M"}})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1Gi", Decimal(2**30)),
        ("2e3", Decimal(2000)),
        ("1E", Decimal(10**18)),
        ("1.5Ki", Decimal(1536)),
        (3, Decimal(3)),
        ("abc", None),
        ("1Xi", None),
        (True, None),
    ],
)
def test_parse_quantity(text: Any, value: Decimal | None) -> None:
    assert parse_quantity(text) == value


def test_service_matches_after_server_defaults() -> None:
    raw = yaml.safe_load((FIXTURES / "servicegrid-demo.yaml").read_text())
    raw["metadata"]["uid"] = UID
    desired = render_service(parse_grid(raw))  # type: ignore[arg-type]
    live = copy.deepcopy(desired)
    live["spec"].update(clusterIP="10.0.0.7", clusterIPs=["10.0.0.7"], type="ClusterIP",
                        sessionAffinity="None", ipFamilies=["IPv4"])  # fmt: skip
    assert matches(live, desired, owner_uid=UID)
    live["spec"]["ports"][0]["targetPort"] = 9999
    assert not matches(live, desired, owner_uid=UID)
