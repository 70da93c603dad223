"""Regressions found by the reliability suite (tests/reliability), pinned at unit level.

1. A 409 answering a child's apply is transient (retried with backoff), not a rejection that
   parks the unit as ApplyFailed for `retry_rejected_after` (scenario 2: 10% of writes fail,
   a third of them with 409).
2. A 409 answering the uid-preconditioned delete of a vanished unit's child is retried, not
   taken as "replaced" and dropped (which left the child in place for good).
3. A transient failure that persists (the API server answers 500 to every apply of a template
   with a field its schema lacks: scenario 7, hostile input) is reported as ApplyFailed naming
   the unit after `TRANSIENT_REPORT_AFTER` failures in a row, and cleared by a success.
"""

from __future__ import annotations

from typing import Any

import pytest

from servicegroup.controller import Result
from servicegroup.kube.errors import ApiError
from servicegroup.reconcilers.children import TRANSIENT_REPORT_AFTER
from servicegroup.reconcilers.workloadgrid import TransientWriteError


def three_zones(h: Any) -> None:
    h.node("n0", zone="zone-0")
    h.node("n1", zone="zone-1")
    h.node("n2", zone="zone-2")


async def test_conflict_on_apply_is_retried_not_parked(harness: Any, make_grid: Any) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()
    harness.server.fail("apply", "demo-zone-1", ApiError(409, "Conflict", "try again"))

    with pytest.raises(TransientWriteError):
        await harness.reconcile("demo")
    assert harness.condition("demo", "ApplyFailed") is None

    harness.sync()
    assert await harness.reconcile("demo") == Result()
    assert harness.server.get("Deployment", "demo-zone-1") is not None


async def test_conflict_on_delete_of_vanished_child_is_retried(
    harness: Any, make_grid: Any
) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()
    await harness.reconcile("demo")
    harness.sync()
    harness.remove_node("n2")
    harness.server.fail("delete", "demo-zone-2", ApiError(409, "Conflict", "try again"))

    with pytest.raises(TransientWriteError):
        await harness.reconcile("demo")
    assert harness.server.get("Deployment", "demo-zone-2") is not None

    assert await harness.reconcile("demo") == Result()
    assert harness.server.get("Deployment", "demo-zone-2") is None


async def test_persistent_transient_failure_is_reported_then_cleared(
    harness: Any, make_grid: Any
) -> None:
    three_zones(harness)
    harness.grid(make_grid())
    harness.sync()
    error = ApiError(500, "InternalError", "failed to create typed patch object")
    harness.server.fail("apply", "demo-zone-0", *[error] * TRANSIENT_REPORT_AFTER)

    for attempt in range(1, TRANSIENT_REPORT_AFTER + 1):
        with pytest.raises(TransientWriteError):
            await harness.reconcile("demo")
        harness.sync()
        failed = harness.condition("demo", "ApplyFailed")
        if attempt < TRANSIENT_REPORT_AFTER:
            assert failed is None, attempt  # a blip is not a condition
    assert failed is not None and failed["status"] == "True"
    assert failed["reason"] == "InternalError"
    assert failed["message"].startswith("zone-0: Deployment demo-zone-0: 500 InternalError")
    assert harness.status("demo")["conditions"][0]["status"] == "False"  # Ready

    assert await harness.reconcile("demo") == Result()  # the server recovered
    harness.sync()
    assert harness.condition("demo", "ApplyFailed") is None
