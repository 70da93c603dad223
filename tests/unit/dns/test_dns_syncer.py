"""When the daemon writes, retries and re-checks the file (syncer.py), on a FakeClock."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import structlog

from servicegroup.clock import FakeClock
from servicegroup.dns.hostsfile import ERROR_REASONS, render_block
from servicegroup.dns.records import HostRecord
from servicegroup.dns.syncer import HostsSyncer
from servicegroup.metrics import Metrics

A = frozenset({HostRecord("a-0.s.ns.svc.cluster.local", "10.0.0.1")})
B = frozenset({HostRecord("a-0.s.ns.svc.cluster.local", "10.0.0.2")})


class FakeSource:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.value: frozenset[HostRecord] | None = None

    def records(self) -> frozenset[HostRecord] | None:
        return self.value

    def set(self, value: frozenset[HostRecord] | None) -> None:
        self.value = value
        self.changed.set()


@dataclass
class FakeFile:
    content: str | None = None
    calls: int = 0
    writes: list[str] = field(default_factory=list)
    fail: OSError | None = None

    def sync(self, block: str) -> bool:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        if block == self.content:
            return False
        self.content = block
        self.writes.append(block)
        return True


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.005)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@dataclass
class Rig:
    source: FakeSource
    file: FakeFile
    syncer: HostsSyncer
    clock: FakeClock
    metrics: Metrics


@pytest.fixture
async def rig(metrics: Metrics, clock: FakeClock) -> AsyncIterator[Rig]:
    source, file = FakeSource(), FakeFile()
    syncer = HostsSyncer(
        source=source,
        file=file,
        metrics=metrics,
        clock=clock,
        logger=structlog.get_logger(),
        resync_period=30.0,
        retry_initial=1.0,
        retry_cap=4.0,
    )
    async with asyncio.TaskGroup() as group:
        task = group.create_task(syncer.run(), name="test-syncer")
        yield Rig(source, file, syncer, clock, metrics)
        task.cancel()


async def test_nothing_is_written_until_the_source_settles(rig: Rig) -> None:
    await asyncio.sleep(0.05)
    assert rig.file.calls == 0
    assert rig.syncer.file_ok is False
    rig.source.set(A)
    await eventually(lambda: rig.file.writes == [render_block(A)])
    assert rig.syncer.file_ok
    assert rig.syncer.published == A
    assert sample(rig.metrics, "servicegroup_dns_records") == 1
    assert sample(rig.metrics, "servicegroup_dns_writes_total") == 1


async def test_changes_are_written_and_unchanged_content_is_not(rig: Rig) -> None:
    rig.source.set(A)
    await eventually(lambda: len(rig.file.writes) == 1)
    rig.source.set(B)
    await eventually(lambda: len(rig.file.writes) == 2)
    rig.source.set(B)  # a change signal with equal records: a sync, no write
    await eventually(lambda: rig.file.calls == 3)
    assert len(rig.file.writes) == 2
    assert sample(rig.metrics, "servicegroup_dns_writes_total") == 2
    rig.source.set(frozenset())
    await eventually(lambda: len(rig.file.writes) == 3)
    assert sample(rig.metrics, "servicegroup_dns_records") == 0


async def test_the_file_is_rechecked_every_resync_period(rig: Rig) -> None:
    rig.source.set(A)
    await eventually(lambda: rig.file.calls == 1)
    rig.file.content = "someone dropped our block"
    await eventually(lambda: rig.clock.sleepers == 1)
    rig.clock.advance(29.0)
    await asyncio.sleep(0.02)
    assert rig.file.calls == 1
    rig.clock.advance(1.0)
    await eventually(lambda: rig.file.calls == 2)
    assert rig.file.content == render_block(A)


async def test_failures_back_off_report_not_ready_and_recover(rig: Rig) -> None:
    rig.file.fail = PermissionError(errno.EACCES, "denied")
    rig.source.set(A)
    await eventually(lambda: rig.file.calls == 1)
    await eventually(lambda: rig.clock.sleepers == 1)
    assert rig.syncer.file_ok is False
    assert sample(rig.metrics, "servicegroup_dns_errors_total", reason="permission") == 1
    # Changes during the backoff do not cause extra attempts.
    rig.source.set(B)
    await asyncio.sleep(0.02)
    assert rig.file.calls == 1
    # Backoff 1s, 2s, 4s, then capped at 4s.
    for expected_delay, calls in ((1.0, 2), (2.0, 3), (4.0, 4), (4.0, 5)):
        assert rig.clock.next_deadline() == pytest.approx(rig.clock.monotonic() + expected_delay)
        rig.clock.advance(expected_delay)
        await eventually(lambda calls=calls: rig.file.calls == calls)
        await eventually(lambda: rig.clock.sleepers == 1)
    rig.file.fail = None
    rig.clock.advance(4.0)
    await eventually(lambda: rig.syncer.file_ok)
    assert rig.file.writes == [render_block(B)]
    assert sample(rig.metrics, "servicegroup_dns_errors_total", reason="permission") == 5


async def test_error_series_exist_from_the_start(metrics: Metrics, clock: FakeClock) -> None:
    HostsSyncer(
        source=FakeSource(),
        file=FakeFile(),
        metrics=metrics,
        clock=clock,
        logger=structlog.get_logger(),
    )
    for reason in ERROR_REASONS:
        assert (
            metrics.registry.get_sample_value("servicegroup_dns_errors_total", {"reason": reason})
            == 0
        )
