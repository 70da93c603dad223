"""The re-filter: upstream changes -> exactly the served changes they imply."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import structlog

from servicegroup.kube.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from servicegroup.metrics import Metrics
from servicegroup.wrapper.cache import Revisions, WatchCache
from servicegroup.wrapper.selectors import Predicate
from servicegroup.wrapper.upstream import Refilter, ServedCaches, node_labels_only

LOCAL = "a1"
UNITS = {"a1": "a", "a2": "a", "b1": "b", "c1": "c"}


def caches() -> ServedCaches:
    revisions = Revisions(start=100)
    return ServedCaches(
        services=WatchCache(ref=SERVICES, revisions=revisions),
        endpoints=WatchCache(ref=ENDPOINTS, revisions=revisions),
        endpointslices=WatchCache(ref=ENDPOINTSLICES, revisions=revisions),
    )


@pytest.fixture
def served() -> ServedCaches:
    return caches()


@pytest.fixture
def refilter(served: ServedCaches, metrics: Metrics) -> Refilter:
    r = Refilter(node_name=LOCAL, caches=served, metrics=metrics, logger=structlog.get_logger())
    for node, unit in UNITS.items():
        r.node_changed(node, {"zone": unit})
    return r


def service(name: str, *, keys: str | None = '["zone"]', fallback: bool = False) -> dict[str, Any]:
    annotations = {}
    if keys is not None:
        annotations["topologyKeys"] = keys
    if fallback:
        annotations["superedge.io/topology-fallback"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
        "spec": {"ports": [{"port": 80}]},
    }


def slice_(name: str, service_name: str, nodes: list[str], ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.{i}.0.1"], "nodeName": n, "conditions": {"ready": ready}}
            for i, n in enumerate(nodes)
        ],
    }


def endpoints(name: str, nodes: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "ns"},
        "subsets": [
            {
                "addresses": [{"ip": f"10.{i}.0.1", "nodeName": n} for i, n in enumerate(nodes)],
                "ports": [{"port": 80}],
            }
        ],
    }


def served_nodes(served: ServedCaches, key: str) -> list[str]:
    obj = served.endpointslices.get(key)
    assert obj is not None
    return [e["nodeName"] for e in obj["endpoints"]]


def endpoints_nodes(served: ServedCaches, key: str) -> list[str]:
    obj = served.endpoints.get(key)
    assert obj is not None
    return [a["nodeName"] for s in obj.get("subsets", []) for a in s.get("addresses", [])]


def changes(served: ServedCaches, since: int) -> list[tuple[str, str]]:
    watcher = served.endpointslices.watch(
        resource_version=str(since), predicate=Predicate(), send_initial=None
    )
    out = []
    for kind, line in watcher.take():
        out.append((kind, orjson.loads(line)["object"]["metadata"]["name"]))
    watcher.close()
    return out


def test_slices_of_annotated_services_are_filtered(
    refilter: Refilter, served: ServedCaches, metrics: Metrics
) -> None:
    refilter.service_changed("ns/grid-svc", service("grid-svc"))
    refilter.service_changed("ns/plain", service("plain", keys=None))
    refilter.slice_changed("ns/s1", slice_("s1", "grid-svc", ["a1", "b1", "a2", "c1"]))
    refilter.slice_changed("ns/p1", slice_("p1", "plain", ["a1", "b1", "c1"]))
    refilter.endpoints_changed("ns/grid-svc", endpoints("grid-svc", ["a2", "b1"]))
    assert served_nodes(served, "ns/s1") == ["a1", "a2"]
    assert served_nodes(served, "ns/p1") == ["a1", "b1", "c1"]
    assert endpoints_nodes(served, "ns/grid-svc") == ["a2"]
    assert refilter.endpoint_counts == (2, 2)
    assert metrics.registry.get_sample_value("servicegroup_wrapper_endpoints_kept") == 2
    assert metrics.registry.get_sample_value("servicegroup_wrapper_endpoints_dropped") == 2


def test_slice_belongs_to_the_service_of_its_label_not_its_name(
    refilter: Refilter, served: ServedCaches
) -> None:
    refilter.service_changed("ns/web", service("web"))
    # Upstream guessed "web" from "web-abcde" by dropping the last dash-part; a Service
    # named "web-abcde" would have fooled it. The label is authoritative.
    refilter.slice_changed("ns/web-abcde", slice_("web-abcde", "other", ["b1"]))
    refilter.slice_changed("ns/zzz", slice_("zzz", "web", ["b1", "a2"]))
    assert served_nodes(served, "ns/web-abcde") == ["b1"]
    assert served_nodes(served, "ns/zzz") == ["a2"]


def test_slice_arriving_before_its_service_is_refiltered(
    refilter: Refilter, served: ServedCaches
) -> None:
    refilter.slice_changed("ns/s1", slice_("s1", "web", ["a1", "b1"]))
    assert served_nodes(served, "ns/s1") == ["a1", "b1"]  # dangling: passes through
    refilter.service_changed("ns/web", service("web"))
    assert served_nodes(served, "ns/s1") == ["a1"]


def test_relabelling_a_node_modifies_exactly_the_slices_whose_form_changed(
    refilter: Refilter, served: ServedCaches
) -> None:
    refilter.service_changed("ns/web", service("web"))
    refilter.service_changed("ns/plain", service("plain", keys=None))
    refilter.slice_changed("ns/on-b", slice_("on-b", "web", ["b1", "a2"]))
    refilter.slice_changed("ns/on-c", slice_("on-c", "web", ["c1"]))
    refilter.slice_changed("ns/plain-b", slice_("plain-b", "plain", ["b1"]))
    before = served.endpointslices.resource_version

    refilter.node_changed("b1", {"zone": "a"})  # b1 joins the local unit
    assert changes(served, before) == [("MODIFIED", "on-b")]
    assert served_nodes(served, "ns/on-b") == ["b1", "a2"]

    before = served.endpointslices.resource_version
    refilter.node_changed("b1", {"zone": "a"})  # no label change: nothing at all
    refilter.node_changed("b1", {"zone": "a"})
    assert served.endpointslices.resource_version == before

    refilter.node_changed(LOCAL, {"zone": "c"})  # the local node moves to unit c
    assert sorted(changes(served, before)) == [("MODIFIED", "on-b"), ("MODIFIED", "on-c")]
    assert served_nodes(served, "ns/on-b") == []
    assert served_nodes(served, "ns/on-c") == ["c1"]


def test_node_added_and_removed(refilter: Refilter, served: ServedCaches) -> None:
    refilter.service_changed("ns/web", service("web"))
    refilter.slice_changed("ns/s", slice_("s", "web", ["new", "a2"]))
    assert served_nodes(served, "ns/s") == ["a2"]
    refilter.node_changed("new", {"zone": "a"})
    assert served_nodes(served, "ns/s") == ["new", "a2"]
    refilter.node_changed("a2", None)
    assert served_nodes(served, "ns/s") == ["new"]
    refilter.node_changed(LOCAL, None)
    assert served_nodes(served, "ns/s") == []
    assert not refilter.local_node_known


def test_topology_annotation_added_changed_and_removed(
    refilter: Refilter, served: ServedCaches
) -> None:
    refilter.node_changed("b1", {"zone": "b", "region": "r"})
    refilter.node_changed(LOCAL, {"zone": "a", "region": "r"})
    refilter.service_changed("ns/web", service("web", keys=None))
    refilter.slice_changed("ns/s", slice_("s", "web", ["a2", "b1", "c1"]))
    refilter.endpoints_changed("ns/web", endpoints("web", ["a2", "b1", "c1"]))
    assert served_nodes(served, "ns/s") == ["a2", "b1", "c1"]

    before = served.endpointslices.resource_version
    refilter.service_changed("ns/web", service("web", keys='["zone"]'))
    assert served_nodes(served, "ns/s") == ["a2"]
    assert endpoints_nodes(served, "ns/web") == ["a2"]
    assert changes(served, before) == [("MODIFIED", "s")]

    refilter.service_changed("ns/web", service("web", keys='["zone", "region"]'))
    assert served_nodes(served, "ns/s") == ["a2", "b1"]

    # A Service update that does not touch the policy does not re-filter anything.
    before = served.endpointslices.resource_version
    changed = service("web", keys='["zone", "region"]')
    changed["spec"]["ports"] = [{"port": 81}]
    refilter.service_changed("ns/web", changed)
    assert changes(served, before) == []

    refilter.service_changed("ns/web", service("web", keys=None))
    assert served_nodes(served, "ns/s") == ["a2", "b1", "c1"]
    refilter.service_changed("ns/web", None)
    assert served.services.get("ns/web") is None
    assert served_nodes(served, "ns/s") == ["a2", "b1", "c1"]


def test_fallback_serves_everything_until_a_local_endpoint_is_ready(
    refilter: Refilter, served: ServedCaches
) -> None:
    refilter.service_changed("ns/web", service("web", fallback=True))
    refilter.slice_changed("ns/local", slice_("local", "web", ["a2"], ready=False))
    refilter.slice_changed("ns/remote", slice_("remote", "web", ["b1", "c1"]))
    assert served_nodes(served, "ns/local") == ["a2"]
    assert served_nodes(served, "ns/remote") == ["b1", "c1"]

    before = served.endpointslices.resource_version
    refilter.slice_changed("ns/local", slice_("local", "web", ["a2"], ready=True))
    # The local endpoint became ready: the fallback ends and the remote slice empties.
    assert served_nodes(served, "ns/remote") == []
    assert sorted(changes(served, before)) == [("MODIFIED", "local"), ("MODIFIED", "remote")]

    refilter.slice_changed("ns/local", None)
    assert served_nodes(served, "ns/remote") == ["b1", "c1"]


def test_fallback_for_endpoints(refilter: Refilter, served: ServedCaches) -> None:
    refilter.service_changed("ns/web", service("web", fallback=True))
    refilter.endpoints_changed("ns/web", endpoints("web", ["b1", "c1"]))
    assert endpoints_nodes(served, "ns/web") == ["b1", "c1"]
    refilter.endpoints_changed("ns/web", endpoints("web", ["b1", "a2"]))
    assert endpoints_nodes(served, "ns/web") == ["a2"]


def test_slice_moving_between_services_and_deletion(
    refilter: Refilter, served: ServedCaches
) -> None:
    refilter.service_changed("ns/web", service("web"))
    refilter.slice_changed("ns/s", slice_("s", "plain", ["b1"]))
    assert served_nodes(served, "ns/s") == ["b1"]
    refilter.slice_changed("ns/s", slice_("s", "web", ["b1"]))
    assert served_nodes(served, "ns/s") == []
    refilter.slice_changed("ns/s", None)
    assert served.endpointslices.get("ns/s") is None
    assert refilter.endpoint_counts == (0, 0)
    refilter.endpoints_changed("ns/web", endpoints("web", ["b1"]))
    refilter.endpoints_changed("ns/web", None)
    assert served.endpoints.get("ns/web") is None


def test_node_transform_keeps_only_labels() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n", "resourceVersion": "5", "labels": {"zone": "a"}, "uid": "u"},
        "status": {"conditions": [{"type": "Ready"}]},
        "spec": {"podCIDR": "10.0.0.0/24"},
    }
    assert node_labels_only(node) == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n", "uid": "u", "resourceVersion": "5", "labels": {"zone": "a"}},
    }
