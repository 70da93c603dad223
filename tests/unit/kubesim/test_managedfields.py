"""Server-side apply and managedFields bookkeeping, scenario by scenario as kube-apiserver."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.kubesim import fieldpath as fp
from servicegroup.kubesim import managedfields
from servicegroup.kubesim.fieldpath import FieldSet
from servicegroup.kubesim.listtypes import ListTypes, builtin_list_types, crd_list_types
from servicegroup.kubesim.managedfields import ApplyConflict, Conflict, fields_of
from servicegroup.kubesim.patch import PatchError

DEPLOYMENT = builtin_list_types("apps", "Deployment")
T = [f"2024-05-01T10:00:{s:02d}Z" for s in range(30)]


def nginx(image: str = "nginx:1.25", **extra: Any) -> dict[str, Any]:
    return {"name": "nginx", "image": image, **extra}


def deployment(
    *,
    replicas: int | None = None,
    labels: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": containers if containers is not None else [nginx()]},
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": labels if labels is not None else {"app": "web"},
        },
        "spec": spec,
    }


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str = "ctl",
    *,
    force: bool = False,
    now: str = T[1],
    subresource: str | None = None,
    types: ListTypes = DEPLOYMENT,
    api_version: str = "apps/v1",
) -> dict[str, Any]:
    return managedfields.apply(
        live,
        config,
        manager=manager,
        force=force,
        api_version=api_version,
        subresource=subresource,
        now=now,
        list_types=types,
    )


def update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    now: str = T[2],
    subresource: str | None = None,
    types: ListTypes = DEPLOYMENT,
    api_version: str = "apps/v1",
) -> dict[str, Any]:
    """A non-apply write as the server stores it: `new` plus its recorded managedFields."""
    stored = copy.deepcopy(new)
    entries = managedfields.record_update(
        old,
        stored,
        manager=manager,
        api_version=api_version,
        subresource=subresource,
        now=now,
        list_types=types,
    )
    meta = stored.setdefault("metadata", {})
    meta.pop("managedFields", None)
    if entries:
        meta["managedFields"] = entries
    return stored


def edit(obj: dict[str, Any], manager: str, change: Any, *, now: str = T[3]) -> dict[str, Any]:
    """GET, modify, PUT as `manager` (a kubectl edit, an HPA's scale, a patch...)."""
    new = copy.deepcopy(obj)
    change(new)
    return update(obj, new, manager, now=now)


def entries(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> set[str]:
    for entry in obj["metadata"].get("managedFields", []):
        if entry["manager"] == manager and entry["operation"] == operation:
            return {fp.path_to_string(p) for p in fields_of(entry).paths()}
    return set()


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].pop("managedFields", None)
    return out


IMAGE = '.spec.template.spec.containers[name="nginx"].image'
CONTAINER_KEY = 'k:{"name":"nginx"}'

# ---- apply -------------------------------------------------------------------------------


def test_apply_creates_the_object_with_one_apply_entry() -> None:
    config = deployment(replicas=2)
    obj = apply(None, config, now=T[1])
    assert without_managed_fields(obj) == config
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "ctl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T[1],
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {
                            "f:containers": {CONTAINER_KEY: {".": {}, "f:image": {}, "f:name": {}}}
                        },
                    },
                },
            },
        }
    ]


def test_reapplying_unchanged_config_changes_nothing_not_even_the_time() -> None:
    config = deployment(replicas=2)
    obj = apply(None, config, now=T[1])
    again = apply(obj, copy.deepcopy(config), now=T[5])
    assert again == obj
    changed = apply(obj, deployment(replicas=3), now=T[6])
    assert changed["spec"]["replicas"] == 3
    assert changed["metadata"]["managedFields"][0]["time"] == T[6]
    assert (
        changed["metadata"]["managedFields"][0]["fieldsV1"]
        == obj["metadata"]["managedFields"][0]["fieldsV1"]
    )


def test_apply_never_mutates_its_inputs_and_keeps_server_metadata() -> None:
    live = apply(None, deployment(replicas=1))
    live["metadata"].update(uid="u-1", resourceVersion="7", generation=2, creationTimestamp=T[0])
    before = copy.deepcopy(live)
    config = deployment(replicas=4)
    config_before = copy.deepcopy(config)
    out = apply(live, config, now=T[4])
    assert live == before
    assert config == config_before
    assert out["metadata"]["uid"] == "u-1"
    assert out["metadata"]["resourceVersion"] == "7"
    assert out["metadata"]["creationTimestamp"] == T[0]
    assert out["spec"]["replicas"] == 4


def test_fields_dropped_from_the_config_are_removed() -> None:
    sidecar = {"name": "sidecar", "image": "envoy", "env": [{"name": "A", "value": "1"}]}
    first = deployment(
        replicas=2,
        labels={"app": "web", "tier": "front"},
        containers=[nginx(env=[{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]), sidecar],
    )
    obj = apply(None, first)
    second = deployment(
        labels={"app": "web"}, containers=[nginx(env=[{"name": "X", "value": "1"}])]
    )
    out = apply(obj, second, now=T[3])
    assert out["metadata"]["labels"] == {"app": "web"}
    assert "replicas" not in out["spec"]
    containers = out["spec"]["template"]["spec"]["containers"]
    assert containers == [nginx(env=[{"name": "X", "value": "1"}])]
    assert without_managed_fields(out) == second


def test_removing_the_last_label_drops_the_map() -> None:
    obj = apply(None, deployment(labels={"only": "one"}))
    out = apply(obj, deployment(labels={}))
    assert "labels" not in out["metadata"]


def test_a_field_co_owned_by_another_applier_survives_its_removal() -> None:
    obj = apply(None, deployment(labels={"app": "web", "tier": "front"}))
    partial = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
    }
    shared = apply(obj, partial, "labeler")
    assert shared["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert ".metadata.labels.tier" in owned(shared, "ctl")
    assert owned(shared, "labeler") == {".metadata.labels.tier"}
    out = apply(shared, deployment(labels={"app": "web"}), now=T[4])
    assert out["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert ".metadata.labels.tier" not in owned(out, "ctl")
    assert owned(out, "labeler") == {".metadata.labels.tier"}


def test_conflict_between_appliers_then_force_takes_ownership() -> None:
    obj = apply(None, deployment(replicas=2), "a")
    with pytest.raises(ApplyConflict) as err:
        apply(obj, deployment(replicas=3), "b")
    assert str(err.value) == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    assert err.value.conflicts == [Conflict("a", ".spec.replicas", "Apply", "", "")]
    assert err.value.causes() == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "a"',
            "field": ".spec.replicas",
        }
    ]
    forced = apply(obj, deployment(replicas=3), "b", force=True, now=T[4])
    assert forced["spec"]["replicas"] == 3
    assert ".spec.replicas" not in owned(forced, "a")
    assert ".spec.replicas" in owned(forced, "b")
    assert IMAGE in owned(forced, "a")
    assert IMAGE in owned(forced, "b")


def test_same_value_is_shared_ownership_without_conflict() -> None:
    obj = apply(None, deployment(replicas=2), "a")
    both = apply(obj, deployment(replicas=2), "b", now=T[2])
    assert owned(both, "a") == owned(both, "b")
    assert without_managed_fields(both) == without_managed_fields(obj)
    # The object did not change, so kube-apiserver stamps no time on b's new entry
    # (and an entry without time sorts before every timed one).
    assert entries(both) == [("b", "Apply"), ("a", "Apply")]
    assert "time" not in both["metadata"]["managedFields"][0]


def test_conflicts_with_updaters_are_grouped_by_manager() -> None:
    created = update(None, deployment(replicas=1), "kubectl-create", now=T[1])
    scaled = edit(created, "hpa", lambda o: o["spec"].update(replicas=4), now=T[2])
    config = deployment(replicas=3, containers=[nginx("nginx:2")])
    with pytest.raises(ApplyConflict) as err:
        apply(scaled, config, now=T[3])
    assert str(err.value) == (
        "Apply failed with 2 conflicts: "
        'conflicts with "hpa" using apps/v1:\n'
        "- .spec.replicas\n"
        'conflicts with "kubectl-create" using apps/v1:\n'
        f"- {IMAGE}"
    )
    assert err.value.conflicts == [
        Conflict("hpa", ".spec.replicas", "Update", "apps/v1", ""),
        Conflict("kubectl-create", IMAGE, "Update", "apps/v1", ""),
    ]
    assert [c["message"] for c in err.value.causes()] == [
        'conflict with "hpa" using apps/v1',
        'conflict with "kubectl-create" using apps/v1',
    ]


def test_single_conflict_with_client_side_apply_has_kubectl_wording() -> None:
    created = update(None, deployment(replicas=1), "kubectl-client-side-apply", now=T[1])
    with pytest.raises(ApplyConflict) as err:
        apply(created, deployment(replicas=5), now=T[2])
    assert str(err.value) == (
        "Apply failed with 1 conflict: "
        'conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )


def test_apply_after_kubectl_edit_conflicts_only_on_the_edited_field() -> None:
    obj = apply(None, deployment(replicas=2), now=T[1])
    edited = edit(
        obj,
        "kubectl-edit",
        lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="nginx:2"),
    )
    assert owned(edited, "kubectl-edit", "Update") == {IMAGE}
    assert IMAGE not in owned(edited, "ctl")
    with pytest.raises(ApplyConflict) as err:
        apply(edited, deployment(replicas=3), now=T[4])
    assert err.value.conflicts == [Conflict("kubectl-edit", IMAGE, "Update", "apps/v1", "")]
    agreeing = apply(edited, deployment(replicas=3, containers=[nginx("nginx:2")]), now=T[4])
    assert agreeing["spec"]["replicas"] == 3
    assert IMAGE in owned(agreeing, "ctl")
    assert owned(agreeing, "kubectl-edit", "Update") == {IMAGE}
    reverted = apply(edited, deployment(replicas=2), force=True, now=T[5])
    assert reverted["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert entries(reverted) == [("ctl", "Apply")]


def test_replicas_scaled_by_another_manager_survive_applies_without_replicas() -> None:
    # Our config never sets replicas; the server defaulted it; an HPA scales.
    created = apply(None, deployment(), now=T[1])
    defaulted = copy.deepcopy(created)
    defaulted["spec"]["replicas"] = 1
    scaled = edit(defaulted, "hpa", lambda o: o["spec"].update(replicas=5), now=T[2])
    assert owned(scaled, "hpa", "Update") == {".spec.replicas"}
    again = apply(scaled, deployment(containers=[nginx("nginx:1.26")]), now=T[3])
    assert again["spec"]["replicas"] == 5
    assert again["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    once_more = apply(again, deployment(containers=[nginx("nginx:1.27")]), now=T[4])
    assert once_more["spec"]["replicas"] == 5
    assert owned(once_more, "hpa", "Update") == {".spec.replicas"}


def test_replicas_we_stop_applying_stay_if_an_hpa_took_them_and_go_otherwise() -> None:
    ours = apply(None, deployment(replicas=2), now=T[1])
    assert "replicas" not in apply(ours, deployment(), now=T[2])["spec"]
    scaled = edit(ours, "hpa", lambda o: o["spec"].update(replicas=7), now=T[2])
    assert ".spec.replicas" not in owned(scaled, "ctl")
    out = apply(scaled, deployment(), now=T[3])
    assert out["spec"]["replicas"] == 7
    with pytest.raises(ApplyConflict) as err:
        apply(out, deployment(replicas=3), now=T[4])
    assert str(err.value) == (
        'Apply failed with 1 conflict: conflict with "hpa" using apps/v1: .spec.replicas'
    )


def test_containers_merge_by_name_and_a_foreign_container_survives() -> None:
    obj = apply(None, deployment(), now=T[1])
    sidecar = {"name": "sidecar", "image": "envoy:1"}
    patched = edit(
        obj, "kubectl-patch", lambda o: o["spec"]["template"]["spec"]["containers"].append(sidecar)
    )
    assert 'k:{"name":"sidecar"}' in str(patched["metadata"]["managedFields"])
    metrics = {"name": "metrics", "image": "prom:1"}
    grown = apply(patched, deployment(containers=[nginx("nginx:2"), metrics]), now=T[4])
    names = [c["name"] for c in grown["spec"]["template"]["spec"]["containers"]]
    assert names == ["nginx", "sidecar", "metrics"]
    assert grown["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    shrunk = apply(grown, deployment(containers=[nginx("nginx:2")]), now=T[5])
    assert shrunk["spec"]["template"]["spec"]["containers"] == [nginx("nginx:2"), sidecar]
    assert owned(shrunk, "kubectl-patch", "Update") == owned(patched, "kubectl-patch", "Update")


def test_dropped_item_goes_even_if_an_updater_changed_a_field_in_it() -> None:
    metrics = {"name": "metrics", "image": "prom:1"}
    obj = apply(None, deployment(containers=[nginx(), metrics]), now=T[1])
    edited = edit(
        obj,
        "kubectl-edit",
        lambda o: o["spec"]["template"]["spec"]["containers"][1].update(image="prom:2"),
    )
    out = apply(edited, deployment(), now=T[4])
    assert out["spec"]["template"]["spec"]["containers"] == [nginx()]
    assert entries(out) == [("ctl", "Apply")]


def test_dropped_item_keeps_only_a_co_applier_s_fields() -> None:
    # Upstream behaviour (kubernetes/kubernetes#128102): another *applier* owning a field
    # inside the item also owns the item, so it stays with that applier's fields only.
    metrics = {"name": "metrics", "image": "prom:1"}
    obj = apply(None, deployment(containers=[nginx(), metrics]), now=T[1])
    injector = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "metrics", "args": ["--inject"]}]}}},
    }
    injected = apply(obj, injector, "injector", now=T[2])
    out = apply(injected, deployment(), now=T[3])
    assert out["spec"]["template"]["spec"]["containers"] == [
        nginx(),
        {"name": "metrics", "args": ["--inject"]},
    ]


def test_labels_are_granular_between_managers() -> None:
    obj = apply(None, deployment(labels={"app": "web", "mine": "1"}), now=T[1])
    labelled = edit(obj, "kubectl-label", lambda o: o["metadata"]["labels"].update(team="x"))
    assert owned(labelled, "kubectl-label", "Update") == {".metadata.labels.team"}
    out = apply(labelled, deployment(labels={"app": "web"}), now=T[4])
    assert out["metadata"]["labels"] == {"app": "web", "team": "x"}


def test_status_subresource_has_its_own_entries() -> None:
    obj = apply(None, deployment(replicas=1), now=T[1])
    status: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }
    with_status = apply(obj, status, subresource="status", now=T[2])
    assert with_status["status"] == status["status"]
    assert entries(with_status) == [("ctl", "Apply"), ("ctl", "Apply")]
    status_entry = with_status["metadata"]["managedFields"][1]
    assert status_entry["subresource"] == "status"
    assert status_entry["fieldsV1"] == {
        "f:status": {
            "f:conditions": {'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}}}
        }
    }
    assert "subresource" not in with_status["metadata"]["managedFields"][0]
    other = copy.deepcopy(status)
    other["status"]["conditions"][0]["status"] = "False"
    with pytest.raises(ApplyConflict) as err:
        apply(with_status, other, "other", subresource="status", now=T[3])
    assert str(err.value) == (
        'Apply failed with 1 conflict: conflict with "ctl" with subresource "status": '
        '.status.conditions[type="Available"].status'
    )


def test_first_apply_on_an_untracked_object_credits_before_first_apply() -> None:
    live = without_managed_fields(update(None, deployment(replicas=1), "x"))
    out = apply(live, deployment(replicas=1), now=T[4])
    assert entries(out) == [("ctl", "Apply"), ("before-first-apply", "Update")]
    assert ".spec.replicas" in owned(out, "before-first-apply", "Update")
    with pytest.raises(ApplyConflict) as err:
        apply(live, deployment(replicas=2), now=T[4])
    assert err.value.conflicts == [
        Conflict("before-first-apply", ".spec.replicas", "Update", "apps/v1", "")
    ]


def test_apply_refuses_wrong_types_managed_fields_and_duplicate_keys() -> None:
    bad_version = deployment()
    bad_version["apiVersion"] = "apps/v1beta1"
    with pytest.raises(PatchError) as err:
        apply(None, bad_version)
    assert (err.value.status, str(err.value)) == (
        400,
        "invalid object type: apps/v1beta1, Kind=Deployment",
    )
    live = apply(None, deployment())
    wrong_kind = deployment()
    wrong_kind["kind"] = "StatefulSet"
    with pytest.raises(PatchError) as err:
        apply(live, wrong_kind)
    assert str(err.value) == "invalid object type: apps/v1, Kind=StatefulSet"
    with_fields = deployment()
    with_fields["metadata"]["managedFields"] = []
    with pytest.raises(PatchError) as err:
        apply(None, with_fields)
    assert str(err.value) == "metadata.managedFields must be nil"
    duplicated = deployment(containers=[nginx(), nginx("other")])
    with pytest.raises(PatchError) as err:
        apply(None, duplicated)
    assert err.value.status == 500
    assert str(err.value) == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        '.spec.template.spec.containers: duplicate entries for key [name="nginx"]'
    )


def test_apply_config_null_owns_and_removes_the_field() -> None:
    obj = apply(None, deployment(replicas=2), now=T[1])
    config = deployment()
    config["spec"]["replicas"] = None
    out = apply(obj, config, now=T[2])
    assert "replicas" not in out["spec"]
    assert ".spec.replicas" in owned(out, "ctl")


# ---- record_update ----------------------------------------------------------------------


def test_create_records_the_creator_with_dot_markers_like_the_apiserver() -> None:
    created = update(None, deployment(replicas=1), "kubectl-create", now=T[1])
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": T[1],
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                CONTAINER_KEY: {
                                    ".": {},
                                    "f:image": {},
                                    "f:name": {},
                                    "f:resources": {},
                                }
                            }
                        },
                    },
                },
            },
        }
    ]


def test_put_by_another_manager_takes_what_it_changed() -> None:
    created = update(None, deployment(replicas=1), "kubectl-create", now=T[1])

    def change(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
        o["metadata"]["annotations"] = {"note": "x"}
        del o["metadata"]["labels"]

    edited = edit(created, "editor", change, now=T[2])
    assert owned(edited, "editor", "Update") == {
        ".metadata.annotations",
        ".metadata.annotations.note",
        IMAGE,
    }
    creator = owned(edited, "kubectl-create", "Update")
    assert IMAGE not in creator
    assert ".metadata.labels.app" not in creator
    assert ".spec.replicas" in creator
    assert entries(edited) == [("kubectl-create", "Update"), ("editor", "Update")]


def test_noop_update_keeps_managed_fields_and_updates_merge_into_one_entry() -> None:
    created = update(None, deployment(replicas=1), "kubectl-create", now=T[1])
    same = edit(created, "editor", lambda o: None, now=T[5])
    assert same["metadata"]["managedFields"] == created["metadata"]["managedFields"]
    first = edit(created, "editor", lambda o: o["spec"].update(replicas=2), now=T[6])
    second = edit(first, "editor", lambda o: o["spec"].update(paused=True), now=T[7])
    assert owned(second, "editor", "Update") == {".spec.replicas", ".spec.paused"}
    assert [e["time"] for e in second["metadata"]["managedFields"]] == [T[1], T[7]]


def test_an_entry_whose_fields_all_go_is_dropped() -> None:
    types = builtin_list_types("", "ConfigMap")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    created = update(None, cm, "creator", types=types, api_version="v1", now=T[1])
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    emptied = copy.deepcopy(created)
    del emptied["data"]
    out = update(created, emptied, "cleaner", types=types, api_version="v1", now=T[2])
    assert "managedFields" not in out["metadata"]


def test_status_update_is_recorded_against_the_status_subresource() -> None:
    created = update(None, deployment(replicas=1), "kubectl-create", now=T[1])
    new = copy.deepcopy(created)
    new["status"] = {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
    out = update(created, new, "kube-controller-manager", subresource="status", now=T[2])
    entry = out["metadata"]["managedFields"][1]
    assert (entry["manager"], entry["subresource"]) == ("kube-controller-manager", "status")
    assert entry["fieldsV1"] == {
        "f:status": {
            "f:conditions": {
                ".": {},
                'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}},
            },
            "f:replicas": {},
        }
    }


def test_managed_fields_reset_and_replacement_by_the_client() -> None:
    created = update(None, deployment(replicas=1), "kubectl-create", now=T[1])
    resets: list[list[dict[str, Any]]] = [[], [{}]]
    for reset in resets:
        new = copy.deepcopy(created)
        new["metadata"]["managedFields"] = reset
        new["spec"]["replicas"] = 2
        assert (
            managedfields.record_update(
                created,
                new,
                manager="x",
                api_version="apps/v1",
                subresource=None,
                now=T[2],
                list_types=DEPLOYMENT,
            )
            == []
        )
    untracked = without_managed_fields(created)
    later = edit(untracked, "editor", lambda o: o["spec"].update(replicas=9), now=T[3])
    assert "managedFields" not in later["metadata"]
    replaced = copy.deepcopy(created)
    replaced["metadata"]["managedFields"] = [
        {
            "manager": "imported",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": T[0],
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]
    out = update(created, replaced, "editor", now=T[4])
    assert entries(out) == [("imported", "Update")]


def test_more_than_ten_updaters_fold_into_ancient_changes() -> None:
    types = builtin_list_types("", "ConfigMap")
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"base": "x"},
    }
    obj = update(None, obj, "creator", types=types, api_version="v1", now=T[0])
    for i in range(11):
        new = copy.deepcopy(obj)
        new["data"][f"k{i}"] = "v"
        obj = update(obj, new, f"m{i:02d}", types=types, api_version="v1", now=T[i + 1])
    managers = entries(obj)
    assert len(managers) == 10
    assert managers[0] == ("ancient-changes", "Update")
    assert [m for m, _ in managers[1:]] == [f"m{i:02d}" for i in range(2, 11)]
    assert owned(obj, "ancient-changes", "Update") == {
        ".data",
        ".data.base",
        ".data.k0",
        ".data.k1",
    }
    assert obj["metadata"]["managedFields"][0]["time"] == T[2]


def test_an_object_created_with_nothing_to_own_stays_untracked() -> None:
    types = builtin_list_types("", "ConfigMap")
    bare: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    obj = update(None, bare, "creator", types=types, api_version="v1", now=T[0])
    assert "managedFields" not in obj["metadata"]
    new = copy.deepcopy(obj)
    new["data"] = {"k": "v"}
    assert "managedFields" not in update(obj, new, "m", types=types, api_version="v1")["metadata"]


def test_entries_sort_apply_first_then_by_time_then_manager() -> None:
    obj = update(None, deployment(replicas=1), "zeta", now=T[3])
    obj = edit(obj, "alpha", lambda o: o["metadata"]["labels"].update(a="1"), now=T[3])
    obj = edit(obj, "old", lambda o: o["metadata"]["labels"].update(b="1"), now=T[4])
    obj = apply(obj, deployment(replicas=1), "late-applier", now=T[9])
    assert entries(obj) == [
        ("late-applier", "Apply"),
        ("alpha", "Update"),
        ("zeta", "Update"),
        ("old", "Update"),
    ]


# ---- fieldsV1 encoding ------------------------------------------------------------------


def test_field_sets_of_sets_multi_key_maps_and_atomic_items() -> None:
    pod_types = builtin_list_types("", "Pod")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "finalizers": ["b.io/x", "a.io/y"],
            "ownerReferences": [
                {"uid": "u1", "kind": "ReplicaSet", "name": "rs", "apiVersion": "apps/v1"}
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 80}],
                }
            ]
        },
    }
    out = apply(None, pod, types=pod_types, api_version="v1")
    assert out["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:metadata": {
            "f:finalizers": {'v:"a.io/y"': {}, 'v:"b.io/x"': {}},
            "f:ownerReferences": {'k:{"uid":"u1"}': {}},
        },
        "f:spec": {
            "f:containers": {
                'k:{"name":"c"}': {
                    ".": {},
                    "f:name": {},
                    "f:ports": {
                        'k:{"containerPort":53,"protocol":"UDP"}': {
                            ".": {},
                            "f:containerPort": {},
                            "f:protocol": {},
                        },
                        'k:{"containerPort":80,"protocol":"TCP"}': {
                            ".": {},
                            "f:containerPort": {},
                        },
                    },
                }
            }
        },
    }
    paths = {fp.path_to_string(p) for p in fields_of(out["metadata"]["managedFields"][0]).paths()}
    assert '.metadata.finalizers[="a.io/y"]' in paths
    assert '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]' in paths


def test_custom_resources_own_undeclared_keys_with_dot_markers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "units": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
            }
        },
    }
    types = crd_list_types(schema)
    grid = {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "g", "namespace": "default"},
        "spec": {"template": {"replicas": 2, "selector": {"x": "y"}}, "units": [{"name": "u1"}]},
    }
    out = apply(None, grid, types=types, api_version="superedge.io/v1")
    assert out["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:spec": {
            "f:template": {"f:replicas": {}, "f:selector": {".": {}, "f:x": {}}},
            "f:units": {'k:{"name":"u1"}': {".": {}, "f:name": {}}},
        }
    }


_names = st.text(alphabet="abcxyz.-/", min_size=1, max_size=4)
_keyvals = st.one_of(st.integers(-3, 99), st.text(max_size=3), st.booleans())
_elements = st.one_of(
    _names.map(fp.field),
    st.dictionaries(_names, _keyvals, min_size=1, max_size=2).map(fp.key),
    _keyvals.map(fp.value),
    st.integers(0, 5).map(fp.index),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_elements, min_size=1, max_size=4), max_size=8))
def test_field_set_round_trips_through_fields_v1(paths: list[list[fp.PathElement]]) -> None:
    original = FieldSet.of(*paths)
    encoded = original.to_fields_v1()
    assert FieldSet.from_fields_v1(encoded) == original
    assert {tuple(p) for p in paths} == set(original.paths())
    assert FieldSet.from_fields_v1(encoded).to_fields_v1() == encoded


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(_elements, min_size=1, max_size=3), max_size=6),
    st.lists(st.lists(_elements, min_size=1, max_size=3), max_size=6),
)
def test_field_set_algebra(a_paths: list[list[Any]], b_paths: list[list[Any]]) -> None:
    a, b = FieldSet.of(*a_paths), FieldSet.of(*b_paths)
    a_all, b_all = set(a.paths()), set(b.paths())
    assert set(a.union(b).paths()) == a_all | b_all
    assert set(a.intersection(b).paths()) == a_all & b_all
    assert set(a.difference(b).paths()) == a_all - b_all
    rec = set(a.recursive_difference(b).paths())
    assert rec == {p for p in a_all if not any(p[: len(q)] == q for q in b_all)}


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.text(max_size=3), min_size=1),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.text(max_size=3), max_size=4),
)
def test_apply_is_idempotent_and_config_wins(first: dict[str, str], second: dict[str, str]) -> None:
    types = builtin_list_types("", "ConfigMap")

    def cm(data: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}

    live = apply(None, cm(first), types=types, api_version="v1", now=T[1])
    again = apply(live, cm(first), types=types, api_version="v1", now=T[2])
    assert again == live
    out = apply(live, cm(second), types=types, api_version="v1", now=T[3])
    assert out.get("data", {}) == second
    assert owned(out, "ctl") == {f".data.{k}" for k in second}
