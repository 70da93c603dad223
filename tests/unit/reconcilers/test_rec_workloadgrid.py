"""WorkloadGridReconciler against a recording fake server and hand-synced informer stores."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from servicegroup.controller import Result, TerminalError
from servicegroup.grid.labels import APPLIED_HASH, FIELD_MANAGER, NODEUNIT
from servicegroup.kube.errors import ApiError
from servicegroup.reconcilers import reasons
from servicegroup.reconcilers.statefulsetgrid import STATEFULSET_GRID
from servicegroup.reconcilers.workloadgrid import TransientWriteError


def three_zones(h: Any) -> None:
    h.node("n0", zone="zone-0")
    h.node("n1", zone="zone-1")
    h.node("n2", zone="zone-2")


def image_of(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_creates_one_child_per_unit_then_settles(harness: Any, make_grid: Any) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()

    assert await harness.reconcile("demo") == Result()

    applies = harness.server.writes_of("apply")
    assert sorted(w.name for w in applies) == ["demo-zone-0", "demo-zone-1", "demo-zone-2"]
    for write in applies:
        unit = write.name.removeprefix("demo-")
        body = write.body
        assert body["metadata"]["labels"][NODEUNIT] == unit
        assert body["metadata"]["labels"]["team"] == "edge"
        assert body["spec"]["template"]["spec"]["nodeSelector"] == {"zone": unit}
        assert body["metadata"]["ownerReferences"][0]["controller"] is True
    status_writes = [w for w in harness.server.writes_of("patch") if w.subresource == "status"]
    assert len(status_writes) == 1
    assert harness.recorder.reasons() == [reasons.CREATED] * 3
    status = harness.status("demo")
    assert status["units"] == 3
    assert set(status["states"]) == {"zone-0", "zone-1", "zone-2"}

    # The watch delivers our writes: nothing left to do, nothing written, no Event.
    harness.sync()
    before = len(harness.server.writes)
    assert await harness.reconcile("demo") == Result()
    assert len(harness.server.writes) == before
    assert harness.recorder.reasons() == [reasons.CREATED] * 3


async def test_stale_cache_after_our_writes_causes_no_second_write(
    harness: Any, make_grid: Any
) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()
    await harness.reconcile("demo")
    writes = len(harness.server.writes)

    # A second reconcile before any watch event arrived (the cache still shows the old world).
    assert await harness.reconcile("demo") == Result()
    assert len(harness.server.writes) == writes


async def test_hand_edit_of_our_field_is_reverted_others_fields_survive(
    harness: Any, make_grid: Any
) -> None:
    harness.node("n0", zone="zone-0")
    harness.grid(make_grid(replicas=None))
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()

    # Another manager sets replicas (an HPA) and an annotation: not ours, no write.
    child = copy.deepcopy(harness.server.get("Deployment", "demo-zone-0"))
    child["spec"]["replicas"] = 7
    child["metadata"]["annotations"]["example.com/note"] = "hi"
    harness.server.put(child)
    harness.sync()
    writes = len(harness.server.writes)
    await harness.reconcile("demo")
    assert len(harness.server.writes) == writes

    # A hand edit of the image (our field): applied back, Updated Event.
    child = copy.deepcopy(harness.server.get("Deployment", "demo-zone-0"))
    child["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:6"
    harness.server.put(child)
    harness.sync()
    await harness.reconcile("demo")
    applies = harness.server.writes_of("apply")
    assert image_of(applies[-1].body) == "nginx:1"
    assert "replicas" not in applies[-1].body["spec"]
    assert harness.recorder.reasons()[-1] == reasons.UPDATED


async def test_template_change_updates_only_units_using_it(harness: Any, make_grid: Any) -> None:
    three_zones(harness)
    pool = {
        "canary": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": {
                "metadata": {"labels": {"app": "demo"}},
                "spec": {"containers": [{"name": "main", "image": "nginx:2"}]},
            },
        }
    }
    harness.grid(make_grid(templatePool=pool, templates={"zone-1": "canary"}))
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()
    assert image_of(harness.server.get("Deployment", "demo-zone-1")) == "nginx:2"
    before = len(harness.server.writes_of("apply"))

    grid = copy.deepcopy(harness.server.get("DeploymentGrid", "demo"))
    grid["spec"]["templatePool"]["canary"]["template"]["spec"]["containers"][0]["image"] = "x:3"
    grid["metadata"]["generation"] += 1
    harness.server.put(grid)
    harness.sync()
    await harness.reconcile("demo")

    applied = [w.name for w in harness.server.writes_of("apply")[before:]]
    assert applied == ["demo-zone-1"]


async def test_name_taken_by_a_foreign_object_is_never_touched(
    harness: Any, make_grid: Any
) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    foreign = harness.child(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "demo-zone-1", "labels": {"mine": "yes"}},
            "spec": {"replicas": 1},
        }
    )
    harness.sync()

    await harness.reconcile("demo")

    assert sorted(w.name for w in harness.server.writes_of("apply")) == [
        "demo-zone-0",
        "demo-zone-2",
    ]
    assert harness.server.get("Deployment", "demo-zone-1") == foreign
    conflict = harness.condition("demo", "ChildConflict")
    assert conflict is not None and conflict["reason"] == "NotControlledByGrid"
    assert "zone-1" in conflict["message"]
    assert reasons.CHILD_CONFLICT in harness.recorder.reasons("Warning")
    # The handler of the Deployment informer can wake the grid when the name is freed.
    assert harness.reconciler.waiters.waiting("default/demo-zone-1") is not None

    # The foreign object goes away: the child is created, the condition disappears.
    del harness.server.objects[("Deployment", "default", "demo-zone-1")]
    harness.sync()
    await harness.reconcile("demo")
    assert harness.server.writes_of("apply")[-1].name == "demo-zone-1"
    harness.sync()
    await harness.reconcile("demo")
    assert harness.condition("demo", "ChildConflict") is None
    assert harness.reconciler.waiters.waiting("default/demo-zone-1") is None


async def test_rejected_apply_fails_its_unit_only_and_is_not_repeated(
    harness: Any, make_grid: Any, clock: Any
) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()
    invalid = ApiError(422, "Invalid", 'Deployment.apps "demo-zone-2" is invalid: spec: bad')
    harness.server.fail("apply", "demo-zone-2", invalid, invalid)

    result = await harness.reconcile("demo")

    assert result.requeue_after == pytest.approx(300.0)
    failed = harness.condition("demo", "ApplyFailed")
    assert failed is not None and failed["reason"] == "Invalid"
    assert failed["message"].startswith("zone-2: Deployment demo-zone-2: 422 Invalid")
    assert harness.server.get("Deployment", "demo-zone-0") is not None
    assert harness.recorder.reasons("Warning") == [reasons.APPLY_FAILED]

    # Reconciles triggered by other events do not try again: no write at all.
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()
    writes = len(harness.server.writes)
    result = await harness.reconcile("demo")
    assert len(harness.server.writes) == writes
    assert result.requeue_after is not None and 0 < result.requeue_after <= 300.0
    assert harness.condition("demo", "ApplyFailed") is not None

    # After the retry period it is tried once more (and fails again, still bounded).
    clock.advance(300.0)
    await harness.reconcile("demo")
    assert [w.name for w in harness.server.writes_of("apply")].count("demo-zone-2") == 2

    # A template change is tried at once, and clears the condition when it passes.
    grid = copy.deepcopy(harness.server.get("DeploymentGrid", "demo"))
    grid["spec"]["template"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    grid["metadata"]["generation"] += 1
    harness.server.put(grid)
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()
    await harness.reconcile("demo")
    assert harness.condition("demo", "ApplyFailed") is None
    assert harness.server.get("Deployment", "demo-zone-2") is not None


async def test_transient_failure_is_retried_with_backoff_other_units_proceed(
    harness: Any, make_grid: Any
) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()
    harness.server.fail("apply", "demo-zone-0", ApiError(503, "ServiceUnavailable", "busy"))

    with pytest.raises(TransientWriteError):
        await harness.reconcile("demo")

    assert harness.server.get("Deployment", "demo-zone-1") is not None
    assert harness.server.get("Deployment", "demo-zone-2") is not None
    assert harness.condition("demo", "ApplyFailed") is None  # transient: not a condition
    harness.sync()
    assert await harness.reconcile("demo") == Result()
    assert harness.server.get("Deployment", "demo-zone-0") is not None


async def test_vanished_unit_child_is_deleted_with_uid_precondition(
    harness: Any, make_grid: Any
) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()
    await harness.reconcile("demo")

    harness.remove_node("n2")
    await harness.reconcile("demo")

    deletes = harness.server.writes_of("delete")
    assert [w.name for w in deletes] == ["demo-zone-2"]
    assert harness.server.get("Deployment", "demo-zone-2") is None
    assert reasons.DELETED in harness.recorder.reasons("Normal")
    assert set(harness.status("demo")["states"]) == {"zone-0", "zone-1"}

    # The cache still shows the deleted child: no second delete.
    await harness.reconcile("demo")
    assert len(harness.server.writes_of("delete")) == 1


async def test_delete_targets_exactly_the_child_uid(harness: Any, make_grid: Any) -> None:
    harness.node("n0", zone="zone-0")
    harness.node("n1", zone="zone-1")
    harness.grid(make_grid())
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()
    uid = harness.server.get("Deployment", "demo-zone-1")["metadata"]["uid"]

    harness.remove_node("n1")
    await harness.reconcile("demo")

    assert harness.server.writes_of("delete")[0].body == {"uid": uid}


async def test_grace_period_delays_deletion_and_a_returning_unit_keeps_its_child(
    make_harness: Any, make_grid: Any, clock: Any
) -> None:
    h = make_harness(grace_period=60.0)
    three_zones(h)
    h.grid(make_grid())
    h.sync()
    await h.reconcile("demo")
    h.sync()
    await h.reconcile("demo")

    h.remove_node("n2")
    result = await h.reconcile("demo")
    assert result.requeue_after == pytest.approx(60.0)
    assert h.server.writes_of("delete") == []
    assert reasons.DELETION_SCHEDULED in h.recorder.reasons("Normal")

    clock.advance(30.0)
    result = await h.reconcile("demo")
    assert result.requeue_after == pytest.approx(30.0)
    assert h.server.writes_of("delete") == []

    # The unit comes back within the grace period: nothing is deleted, the timer resets.
    h.node("n2", zone="zone-2")
    assert await h.reconcile("demo") == Result()
    h.remove_node("n2")
    result = await h.reconcile("demo")
    assert result.requeue_after == pytest.approx(60.0)

    clock.advance(60.0)
    await h.reconcile("demo")
    assert [w.name for w in h.server.writes_of("delete")] == ["demo-zone-2"]


async def test_child_without_our_unit_label_is_an_orphan_left_alone(
    harness: Any, make_grid: Any
) -> None:
    harness.node("n0", zone="zone-0")
    harness.node("n1", zone="zone-1")
    harness.grid(make_grid())
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()
    child = copy.deepcopy(harness.server.get("Deployment", "demo-zone-1"))
    del child["metadata"]["labels"][NODEUNIT]
    harness.server.put(child)
    harness.sync()

    harness.remove_node("n1")
    await harness.reconcile("demo")

    assert harness.server.writes_of("delete") == []
    assert harness.server.get("Deployment", "demo-zone-1") is not None


async def test_invalid_spec_is_terminal_reported_once_and_children_kept(
    harness: Any, make_grid: Any
) -> None:
    harness.node("n0", zone="zone-0")
    harness.grid(make_grid())
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()

    grid = copy.deepcopy(harness.server.get("DeploymentGrid", "demo"))
    grid["spec"]["gridUniqKey"] = ""
    grid["metadata"]["generation"] += 1
    harness.server.put(grid)
    harness.sync()

    with pytest.raises(TerminalError):
        await harness.reconcile("demo")
    invalid = harness.condition("demo", "InvalidSpec")
    assert invalid is not None and "spec.gridUniqKey" in invalid["message"]
    ready = harness.condition("demo", "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert harness.recorder.reasons("Warning") == [reasons.INVALID_SPEC]
    assert harness.server.writes_of("delete") == []
    assert harness.server.get("Deployment", "demo-zone-0") is not None

    # Seen again (our own status write coming back): no further write.
    harness.sync()
    writes = len(harness.server.writes)
    with pytest.raises(TerminalError):
        await harness.reconcile("demo")
    assert len(harness.server.writes) == writes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"gridUniqKey": "bad key!"}, "spec.gridUniqKey: Invalid value"),
        ({"gridUniqKey": 7}, "spec.gridUniqKey"),
    ],
)
async def test_invalid_grid_uniq_key_values(
    harness: Any, make_grid: Any, spec: dict[str, Any], message: str
) -> None:
    grid = make_grid()
    grid["spec"].update(spec)
    harness.grid(grid)
    harness.sync()
    with pytest.raises(TerminalError):
        await harness.reconcile("demo")
    invalid = harness.condition("demo", "InvalidSpec")
    assert invalid is not None and message in invalid["message"]
    assert harness.server.writes_of("apply") == []


async def test_grid_name_too_long_for_children(harness: Any, make_grid: Any) -> None:
    harness.node("n0", zone="zone-0")
    harness.grid(make_grid("g" * 60))
    harness.sync()
    with pytest.raises(TerminalError):
        await harness.reconcile("g" * 60)
    invalid = harness.condition("g" * 60, "InvalidSpec")
    assert invalid is not None and "metadata.name: Too long" in invalid["message"]
    assert harness.server.writes_of("apply") == []


async def test_unit_values_that_are_not_name_parts_get_hashed_names(
    harness: Any, make_grid: Any
) -> None:
    harness.node("n0", zone="Zone_A.1")
    harness.node("n1", zone="plain")
    harness.grid(make_grid())
    harness.sync()

    await harness.reconcile("demo")

    names = sorted(w.name for w in harness.server.writes_of("apply"))
    assert names[0] == "demo-plain"
    assert names[1].startswith("demo-zone-a-1-") and len(names[1]) == len("demo-zone-a-1-") + 8
    hashed = next(w for w in harness.server.writes_of("apply") if w.name == names[1])
    assert hashed.body["metadata"]["labels"][NODEUNIT] == "Zone_A.1"
    assert hashed.body["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "Zone_A.1"}


async def test_missing_pool_entry_fails_only_that_unit(harness: Any, make_grid: Any) -> None:
    three_zones(harness)
    harness.grid(make_grid(templates={"zone-1": "nope"}))
    harness.sync()

    await harness.reconcile("demo")

    assert sorted(w.name for w in harness.server.writes_of("apply")) == [
        "demo-zone-0",
        "demo-zone-2",
    ]
    missing = harness.condition("demo", "TemplateNotFound")
    assert missing is not None and missing["message"].startswith("zone-1:")
    assert reasons.TEMPLATE_NOT_FOUND in harness.recorder.reasons("Warning")


async def test_missing_default_template_fails_the_units_using_it(
    harness: Any, make_grid: Any
) -> None:
    harness.node("n0", zone="zone-0")
    harness.grid(make_grid(defaultTemplateName="gone"))
    harness.sync()

    await harness.reconcile("demo")

    assert harness.server.writes_of("apply") == []
    missing = harness.condition("demo", "TemplateNotFound")
    assert missing is not None and "spec.defaultTemplateName" in missing["message"]


async def test_auto_delete_unused_template_patches_once_with_precondition(
    harness: Any, make_grid: Any
) -> None:
    harness.node("n0", zone="zone-0")
    entry = {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
    harness.grid(
        make_grid(
            templatePool={"used": entry, "stale": entry, "old": entry},
            templates={"zone-0": "used"},
            autoDeleteUnusedTemplate=True,
        )
    )
    harness.sync()
    rv = harness.server.get("DeploymentGrid", "demo")["metadata"]["resourceVersion"]

    await harness.reconcile("demo")

    patches = [w for w in harness.server.writes_of("patch") if w.subresource == ""]
    assert len(patches) == 1
    assert patches[0].body == {
        "spec": {"templatePool": {"old": None, "stale": None}},
        "metadata": {"resourceVersion": rv},
    }
    assert set(harness.server.get("DeploymentGrid", "demo")["spec"]["templatePool"]) == {"used"}
    assert reasons.TEMPLATES_PRUNED in harness.recorder.reasons("Normal")

    # The cache has not shown the patch yet: no second patch.
    await harness.reconcile("demo")
    assert len([w for w in harness.server.writes_of("patch") if w.subresource == ""]) == 1


async def test_absent_or_deleting_grid_writes_nothing(harness: Any, make_grid: Any) -> None:
    harness.node("n0", zone="zone-0")
    assert await harness.reconcile("nothing") == Result()
    grid = make_grid()
    grid["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    harness.grid(grid)
    harness.sync()
    assert await harness.reconcile("demo") == Result()
    assert harness.server.writes == []


async def test_status_write_failure_raises_for_a_retry(harness: Any, make_grid: Any) -> None:
    harness.node("n0", zone="zone-0")
    harness.grid(make_grid())
    harness.sync()
    harness.server.fail("patch", "demo", ApiError(500, "InternalError", "etcd"))
    with pytest.raises(ApiError):
        await harness.reconcile("demo")
    assert reasons.STATUS_UPDATE_FAILED in harness.recorder.reasons("Warning")
    # The retry writes the status (the child, already applied, is not applied again).
    await harness.reconcile("demo")
    assert len(harness.server.writes_of("apply")) == 1
    assert harness.status("demo")["units"] == 1


async def test_statefulset_grid_children_and_status(make_harness: Any, make_grid: Any) -> None:
    h = make_harness(kind=STATEFULSET_GRID)
    h.node("n0", zone="zone-0")
    grid = make_grid("ssg")
    grid["kind"] = "StatefulSetGrid"
    grid["spec"]["template"]["serviceName"] = "svc"
    h.grid(grid)
    h.sync()
    await h.reconcile("ssg")
    child = h.server.get("StatefulSet", "ssg-zone-0")
    assert child is not None and child["spec"]["serviceName"] == "svc"
    assert APPLIED_HASH in child["metadata"]["annotations"]
    assert child["metadata"]["managedFields"][0]["manager"] == FIELD_MANAGER

    # The StatefulSet's status becomes the unit's state.
    child = copy.deepcopy(child)
    child["status"] = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    h.server.put(child)
    h.sync()
    await h.reconcile("ssg")
    assert h.status("ssg")["states"]["zone-0"]["readyReplicas"] == 2
    assert h.status("ssg")["readyUnits"] == 1
