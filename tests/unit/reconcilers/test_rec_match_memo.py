"""The remembered match check: the same (uid, resourceVersion, grid uid, desired hash) gives
the same answer without walking the objects again; anything else is checked afresh."""

from __future__ import annotations

import copy
from typing import Any

from servicegroup.grid.compare import applied_hash
from servicegroup.grid.labels import APPLIED_HASH
from servicegroup.reconcilers import children
from servicegroup.reconcilers.children import GridMemory, MatchKey

GRID_UID = "grid-uid"


def desired(image: str = "app:1") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "g-zone-a",
            "namespace": "default",
            "ownerReferences": [
                {"apiVersion": "superedge.io/v1", "kind": "DeploymentGrid", "name": "g",
                 "uid": GRID_UID, "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }  # fmt: skip
    obj["metadata"]["annotations"] = {APPLIED_HASH: applied_hash(obj)}
    return obj


def live_of(want: dict[str, Any], *, rv: str, uid: str = "child-uid") -> dict[str, Any]:
    live = copy.deepcopy(want)
    live["metadata"].update(uid=uid, resourceVersion=rv)
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    return live


def counting(monkeypatch: Any) -> list[int]:
    calls = [0]
    real = children.matches

    def spy(*args: Any, **kwargs: Any) -> bool:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(children, "matches", spy)
    return calls


def test_a_positive_answer_is_remembered_for_that_version(monkeypatch: Any) -> None:
    calls = counting(monkeypatch)
    memory = GridMemory(uid=GRID_UID)
    want = desired()
    live = live_of(want, rv="7")
    assert children._matches_memo(memory, "g-zone-a", live, want)
    assert children._matches_memo(memory, "g-zone-a", live, desired())  # re-rendered, same
    assert calls[0] == 1
    assert memory.matched["g-zone-a"] == MatchKey(
        "child-uid", "7", GRID_UID, want["metadata"]["annotations"][APPLIED_HASH]
    )


def test_a_new_version_of_the_child_is_checked_again(monkeypatch: Any) -> None:
    calls = counting(monkeypatch)
    memory = GridMemory(uid=GRID_UID)
    want = desired()
    assert children._matches_memo(memory, "g-zone-a", live_of(want, rv="7"), want)
    edited = live_of(want, rv="8")
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "edited-by-hand"
    assert not children._matches_memo(memory, "g-zone-a", edited, want)
    assert calls[0] == 2
    assert "g-zone-a" not in memory.matched


def test_another_desired_child_or_another_object_is_checked_again(monkeypatch: Any) -> None:
    calls = counting(monkeypatch)
    memory = GridMemory(uid=GRID_UID)
    want = desired()
    live = live_of(want, rv="7")
    assert children._matches_memo(memory, "g-zone-a", live, want)
    assert not children._matches_memo(memory, "g-zone-a", live, desired(image="app:2"))
    assert children._matches_memo(memory, "g-zone-a", live, want)
    recreated = live_of(want, rv="7", uid="another-uid")
    assert children._matches_memo(memory, "g-zone-a", recreated, want)
    assert calls[0] == 4


def test_a_live_object_without_a_version_is_never_remembered(monkeypatch: Any) -> None:
    calls = counting(monkeypatch)
    memory = GridMemory(uid=GRID_UID)
    want = desired()
    live = live_of(want, rv="7")
    del live["metadata"]["resourceVersion"]
    assert children._matches_memo(memory, "g-zone-a", live, want)
    assert children._matches_memo(memory, "g-zone-a", live, want)
    assert calls[0] == 2
    assert memory.matched == {}
