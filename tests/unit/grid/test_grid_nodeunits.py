"""NodeUnit sets: pure helpers and the incremental index, checked against a full recompute."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.grid.nodeunits import NodeUnitIndex, diff_units, units_of


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(labels)}}


def test_units_of_ignores_empty_values_and_other_keys() -> None:
    nodes = [
        node("n0", zone="zone-0"),
        node("n1", zone="zone-0"),
        node("n2", zone="zone-1", region="r"),
        node("n3", zone=""),
        node("n4", region="r"),
        {"metadata": {"name": "n5"}},
    ]
    assert units_of(nodes, "zone") == {"zone-0", "zone-1"}
    assert units_of(nodes, "region") == {"r"}
    assert units_of(nodes, "missing") == frozenset()


def test_diff_units() -> None:
    diff = diff_units({"a", "b"}, ["b", "c"])
    assert diff.added == {"c"}
    assert diff.removed == {"a"}
    assert diff_units(["a"], ["a"]) == (frozenset(), frozenset())


def test_index_reports_only_tracked_keys_whose_unit_set_changed() -> None:
    index = NodeUnitIndex()
    assert index.track("zone", holder="default/dg")
    assert index.upsert_node(node("n0", zone="a", region="r")) == {"zone"}
    assert index.upsert_node(node("n1", zone="a")) == set()  # membership only
    assert index.nodes_in("zone", "a") == {"n0", "n1"}
    assert index.upsert_node(node("n1", zone="b")) == {"zone"}  # unit b appears
    assert index.units("zone") == {"a", "b"}
    # n1 moves from b back to a: b vanishes.
    assert index.upsert_node(node("n1", zone="a")) == {"zone"}
    assert index.units("zone") == {"a"}
    assert index.remove_node("n1") == set()  # a keeps n0
    assert index.remove_node("n0") == {"zone"}
    assert index.units("zone") == frozenset()
    assert index.units("region") == frozenset()
    assert index.remove_node("n0") == set()  # unknown node


def test_move_between_two_populated_units_is_not_a_change() -> None:
    index = NodeUnitIndex()
    index.track("zone")
    for n, z in [("n0", "a"), ("n1", "a"), ("n2", "b"), ("n3", "b")]:
        index.upsert_node(node(n, zone=z))
    assert index.upsert_node(node("n1", zone="b")) == set()
    assert index.nodes_in("zone", "b") == {"n1", "n2", "n3"}
    assert index.unit_of("n1", "zone") == "b"


def test_clearing_a_label_value_removes_membership() -> None:
    index = NodeUnitIndex()
    index.track("zone")
    index.upsert_node(node("n0", zone="a"))
    assert index.upsert_node(node("n0", zone="")) == {"zone"}
    assert index.unit_of("n0", "zone") is None
    assert len(index) == 1


def test_untracked_keys_are_indexed_but_not_reported() -> None:
    index = NodeUnitIndex()
    assert index.upsert_node(node("n0", zone="a")) == set()
    # Tracking later needs no scan: the units are already known.
    index.track("zone")
    assert index.units("zone") == {"a"}
    assert index.upsert_node(node("n0", zone="b")) == {"zone"}


def test_track_is_reference_counted_by_holder() -> None:
    index = NodeUnitIndex()
    assert index.track("zone", holder="ns/a") is True
    assert index.track("zone", holder="ns/b") is False
    assert index.track("zone", holder="ns/b") is False  # idempotent
    assert index.untrack("zone", holder="ns/a") is False
    assert index.tracked() == {"zone"}
    assert index.untrack("zone", holder="ns/b") is True
    assert index.tracked() == frozenset()
    assert index.untrack("zone", holder="ns/b") is False
    assert index.upsert_node(node("n0", zone="a")) == set()


NODE_NAMES = [f"n{i}" for i in range(6)]
KEYS = ["zone", "region", "other"]
VALUES = ["", "a", "b", "c"]

events = st.lists(
    st.one_of(
        st.tuples(
            st.just("upsert"),
            st.sampled_from(NODE_NAMES),
            st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3),
        ),
        st.tuples(st.just("remove"), st.sampled_from(NODE_NAMES), st.just({})),
        st.tuples(st.just("track"), st.sampled_from(KEYS), st.just({})),
        st.tuples(st.just("untrack"), st.sampled_from(KEYS), st.just({})),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(events)
def test_index_matches_a_full_recompute_after_every_event(
    script: list[tuple[str, str, dict[str, str]]],
) -> None:
    index = NodeUnitIndex()
    nodes: dict[str, dict[str, Any]] = {}
    tracked: set[str] = set()
    for op, name, labels in script:
        before = {k: units_of(nodes.values(), k) for k in KEYS}
        if op == "track":
            index.track(name)
            tracked.add(name)
            continue
        if op == "untrack":
            index.untrack(name)
            tracked.discard(name)
            continue
        if op == "upsert":
            nodes[name] = node(name, **labels)
            changed = index.upsert_node(nodes[name])
        else:
            nodes.pop(name, None)
            changed = index.remove_node(name)
        after = {k: units_of(nodes.values(), k) for k in KEYS}
        assert changed == {k for k in tracked if before[k] != after[k]}
        for key in KEYS:
            assert index.units(key) == after[key]
            for value in after[key]:
                expected = {
                    n for n, obj in nodes.items() if obj["metadata"]["labels"].get(key) == value
                }
                assert index.nodes_in(key, value) == expected
