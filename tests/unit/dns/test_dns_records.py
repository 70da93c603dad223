"""Which records a node publishes: the upstream membership rule, pods, names (records.py)."""

from __future__ import annotations

import copy
from typing import Any

from dnsbuild import by_key, owner, pod, service, sg, ssg, sts
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.dns.records import HostRecord, compute_records, ordinals, pod_ips

DOMAIN = "cluster.local"


def world(
    *,
    grid_name: str = "statefulsetgrid-demo",
    units: tuple[str, ...] = ("zone-1", "zone-2", "zone-3"),
    replicas: int = 3,
) -> dict[str, Any]:
    """The upstream stateful example: one StatefulSetGrid, one ServiceGrid, pods everywhere."""
    grid = ssg(grid_name)
    service_grid = sg("servicegrid-demo")
    svc = service(service_grid)
    sets = [
        sts(grid, unit, service_name="servicegrid-demo-svc", replicas=replicas) for unit in units
    ]
    pods = [
        pod(s, i, f"10.{u}.0.{i + 1}") for u, s in enumerate(sets, start=1) for i in range(replicas)
    ]
    return {"grids": [grid], "sgs": [service_grid], "services": [svc], "sts": sets, "pods": pods}


def records(
    w: dict[str, Any],
    node_labels: dict[str, str] | None,
    *,
    publish_not_ready: bool = False,
    domain: str = DOMAIN,
) -> set[HostRecord]:
    return set(
        compute_records(
            node_labels=node_labels,
            statefulset_grids=w["grids"],
            service_grids=w["sgs"],
            statefulsets=w["sts"],
            services=by_key(*w["services"]),
            pods=by_key(*w["pods"]),
            cluster_domain=domain,
            publish_not_ready=publish_not_ready,
        )
    )


def names(i: int, ip: str, grid: str = "statefulsetgrid-demo") -> HostRecord:
    return HostRecord(f"{grid}-{i}.servicegrid-demo-svc.default.svc.{DOMAIN}", ip)


def test_upstream_example_each_unit_sees_its_own_pods() -> None:
    w = world()
    for unit in (1, 2, 3):
        got = records(w, {"zone": f"zone-{unit}"})
        assert got == {names(i, f"10.{unit}.0.{i + 1}") for i in range(3)}


def test_node_without_the_key_or_unknown_node_publishes_nothing() -> None:
    w = world()
    assert records(w, {"region": "zone-1"}) == set()
    assert records(w, {"zone": ""}) == set()
    assert records(w, None) == set()
    assert records(w, {"zone": "zone-9"}) == set()


def test_only_ready_pods_unless_publish_not_ready_and_never_without_ip() -> None:
    w = world()
    s = w["sts"][0]
    w["pods"] = [pod(s, 0, "10.1.0.1", ready=False), pod(s, 1, None), pod(s, 2, "10.1.0.3")]
    assert records(w, {"zone": "zone-1"}) == {names(2, "10.1.0.3")}
    assert records(w, {"zone": "zone-1"}, publish_not_ready=True) == {
        names(0, "10.1.0.1"),
        names(2, "10.1.0.3"),
    }


def test_finished_and_terminating_pods() -> None:
    w = world()
    s = w["sts"][0]
    terminating = pod(s, 1, "10.1.0.2")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    no_ready_condition = pod(s, 2, "10.1.0.3")
    no_ready_condition["status"]["conditions"] = []
    w["pods"] = [pod(s, 0, "10.1.0.1", phase="Succeeded"), terminating, no_ready_condition]
    assert records(w, {"zone": "zone-1"}) == set()
    # Not-ready publishing includes terminating pods (as publishNotReadyAddresses does), never
    # finished ones, whose IP may already be someone else's.
    assert records(w, {"zone": "zone-1"}, publish_not_ready=True) == {
        names(1, "10.1.0.2"),
        names(2, "10.1.0.3"),
    }


def test_statefulset_must_be_controlled_by_a_known_statefulsetgrid() -> None:
    w = world(units=("zone-1",))
    s = w["sts"][0]
    s["metadata"]["ownerReferences"] = [owner("StatefulSetGrid", "statefulsetgrid-demo", "other")]
    assert records(w, {"zone": "zone-1"}) == set()
    s["metadata"]["ownerReferences"] = [
        owner("DeploymentGrid", "statefulsetgrid-demo", w["grids"][0]["metadata"]["uid"])
    ]
    assert records(w, {"zone": "zone-1"}) == set()
    s["metadata"]["ownerReferences"] = []
    assert records(w, {"zone": "zone-1"}) == set()


def test_grid_in_another_namespace_does_not_adopt() -> None:
    w = world(units=("zone-1",))
    w["grids"][0]["metadata"]["namespace"] = "elsewhere"
    assert records(w, {"zone": "zone-1"}) == set()


def test_unit_comes_from_the_label_not_the_node_selector_or_name() -> None:
    w = world(units=("zone-1",))
    w["sts"][0]["metadata"]["labels"]["superedge.io/nodeunit"] = "zone-2"
    assert records(w, {"zone": "zone-1"}) == set()
    del w["sts"][0]["metadata"]["labels"]["superedge.io/nodeunit"]
    assert records(w, {"zone": "zone-1"}) == set()


def test_service_must_be_a_servicegrid_service_with_the_same_key() -> None:
    base = world(units=("zone-1",))
    assert len(records(base, {"zone": "zone-1"})) == 3

    missing = world(units=("zone-1",))
    missing["services"] = []
    assert records(missing, {"zone": "zone-1"}) == set()

    foreign = world(units=("zone-1",))
    foreign["services"][0]["metadata"]["ownerReferences"] = []
    assert records(foreign, {"zone": "zone-1"}) == set()

    other_key = world(units=("zone-1",))
    other_key["sgs"] = [sg("servicegrid-demo", key="region")]
    assert records(other_key, {"zone": "zone-1", "region": "zone-1"}) == set()

    unknown_sg = world(units=("zone-1",))
    unknown_sg["sgs"] = []
    assert records(unknown_sg, {"zone": "zone-1"}) == set()

    no_service_name = world(units=("zone-1",))
    no_service_name["sts"][0]["spec"]["serviceName"] = ""
    assert records(no_service_name, {"zone": "zone-1"}) == set()


def test_pod_of_another_statefulset_incarnation_is_ignored() -> None:
    w = world(units=("zone-1",))
    w["pods"][0]["metadata"]["ownerReferences"][0]["uid"] = "old-incarnation"
    assert records(w, {"zone": "zone-1"}) == {names(1, "10.1.0.2"), names(2, "10.1.0.3")}


def test_ordinals_follow_replicas_and_start() -> None:
    w = world(units=("zone-1",), replicas=4)
    w["sts"][0]["spec"]["replicas"] = 2  # scaling down: pods 2 and 3 are going away
    assert records(w, {"zone": "zone-1"}) == {names(0, "10.1.0.1"), names(1, "10.1.0.2")}
    w["sts"][0]["spec"]["ordinals"] = {"start": 2}
    assert records(w, {"zone": "zone-1"}) == {names(2, "10.1.0.3"), names(3, "10.1.0.4")}


def test_ordinals_defaults_and_garbage() -> None:
    assert ordinals({"spec": {}}) == range(1)
    assert ordinals({"spec": {"replicas": None}}) == range(1)
    assert ordinals({"spec": {"replicas": 0}}) == range(0)
    assert ordinals({"spec": {"replicas": -3}}) == range(0)
    assert ordinals({"spec": {"replicas": "3"}}) == range(0)
    assert ordinals({"spec": {"replicas": 2, "ordinals": {"start": 5}}}) == range(5, 7)
    assert ordinals({}) == range(1)


def test_dual_stack_and_invalid_ips() -> None:
    p = {"status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "FD00::0001"}]}}
    assert pod_ips(p) == ("10.0.0.1", "fd00::1")
    assert pod_ips({"status": {"podIP": "10.0.0.300"}}) == ()
    assert pod_ips({"status": {"podIP": "010.0.0.1"}}) == ()
    assert pod_ips({"status": {"podIP": ""}}) == ()
    assert pod_ips({}) == ()
    w = world(units=("zone-1",), replicas=1)
    w["pods"] = [pod(w["sts"][0], 0, "10.1.0.1", ips=["10.1.0.1", "fd00::1"])]
    assert records(w, {"zone": "zone-1"}) == {names(0, "10.1.0.1"), names(0, "fd00::1")}


def test_grid_name_containing_the_unit_value() -> None:
    # Upstream finds the unit with strings.Index on the pod name, so for grid "zone-1-app"
    # it cut the wrong part and published "app-zone-1-0...". The label makes it exact.
    for grid_name, unit in (("zone-1-app", "zone-1"), ("web-zone-1", "zone-1"), ("stateful", "a")):
        w = world(grid_name=grid_name, units=(unit,), replicas=2)
        assert records(w, {"zone": unit}) == {
            names(0, "10.1.0.1", grid=grid_name),
            names(1, "10.1.0.2", grid=grid_name),
        }


def test_sanitized_unit_names_still_resolve() -> None:
    # "Zone_A" is no valid name part: the child is "{grid}-zone-a-{hash}", found via the label.
    w = world(units=("Zone_A", "zone-a"), replicas=1)
    assert w["sts"][0]["metadata"]["name"] != "statefulsetgrid-demo-Zone_A"
    assert records(w, {"zone": "Zone_A"}) == {names(0, "10.1.0.1")}
    assert records(w, {"zone": "zone-a"}) == {names(0, "10.2.0.1")}


def test_cluster_domain_is_configurable() -> None:
    w = world(units=("zone-1",), replicas=1)
    (record,) = records(w, {"zone": "zone-1"}, domain="edge.example")
    assert record == HostRecord(
        "statefulsetgrid-demo-0.servicegrid-demo-svc.default.svc.edge.example", "10.1.0.1"
    )


def test_several_grids_and_keys_on_one_node() -> None:
    a = world(units=("zone-1", "zone-2"), replicas=1)
    region_grid = ssg("db", key="region")
    region_sg = sg("db-net", key="region")
    db = sts(region_grid, "north", service_name="db-net-svc", replicas=2)
    a["grids"].append(region_grid)
    a["sgs"].append(region_sg)
    a["services"].append(service(region_sg))
    a["sts"].append(db)
    a["pods"] += [pod(db, 0, "10.9.0.1"), pod(db, 1, "10.9.0.2")]
    got = records(a, {"zone": "zone-2", "region": "north"})
    assert got == {
        names(0, "10.2.0.1"),
        HostRecord(f"db-0.db-net-svc.default.svc.{DOMAIN}", "10.9.0.1"),
        HostRecord(f"db-1.db-net-svc.default.svc.{DOMAIN}", "10.9.0.2"),
    }


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(9)), st.sampled_from(["zone-1", "zone-2", "zone-3"]))
def test_input_order_never_matters(order: list[int], unit: str) -> None:
    w = world()
    expected = records(w, {"zone": unit})
    w["pods"] = [w["pods"][i] for i in order]
    w["sts"] = list(reversed(w["sts"]))
    assert records(w, {"zone": unit}) == expected


def test_inputs_are_not_mutated() -> None:
    w = world()
    before = copy.deepcopy(w)
    records(w, {"zone": "zone-1"})
    assert w == before
