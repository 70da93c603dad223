"""The pure NodeUnit filter: policies, locality, slices, Endpoints, default/kubernetes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.wrapper.filter import (
    Policy,
    filter_endpoints,
    filter_slice,
    locality,
    parse_topology_keys,
    service_policy,
    shares_unit,
    slice_has_local_ready,
    slice_service,
)

NODES = {
    "a1": {"zone": "a", "rack": "r1"},
    "a2": {"zone": "a", "rack": "r2"},
    "b1": {"zone": "b", "rack": "r1"},
    "x": {"rack": "r9"},
}


def svc(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "ns", "annotations": annotations or {}}}


def ep(ip: str, node: str | None, *, ready: bool | None = True) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [ip]}
    if ready is not None:
        out["conditions"] = {"ready": ready}
    if node is not None:
        out["nodeName"] = node
    return out


def eps_slice(*endpoints: dict[str, Any], service: str = "s") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-xyz12",
            "namespace": "ns",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": list(endpoints),
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


def ips(slice_: dict[str, Any]) -> list[str]:
    return [e["addresses"][0] for e in slice_["endpoints"]]


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        ('["zone"]', ("zone",)),
        ('["zone", "rack", "zone"]', ("zone", "rack")),
        ("[]", ()),
        ('[""]', ()),
        ("zone", ()),
        ('{"zone": 1}', ()),
        ("[1]", ()),
        (None, ()),
    ],
)
def test_topology_keys_parse_like_upstream(value: str | None, keys: tuple[str, ...]) -> None:
    assert parse_topology_keys(value) == keys


def test_service_policy() -> None:
    assert service_policy(svc()) is None
    assert service_policy(None) is None
    assert service_policy(svc({"topologyKeys": "not json"})) is None
    assert service_policy(svc({"topologyKeys": '["zone"]'})) == Policy(("zone",), False)
    fallback = {"topologyKeys": '["zone"]', "superedge.io/topology-fallback": "true"}
    assert service_policy(svc(fallback)) == Policy(("zone",), True)


def test_shares_unit_needs_a_non_empty_local_value() -> None:
    assert shares_unit(NODES["a1"], NODES["a2"], ("zone",))
    assert not shares_unit(NODES["a1"], NODES["b1"], ("zone",))
    assert shares_unit(NODES["a1"], NODES["b1"], ("zone", "rack"))
    assert not shares_unit({"zone": ""}, {"zone": ""}, ("zone",))
    assert not shares_unit(None, NODES["a1"], ("zone",))
    assert not shares_unit(NODES["x"], NODES["a1"], ("zone",))


def test_slice_keeps_only_endpoints_of_the_local_unit() -> None:
    slice_ = eps_slice(ep("10.0.0.1", "a1"), ep("10.0.0.2", "b1"), ep("10.0.0.3", "a2"))
    before = copy.deepcopy(slice_)
    is_local = locality(local_node="a2", nodes=NODES, keys=("zone",))
    out = filter_slice(slice_, policy=Policy(("zone",), False), is_local=is_local)
    assert ips(out.obj) == ["10.0.0.1", "10.0.0.3"]
    assert (out.kept, out.dropped) == (2, 1)
    assert slice_ == before  # the cached input is untouched
    assert out.obj["ports"] is slice_["ports"]  # untouched parts are shared


def test_endpoints_without_node_or_on_unknown_nodes_are_dropped() -> None:
    slice_ = eps_slice(ep("10.0.0.1", None), ep("10.0.0.2", "gone"), ep("10.0.0.3", "a1"))
    is_local = locality(local_node="a1", nodes=NODES, keys=("zone",))
    out = filter_slice(slice_, policy=Policy(("zone",), False), is_local=is_local)
    assert ips(out.obj) == ["10.0.0.3"]


def test_unknown_local_node_keeps_nothing() -> None:
    slice_ = eps_slice(ep("10.0.0.1", "a1"))
    is_local = locality(local_node="nowhere", nodes=NODES, keys=("zone",))
    out = filter_slice(slice_, policy=Policy(("zone",), False), is_local=is_local)
    assert out.obj["endpoints"] == []


def test_unannotated_services_pass_through_as_the_same_object() -> None:
    slice_ = eps_slice(ep("10.0.0.1", "b1"))
    out = filter_slice(slice_, policy=None, is_local=lambda _: False)
    assert out.obj is slice_
    assert (out.kept, out.dropped) == (0, 0)


def test_fallback_keeps_everything_when_active() -> None:
    slice_ = eps_slice(ep("10.0.0.1", "a1", ready=False), ep("10.0.0.2", "b1"))
    is_local = locality(local_node="a2", nodes=NODES, keys=("zone",))
    assert not slice_has_local_ready(slice_, is_local)
    out = filter_slice(
        slice_, policy=Policy(("zone",), True), is_local=is_local, fallback_active=True
    )
    assert ips(out.obj) == ["10.0.0.1", "10.0.0.2"]
    # nil `ready` counts as ready (discovery/v1 semantics)
    assert slice_has_local_ready(eps_slice(ep("10.0.0.3", "a1", ready=None)), is_local)


def test_slice_service_comes_from_the_label_not_the_name() -> None:
    slice_ = eps_slice(service="my-svc-with-dashes")
    slice_["metadata"]["name"] = "totally-unrelated"
    assert slice_service(slice_) == ("ns", "my-svc-with-dashes")
    del slice_["metadata"]["labels"]
    assert slice_service(slice_) is None


def endpoints_obj() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "s", "namespace": "ns"},
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1", "nodeName": "a1"}, {"ip": "10.0.0.2"}],
                "notReadyAddresses": [{"ip": "10.0.0.3", "nodeName": "b1"}],
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
            {
                "addresses": [{"ip": "10.0.1.1", "nodeName": "b1"}],
                "ports": [{"port": 81, "protocol": "TCP"}],
            },
        ],
    }


def test_endpoints_filter_drops_empty_lists_and_subsets() -> None:
    obj = endpoints_obj()
    before = copy.deepcopy(obj)
    is_local = locality(local_node="a2", nodes=NODES, keys=("zone",))
    out = filter_endpoints(obj, policy=Policy(("zone",), False), is_local=is_local)
    assert out.obj["subsets"] == [
        {
            "addresses": [{"ip": "10.0.0.1", "nodeName": "a1"}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        }
    ]
    assert (out.kept, out.dropped) == (1, 3)
    assert obj == before
    none_local = locality(local_node="x", nodes=NODES, keys=("zone",))
    empty = filter_endpoints(obj, policy=Policy(("zone",), False), is_local=none_local)
    assert "subsets" not in empty.obj


def kubernetes_slice(**annotations: str) -> dict[str, Any]:
    slice_ = eps_slice(ep("192.168.0.10", None), service="kubernetes")
    slice_["metadata"].update(name="kubernetes", namespace="default", annotations=annotations)
    slice_["ports"] = [{"name": "https", "port": 6443, "protocol": "TCP"}]
    return slice_


def test_kubernetes_rewrite_serves_the_local_endpoint() -> None:
    slice_ = kubernetes_slice(
        **{"superedge.io/local-endpoint": "169.254.0.1", "superedge.io/local-port": "51003"}
    )
    out = filter_slice(slice_, policy=None, is_local=lambda _: False)
    assert out.obj["endpoints"] == [{"addresses": ["169.254.0.1"], "conditions": {"ready": True}}]
    assert out.obj["ports"] == [{"name": "https", "port": 51003, "protocol": "TCP"}]
    endpoints = {
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "annotations": {
                "superedge.io/local-endpoint": "169.254.0.1",
                "superedge.io/local-port": "51003",
            },
        },
        "subsets": [{"addresses": [{"ip": "192.168.0.10"}], "ports": [{"port": 6443}]}],
    }
    rewritten = filter_endpoints(endpoints, policy=None, is_local=lambda _: False).obj
    assert rewritten["subsets"] == [
        {
            "addresses": [{"ip": "169.254.0.1"}],
            "ports": [{"name": "https", "port": 51003, "protocol": "TCP"}],
        }
    ]


@pytest.mark.parametrize(
    "annotations",
    [
        {"superedge.io/local-endpoint": "169.254.0.1"},
        {"superedge.io/local-port": "51003"},
        {"superedge.io/local-endpoint": "not-an-ip", "superedge.io/local-port": "51003"},
        {"superedge.io/local-endpoint": "169.254.0.1", "superedge.io/local-port": "70000"},
    ],
)
def test_kubernetes_rewrite_needs_both_valid_annotations(annotations: dict[str, str]) -> None:
    slice_ = kubernetes_slice(**annotations)
    assert filter_slice(slice_, policy=None, is_local=lambda _: False).obj is slice_


def test_rewrite_is_only_for_default_kubernetes() -> None:
    slice_ = kubernetes_slice(
        **{"superedge.io/local-endpoint": "169.254.0.1", "superedge.io/local-port": "1"}
    )
    slice_["metadata"]["namespace"] = "other"
    assert filter_slice(slice_, policy=None, is_local=lambda _: False).obj is slice_


_node = st.sampled_from([*NODES, "gone", None])


@given(
    nodes=st.lists(_node, max_size=8),
    local=st.sampled_from(list(NODES)),
    keys=st.lists(st.sampled_from(["zone", "rack", "none"]), min_size=1, max_size=2, unique=True),
)
def test_kept_endpoints_are_exactly_the_local_ones(
    nodes: list[str | None], local: str, keys: list[str]
) -> None:
    slice_ = eps_slice(*(ep(f"10.0.0.{i}", n) for i, n in enumerate(nodes)))
    is_local = locality(local_node=local, nodes=NODES, keys=tuple(keys))
    out = filter_slice(slice_, policy=Policy(tuple(keys), False), is_local=is_local)

    def model(node: str | None) -> bool:
        if node not in NODES:
            return False
        mine, theirs = NODES[local], NODES[node]
        return any(mine.get(k) and theirs.get(k) == mine.get(k) for k in keys)

    assert ips(out.obj) == [f"10.0.0.{i}" for i, n in enumerate(nodes) if model(n)]
    assert out.kept + out.dropped == len(nodes)
