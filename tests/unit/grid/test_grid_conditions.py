"""Condition helpers: aggregation of failures, message limits, transition time rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from servicegroup.grid import conditions as cond

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def test_reason_constants_are_valid_condition_reasons() -> None:
    names = [
        v for k, v in vars(cond).items() if k.isupper() and isinstance(v, str) and k != "READY"
    ]
    for value in names:
        assert REASON.match(value), value
    assert cond.FAILURE_TYPES == ("InvalidSpec", "TemplateNotFound", "ChildConflict", "ApplyFailed")


def test_format_time_is_utc_seconds() -> None:
    local = datetime(2026, 1, 1, 9, 30, 15, 999, tzinfo=timezone(timedelta(hours=8)))
    assert cond.format_time(local) == "2026-01-01T01:30:15Z"


def test_failures_aggregate_sorted_and_capped() -> None:
    failures = [
        cond.UnitFailure(f"u{i:02d}", cond.APPLY_FAILED, cond.APPLY_ERROR, "boom")
        for i in reversed(range(12))
    ]
    [condition] = cond.failure_conditions(failures)
    assert condition.type == "ApplyFailed"
    assert condition.message.startswith("u00: boom, u01: boom")
    assert condition.message.endswith("u09: boom, ... and 2 more")


def test_unknown_failure_type_is_a_bug() -> None:
    with pytest.raises(ValueError):
        cond.failure_conditions([cond.UnitFailure("a", "Weird", "X", "y")])


def test_messages_are_truncated_to_the_api_limit() -> None:
    failures = [cond.UnitFailure("", cond.INVALID_SPEC, cond.VALIDATION_FAILED, "x" * 40000)]
    [condition] = cond.failure_conditions(failures)
    assert len(condition.message) == cond.MAX_MESSAGE


def test_merge_keeps_time_only_for_unchanged_status() -> None:
    previous = [
        {"type": "Ready", "status": "False", "lastTransitionTime": "2025-01-01T00:00:00Z"},
        {"type": "ApplyFailed", "status": "True", "lastTransitionTime": "2025-01-02T00:00:00Z"},
    ]
    merged = cond.merge_conditions(
        previous,
        [
            cond.ConditionSpec("Ready", "True", "AllUnitsReady", "ok"),
            cond.ConditionSpec("ApplyFailed", "True", "ApplyError", "new message"),
            cond.ConditionSpec("ChildConflict", "True", "NameCollision", "x"),
        ],
        generation=None,
        now=T0,
    )
    times = {c["type"]: c["lastTransitionTime"] for c in merged}
    assert times == {
        "Ready": "2026-01-01T00:00:00Z",
        "ApplyFailed": "2025-01-02T00:00:00Z",
        "ChildConflict": "2026-01-01T00:00:00Z",
    }
    assert "observedGeneration" not in merged[0]
    assert merged[1]["message"] == "new message"
