"""The loop that keeps our hosts-file block equal to the records of the node (SPEC A6, B11).

Owns: `HostsSyncer` (when to write, retry and re-check), its readiness (`file_ok`), and the
`servicegroup_dns_records`, `servicegroup_dns_writes_total` and
`servicegroup_dns_errors_total{reason}` series.

The loop: take the records from the source (None while its caches are syncing or switching
selectors: then nothing is written, so a restart never blanks a working file), sync the file
in a worker thread, then wait for the next change. After a success it also wakes every
`resync_period` to re-read the file and repair it if another writer dropped or edited our
block. After a failure (unwritable path, missing directory, full disk, lost races) it counts
the error, reports not-ready, and retries after an exponential backoff (`retry_initial`
doubling to `retry_cap`) whatever happens meanwhile, so a broken path cannot make it spin;
it never exits because of the file.

Invariants: one task does all the writing (no two syncs overlap); `CancelledError` always
propagates; `file_ok` is True only after the latest attempt succeeded.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.dns.hostsfile import ERROR_REASONS, error_reason, render_block
from servicegroup.dns.records import HostRecord
from servicegroup.metrics import Metrics


class RecordSource(Protocol):
    """Where the records come from (the watcher) and how it says they may have changed."""

    @property
    def changed(self) -> asyncio.Event: ...

    def records(self) -> frozenset[HostRecord] | None:
        """The current records, or None while the caches are not settled."""
        ...


class BlockFile(Protocol):
    """The hosts file (`hostsfile.HostsFile`): blocking, run in a worker thread."""

    def sync(self, block: str) -> bool: ...


class HostsSyncer:
    """Writes the source's records into the file's block, forever."""

    def __init__(
        self,
        *,
        source: RecordSource,
        file: BlockFile,
        metrics: Metrics,
        clock: Clock,
        logger: FilteringBoundLogger,
        resync_period: float = 30.0,
        retry_initial: float = 1.0,
        retry_cap: float = 30.0,
    ) -> None:
        self._source = source
        self._file = file
        self._metrics = metrics
        self._clock = clock
        self._log = logger
        self._resync_period = resync_period
        self._retry_initial = retry_initial
        self._retry_cap = retry_cap
        self._failures = 0
        self._published: frozenset[HostRecord] | None = None
        self.file_ok = False
        # Pre-create every series at zero so alerts can use rate() from the start.
        for reason in ERROR_REASONS:
            metrics.dns_errors.labels(reason=reason)

    @property
    def published(self) -> frozenset[HostRecord] | None:
        """The records last confirmed in the file (None before the first success)."""
        return self._published

    async def run(self) -> None:
        """Sync until cancelled."""
        while True:
            self._source.changed.clear()
            records = self._source.records()
            if records is None:
                await self._source.changed.wait()
                continue
            if await self._sync(records):
                await self._wait_change(self._resync_period)
            else:
                await self._clock.sleep(self._backoff())

    def _backoff(self) -> float:
        return min(self._retry_cap, self._retry_initial * 2.0 ** max(0, self._failures - 1))

    async def _sync(self, records: frozenset[HostRecord]) -> bool:
        block = render_block(records)
        try:
            written = await asyncio.to_thread(self._file.sync, block)
        except Exception as exc:
            # OSError for every file problem; anything else is a bug, counted the same way so
            # the daemon stays up serving what it last wrote.
            self._failures += 1
            reason = error_reason(exc)
            self._metrics.dns_errors.labels(reason=reason).inc()
            self.file_ok = False
            self._log.warning(
                "cannot update the hosts file",
                reason=reason,
                error=f"{type(exc).__name__}: {exc}",
                retry_in=self._backoff(),
            )
            return False
        self._failures = 0
        self.file_ok = True
        previous, self._published = self._published, records
        self._metrics.dns_records.set(len(records))
        if written:
            self._metrics.dns_writes.inc()
            before = previous if previous is not None else frozenset()
            self._log.info(
                "hosts file updated",
                records=len(records),
                added=len(records - before),
                removed=len(before - records),
            )
        return True

    async def _wait_change(self, timeout: float) -> None:
        """Return on the source's next change, or after `timeout` seconds of the clock."""
        async with asyncio.TaskGroup() as group:
            change = group.create_task(self._source.changed.wait(), name="dns-syncer:change")
            timer = group.create_task(self._clock.sleep(timeout), name="dns-syncer:resync")
            await asyncio.wait({change, timer}, return_when=asyncio.FIRST_COMPLETED)
            change.cancel()
            timer.cancel()
