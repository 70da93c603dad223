"""Indexer: keys, indices kept consistent through add/update/delete/replace, tombstones."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.informers.store import (
    CONTROLLER_UID_INDEX,
    NAMESPACE_INDEX,
    DeletedFinalStateUnknown,
    Indexer,
    ReadOnlyStore,
    index_by_controller_uid,
    index_by_label,
    index_by_namespace,
    object_key,
    split_key,
)


def obj(
    name: str,
    namespace: str | None = "default",
    *,
    labels: dict[str, str] | None = None,
    owner: str | None = None,
    rv: str = "1",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    if owner:
        metadata["ownerReferences"] = [
            {"kind": "ReplicaSet", "name": "other", "uid": "not-controller"},
            {"kind": "DeploymentGrid", "name": owner, "uid": f"uid-{owner}", "controller": True},
        ]
    return {"metadata": metadata}


def full_indexer() -> Indexer:
    return Indexer(
        indexers={
            NAMESPACE_INDEX: index_by_namespace,
            CONTROLLER_UID_INDEX: index_by_controller_uid,
            "zone": index_by_label("zone"),
        }
    )


def test_object_keys() -> None:
    assert object_key(obj("a", "ns")) == "ns/a"
    assert object_key(obj("node-1", None)) == "node-1"
    assert object_key(DeletedFinalStateUnknown("ns/gone", obj("gone", "ns"))) == "ns/gone"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("node-1") == (None, "node-1")
    with pytest.raises(ValueError, match=r"no metadata\.name"):
        object_key({"metadata": {}})


def test_add_update_delete_keep_indices_consistent() -> None:
    store = full_indexer()
    store.add(obj("a", "ns1", labels={"zone": "z1"}, owner="g1"))
    store.add(obj("b", "ns1", labels={"zone": "z2"}))
    store.add(obj("n", None, labels={"zone": "z1"}))
    assert sorted(store.keys()) == ["n", "ns1/a", "ns1/b"]
    assert store.index_keys(NAMESPACE_INDEX, "ns1") == ["ns1/a", "ns1/b"]
    assert store.index_keys("zone", "z1") == ["n", "ns1/a"]
    assert [o["metadata"]["name"] for o in store.by_index(CONTROLLER_UID_INDEX, "uid-g1")] == ["a"]
    assert store.by_index(CONTROLLER_UID_INDEX, "not-controller") == []

    # A label change moves the object between index values; the old value disappears.
    store.update(obj("a", "ns1", labels={"zone": "z2"}, rv="2"))
    assert store.index_keys("zone", "z1") == ["n"]
    assert store.index_keys("zone", "z2") == ["ns1/a", "ns1/b"]
    assert store.get("ns1/a")["metadata"]["resourceVersion"] == "2"  # type: ignore[index]
    assert store.index_keys(CONTROLLER_UID_INDEX, "uid-g1") == []

    removed = store.delete(obj("b", "ns1"))
    assert removed is not None and removed["metadata"]["name"] == "b"
    assert store.delete(obj("b", "ns1")) is None
    assert store.index_keys("zone", "z2") == ["ns1/a"]
    assert "z1" in store.index_values("zone")
    store.delete(DeletedFinalStateUnknown("n", obj("n", None)))
    assert "z1" not in store.index_values("zone")
    assert len(store) == 1 and "ns1/a" in store


def test_replace_returns_tombstones_and_rebuilds_indices() -> None:
    store = full_indexer()
    old_b = obj("b", labels={"zone": "z1"})
    store.add(obj("a", labels={"zone": "z1"}))
    store.add(old_b)
    tombstones = store.replace([obj("a", labels={"zone": "z9"}, rv="5"), obj("c")], "42")
    assert tombstones == [DeletedFinalStateUnknown("default/b", old_b)]
    assert tombstones[0].obj is old_b  # the last state we knew
    assert sorted(store.keys()) == ["default/a", "default/c"]
    assert store.index_keys("zone", "z1") == []
    assert store.index_keys("zone", "z9") == ["default/a"]
    assert store.resource_version == "42"
    a, c = store.get("default/a"), store.get("default/c")
    assert sorted(store.replace([], "43")) == [
        DeletedFinalStateUnknown("default/a", a or {}),
        DeletedFinalStateUnknown("default/c", c or {}),
    ]
    assert len(store) == 0


def test_indexers_added_later_index_existing_objects() -> None:
    store = Indexer()
    store.add(obj("a", labels={"app": "web"}))
    with pytest.raises(KeyError, match="app"):
        store.by_index("app", "web")
    store.add_indexers({"app": index_by_label("app")})
    assert store.index_keys("app", "web") == ["default/a"]
    store.add_indexers({"app": index_by_label("app")})  # equal function: fine
    with pytest.raises(ValueError, match="already registered"):
        store.add_indexers({"app": index_by_label("tier")})
    assert set(store.indexers) == {"app"}


def test_multi_valued_index_functions() -> None:
    store = Indexer(indexers={"containers": lambda o: o.get("names", [])})
    store.add({"metadata": {"name": "p"}, "names": ["x", "y", "x"]})
    assert store.index_keys("containers", "x") == ["p"]
    assert store.index_keys("containers", "y") == ["p"]
    store.add({"metadata": {"name": "p"}, "names": ["y"]})
    assert store.index_keys("containers", "x") == []


def test_read_only_view_has_no_writes() -> None:
    store = full_indexer()
    store.add(obj("a", labels={"zone": "z1"}))
    view = ReadOnlyStore(store)
    assert view.get("default/a") is store.get("default/a")
    assert view.keys() == ["default/a"] and len(view) == 1 and "default/a" in view
    assert view.index_keys("zone", "z1") == ["default/a"]
    assert [o["metadata"]["name"] for o in view.list()] == ["a"]
    assert not hasattr(view, "add") and not hasattr(view, "replace")


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "delete", "replace"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["ns1", "ns2"]),
        st.sampled_from(["z1", "z2", None]),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_indices_always_match_a_brute_force_scan(ops: list[tuple[str, str, str, Any]]) -> None:
    store = full_indexer()
    model: dict[str, dict[str, Any]] = {}
    for op, name, namespace, zone in ops:
        item = obj(name, namespace, labels={"zone": zone} if zone else None)
        if op == "add":
            store.add(item)
            model[object_key(item)] = item
        elif op == "delete":
            store.delete(item)
            model.pop(object_key(item), None)
        else:
            keep = {k: v for k, v in model.items() if not k.endswith(f"/{name}")}
            tombstones = store.replace(list(keep.values()), "1")
            assert {t.key for t in tombstones} == set(model) - set(keep)
            model = keep
    assert set(store.keys()) == set(model)
    for zone in ("z1", "z2"):
        expected = sorted(
            k for k, v in model.items() if v["metadata"].get("labels", {}).get("zone") == zone
        )
        assert store.index_keys("zone", zone) == expected
    for namespace in ("ns1", "ns2"):
        expected = sorted(k for k in model if k.startswith(f"{namespace}/"))
        assert store.index_keys(NAMESPACE_INDEX, namespace) == expected
