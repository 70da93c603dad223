"""The label selectors that bound the daemon's caches (selectors.py)."""

from __future__ import annotations

from dnsbuild import sg, ssg, sts
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.dns.selectors import (
    MAX_SELECTOR_LENGTH,
    STATEFULSET_POD_NAME,
    local_units,
    pod_selector,
    statefulset_selector,
    wanted_pod_names,
)
from servicegroup.kubesim.selectors import parse_label_selector


def test_local_units_are_the_node_values_of_grid_keys() -> None:
    grids = [ssg("a", key="zone"), ssg("b", key="region"), ssg("c", key="zone")]
    labels = {"zone": "zone-1", "region": "north", "kubernetes.io/os": "linux", "rack": "r1"}
    assert local_units(labels, grids) == {"zone-1", "north"}
    assert local_units({"zone": ""}, grids) == frozenset()
    assert local_units(None, grids) == frozenset()
    assert local_units(labels, []) == frozenset()


def test_statefulset_selector_is_stable_and_matches_only_local_units() -> None:
    assert statefulset_selector([]) is None
    one = statefulset_selector(["zone-2", "north", "zone-2"])
    assert one == statefulset_selector(["north", "zone-2"])
    assert one == "superedge.io/grid-selector,superedge.io/nodeunit in (north,zone-2)"
    matcher = parse_label_selector(one)
    grid = {"superedge.io/grid-selector": "g"}
    assert matcher.matches({**grid, "superedge.io/nodeunit": "zone-2"})
    assert not matcher.matches({**grid, "superedge.io/nodeunit": "zone-1"})
    assert not matcher.matches({"superedge.io/nodeunit": "zone-2"})


def test_wanted_pod_names_follow_replicas_of_grid_statefulsets_only() -> None:
    grid = ssg("web")
    a = sts(grid, "zone-1", service_name="x-svc", replicas=3)
    b = sts(grid, "zone-2", service_name="x-svc", replicas=None)  # defaults to 1
    orphan = sts(grid, "zone-3", service_name="x-svc", replicas=2)
    orphan["metadata"]["ownerReferences"] = []
    assert wanted_pod_names([a, b, orphan]) == {
        "web-zone-1-0",
        "web-zone-1-1",
        "web-zone-1-2",
        "web-zone-2-0",
    }
    assert wanted_pod_names([sg("not-a-statefulset")]) == frozenset()


def test_pod_selector_lists_names_and_falls_back_when_too_long() -> None:
    assert pod_selector([]) is None
    selector = pod_selector(["b-0", "a-1", "a-0"])
    assert selector == f"{STATEFULSET_POD_NAME} in (a-0,a-1,b-0)"
    matcher = parse_label_selector(selector)
    assert matcher.matches({STATEFULSET_POD_NAME: "a-1"})
    assert not matcher.matches({STATEFULSET_POD_NAME: "a-2"})
    many = [f"statefulsetgrid-demo-zone-{i}-{j}" for i in range(50) for j in range(10)]
    assert pod_selector(many) == STATEFULSET_POD_NAME


@given(st.sets(st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]-[0-9]{1,3}", fullmatch=True)))
def test_pod_selector_always_parses_and_is_bounded(names: set[str]) -> None:
    selector = pod_selector(names)
    if not names:
        assert selector is None
        return
    assert selector is not None
    assert len(selector) <= MAX_SELECTOR_LENGTH
    matcher = parse_label_selector(selector)
    assert all(matcher.matches({STATEFULSET_POD_NAME: name}) for name in names)
