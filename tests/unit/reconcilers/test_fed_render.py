"""Federation objects: which grid is which, keys, copies and local grids, match checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.controller import Request
from servicegroup.grid.labels import APPLIED_HASH, LAST_APPLIED
from servicegroup.reconcilers.federation_render import (
    COPY_SELECTOR,
    FED_KINDS,
    FINALIZER,
    LEGACY_FINALIZER,
    LOCAL_SELECTOR,
    NOT_COPY_SELECTOR,
    ORIGIN_ANNOTATION,
    ORIGINAL_SELECTOR,
    ORIGINAL_UID_ANNOTATION,
    applied_matches,
    fed_request,
    finalizers_patch,
    index_by_origin,
    is_copy,
    is_local,
    is_original,
    made_by_federation,
    owned_copy,
    parse_fed_request,
    render_copy,
    render_local,
    without_our_finalizers,
)

DG = FED_KINDS[0]


def original(**labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {
            "name": "demo",
            "namespace": "apps",
            "uid": "uid-1",
            "resourceVersion": "7",
            "generation": 3,
            "labels": {"superedge.io/fed": "yes", "team": "edge", **labels},
            "annotations": {"note": "x", LAST_APPLIED: "{}"},
            "finalizers": ["other"],
        },
        "spec": {
            "gridUniqKey": "zone",
            "template": {"replicas": 1, "template": {"metadata": {"labels": {"a": "b"}}}},
        },
        "status": {"states": {"zone1": {"replicas": 1}}},
    }


def test_selectors_are_the_documented_strings() -> None:
    assert COPY_SELECTOR == "superedge.io/dis=yes"
    assert NOT_COPY_SELECTOR == "superedge.io/dis!=yes"
    assert ORIGINAL_SELECTOR == (
        "superedge.io/fed=yes,superedge.io/dis!=yes,!superedge.io/target-namespace"
    )
    assert LOCAL_SELECTOR == "superedge.io/target-namespace,superedge.io/dis!=yes"


def test_classification() -> None:
    orig = original()
    made = render_copy(orig, kind=DG, namespace="clusternet-a")
    local = render_local(made, hub_namespace="clusternet-a")
    assert (is_original(orig), is_copy(orig), is_local(orig)) == (True, False, False)
    assert (is_original(made), is_copy(made), is_local(made)) == (False, True, False)
    assert (is_original(local), is_copy(local), is_local(local)) == (False, False, True)
    plain = copy.deepcopy(orig)
    del plain["metadata"]["labels"]["superedge.io/fed"]
    assert not is_original(plain)


def test_copy_shape() -> None:
    orig = original()
    made = render_copy(orig, kind=DG, namespace="clusternet-a")
    meta = made["metadata"]
    assert meta["name"] == "demo"
    assert meta["namespace"] == "clusternet-a"
    assert meta["labels"] == {
        "superedge.io/fed": "yes",
        "team": "edge",
        "superedge.io/dis": "yes",
        "superedge.io/target-namespace": "apps",
    }
    assert meta["annotations"]["note"] == "x"
    assert meta["annotations"][ORIGINAL_UID_ANNOTATION] == "uid-1"
    assert LAST_APPLIED not in meta["annotations"]
    assert APPLIED_HASH in meta["annotations"]
    # No owner reference: owners cannot live in another namespace.
    assert "ownerReferences" not in meta
    assert set(meta) == {"name", "namespace", "labels", "annotations"}
    assert made["spec"] == orig["spec"]
    assert "status" not in made


def test_copy_shares_nothing_with_the_original() -> None:
    orig = original()
    before = copy.deepcopy(orig)
    made = render_copy(orig, kind=DG, namespace="clusternet-a")
    made["spec"]["template"]["replicas"] = 9
    made["metadata"]["labels"]["x"] = "y"
    assert orig == before


def test_local_grid_shape() -> None:
    made = render_copy(original(), kind=DG, namespace="clusternet-a")
    made["metadata"]["finalizers"] = [FINALIZER]
    local = render_local(made, hub_namespace="clusternet-a")
    meta = local["metadata"]
    assert meta["namespace"] == "apps"
    assert meta["name"] == "demo"
    assert "superedge.io/dis" not in meta["labels"]
    assert meta["labels"]["superedge.io/target-namespace"] == "apps"
    assert meta["annotations"][ORIGIN_ANNOTATION] == "clusternet-a/demo"
    assert ORIGINAL_UID_ANNOTATION not in meta["annotations"]
    assert meta["annotations"][APPLIED_HASH] != made["metadata"]["annotations"][APPLIED_HASH]
    assert "finalizers" not in meta
    assert local["spec"] == made["spec"]
    assert made_by_federation(local)


def test_applied_matches_catches_our_fields_only() -> None:
    desired = render_copy(original(), kind=DG, namespace="clusternet-a")
    live = copy.deepcopy(desired)
    live["metadata"].update(uid="u", resourceVersion="9", generation=2)
    live["metadata"]["labels"]["added-by-someone"] = "x"
    live["spec"]["template"]["strategy"] = {}  # a field we do not set
    live["status"] = {"anything": 1}
    assert applied_matches(live, desired)

    edited = copy.deepcopy(live)
    edited["spec"]["template"]["replicas"] = 5
    assert not applied_matches(edited, desired)

    relabelled = copy.deepcopy(live)
    relabelled["metadata"]["labels"]["team"] = "other"
    assert not applied_matches(relabelled, desired)

    # A field removed from the original changes the hash: the copy no longer matches.
    smaller = copy.deepcopy(original())
    del smaller["spec"]["template"]["template"]
    assert not applied_matches(live, render_copy(smaller, kind=DG, namespace="clusternet-a"))


def test_owned_copy_and_origin_index() -> None:
    made = render_copy(original(), kind=DG, namespace="clusternet-a")
    assert owned_copy(made, namespace="apps", name="demo")
    assert not owned_copy(made, namespace="other", name="demo")
    assert index_by_origin(made) == ["apps/demo"]
    foreign = copy.deepcopy(made)
    del foreign["metadata"]["annotations"][ORIGINAL_UID_ANNOTATION]
    assert not owned_copy(foreign, namespace="apps", name="demo")
    assert index_by_origin(original()) == []


def test_finalizer_helpers() -> None:
    obj = {"metadata": {"resourceVersion": "5", "finalizers": ["a", FINALIZER, LEGACY_FINALIZER]}}
    assert without_our_finalizers(obj) == ["a"]
    assert without_our_finalizers({"metadata": {"finalizers": ["a"]}}) is None
    assert finalizers_patch(obj, ["a"]) == {
        "metadata": {"finalizers": ["a"], "resourceVersion": "5"}
    }


_NAMES = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True)


@given(namespace=_NAMES, name=_NAMES, index=st.integers(0, len(FED_KINDS) - 1))
def test_request_keys_round_trip(namespace: str, name: str, index: int) -> None:
    kind = FED_KINDS[index]
    request = fed_request(namespace, kind, name)
    assert request.namespace == namespace
    assert parse_fed_request(request) == (kind, name)


@pytest.mark.parametrize("bad", ["demo", "nokind/demo", "deploymentgrid/", ""])
def test_bad_request_keys(bad: str) -> None:
    with pytest.raises(ValueError, match="not a federation key"):
        parse_fed_request(Request("ns", bad))
