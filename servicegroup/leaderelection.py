"""Leader election on a coordination.k8s.io/v1 Lease, following client-go's algorithm.

This module owns one process's claim on one Lease. Every `retry_period` (with client-go's
jitter while acquiring) a candidate reads the Lease and either renews it (it holds it),
takes it over (nobody holds it, or the holder's record stopped changing long enough ago),
or waits. Writes are PUTs carrying the resourceVersion last read, so two candidates can
never both win a round: the loser gets 409 and tries again next period.

Invariants:
- Expiry uses only local observation (client-go's observedTime rule): another holder's lease
  is expired when the record (holderIdentity, leaseDurationSeconds, acquireTime, renewTime,
  leaseTransitions) has not changed for longer than its leaseDurationSeconds, measured on
  our own monotonic clock since we first saw that record. Wall clocks of other machines,
  and renewTime itself, are never compared with ours.
- While leading, each renewal must succeed within `renew_deadline` (< lease_duration) or
  leadership is lost: the callback is cancelled *before* any other candidate may consider
  the lease expired. Seeing another holder in the Lease loses leadership at once.
- Every request is bounded by `request_timeout` (and by the remaining renew deadline).
- `leader_election_master_status{name}` is 1 exactly while leading, 0 otherwise.
- Leaving voluntarily (callback returned or raised, or the caller cancelled) releases the
  Lease (holderIdentity "", leaseDurationSeconds 1) unless `release_on_cancel` is false,
  so the next candidate takes over at its next retry instead of after a full lease.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple, NoReturn, Protocol, TypeVar

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.kube.resources import LEASES, ResourceRef
from servicegroup.metrics import Metrics

T = TypeVar("T")

# client-go leaderelection.JitterFactor.
JITTER_FACTOR = 1.2
# client-go HealthzAdaptor tolerates this much lateness of a renewal beyond the lease.
HEALTHZ_SLACK_SECONDS = 20.0


class LeaseClient(Protocol):
    """What the elector needs from an API client (servicegroup.kube.client.KubeClient fits).

    Failures raise exceptions with an integer `status` attribute (404 not found, 409
    conflict or already exists); anything else is a transient failure of that attempt.
    """

    async def get(
        self, ref: ResourceRef, name: str, *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def create(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def replace(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...


class LeadershipLost(Exception):
    """The Lease could not be renewed in time, or another candidate holds it now."""


class LeaderElectionRecord(NamedTuple):
    """The Lease spec fields of client-go's LeaderElectionRecord."""

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: str | None
    renew_time: str | None
    leader_transitions: int

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaderElectionRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder_identity=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            leader_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.leader_transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return spec


def micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """client-go's usual identity: hostname plus a random suffix, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def error_status(exc: BaseException) -> int | None:
    """The HTTP status an API error carries, if any."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


class LeaderElector:
    """One candidate for one Lease. `run()` campaigns, leads, and gives up cleanly."""

    def __init__(
        self,
        *,
        client: LeaseClient,
        clock: Clock,
        metrics: Metrics,
        logger: FilteringBoundLogger,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        request_timeout: float | None = None,
        jitter_factor: float = JITTER_FACTOR,
        release_on_cancel: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if not identity:
            raise ValueError("leader election identity must not be empty")
        if lease_duration < 1:
            raise ValueError("lease_duration must be at least 1 second")
        if retry_period <= 0:
            raise ValueError("retry_period must be positive")
        if renew_deadline >= lease_duration:
            raise ValueError("renew_deadline must be shorter than lease_duration")
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise ValueError(f"renew_deadline must exceed {JITTER_FACTOR} x retry_period")
        if jitter_factor < 0:
            raise ValueError("jitter_factor must not be negative")
        if math.ceil(lease_duration) <= renew_deadline + retry_period:
            # A partitioned leader stops leading up to renew_deadline + retry_period after its
            # last renewal; others may take over leaseDurationSeconds after observing it.
            raise ValueError(
                "lease_duration must exceed renew_deadline + retry_period, or two candidates "
                "could lead at once"
            )
        self._client = client
        self._clock = clock
        self._namespace = namespace
        self._name = name
        self._identity = identity
        self._lease_duration = lease_duration
        self._lease_seconds = math.ceil(lease_duration)
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._request_timeout = (
            request_timeout if request_timeout is not None else renew_deadline / 2
        )
        if self._request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        self._jitter_factor = jitter_factor
        self._release_on_cancel = release_on_cancel
        self._rng = rng if rng is not None else random.Random()
        self._logger = logger.bind(lease=f"{namespace}/{name}", identity=identity)
        self._status = metrics.leader_election_master_status.labels(name=name)
        self._status.set(0)
        self._running = False
        self._reset()

    def _reset(self) -> None:
        self._lease: dict[str, Any] | None = None
        self._observed: LeaderElectionRecord | None = None
        self._observed_time = 0.0
        self._leading = False
        self._last_renew: float | None = None

    # ------------------------------------------------------------------ public state

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def observed_leader(self) -> str:
        """The holder in the last Lease record seen or written ("" when none)."""
        return self._observed.holder_identity if self._observed else ""

    def is_leader(self) -> bool:
        return self._leading

    def healthy(self) -> bool:
        """For /healthz: false only when leading and renewals have silently stopped."""
        if not self._leading or self._last_renew is None:
            return True
        late = self._clock.monotonic() - self._last_renew
        return late <= self._lease_duration + HEALTHZ_SLACK_SECONDS

    # ------------------------------------------------------------------ main loop

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        """Acquire the Lease, run the callback while renewing it, then release it.

        Raises LeadershipLost (after cancelling the callback) when the Lease is lost;
        re-raises the callback's exception, or CancelledError, after releasing.
        """
        if self._running:
            raise RuntimeError("LeaderElector.run() is already running")
        self._running = True
        self._reset()
        try:
            await self._acquire()
            await self._lead(on_started_leading)
        finally:
            self._running = False
            self._leading = False
            self._status.set(0)

    async def _acquire(self) -> None:
        self._logger.info("attempting to acquire leader lease")
        while True:
            if await self._try_acquire_or_renew(deadline=None):
                self._leading = True
                self._last_renew = self._clock.monotonic()
                self._status.set(1)
                self._logger.info("successfully acquired lease")
                return
            await self._clock.sleep(self._jittered(self._retry_period))

    def _jittered(self, period: float) -> float:
        # client-go wait.Jitter: period + rand[0,1) * factor * period.
        return period + self._rng.random() * self._jitter_factor * period

    async def _lead(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        async def work() -> None:
            await on_started_leading()

        worker = asyncio.create_task(work(), name=f"leader-election-{self._name}-leading")
        renewer = asyncio.create_task(
            self._renew_loop(), name=f"leader-election-{self._name}-renew"
        )
        try:
            await asyncio.wait((worker, renewer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Keep renewing while the callback drains, so nobody else leads meanwhile.
            await _cancel_and_wait((worker,))
            await _cancel_and_wait((renewer,))
            if not renewer.cancelled():
                renewer.exception()  # lost during the drain: we are stopping anyway
            await self._release()
            raise
        if renewer.done():
            await _cancel_and_wait((worker,))
            if not worker.cancelled():
                worker.exception()  # finished as the lease was lost; the loss is what counts
            self._leading = False
            self._status.set(0)
            error = renewer.exception()  # the renew loop only ever ends by raising
            raise error if error is not None else LeadershipLost("lease renewal stopped")
        await _cancel_and_wait((renewer,))
        await self._release()
        worker.result()  # the callback's own exception, if any

    async def _renew_loop(self) -> NoReturn:
        while True:
            await self._clock.sleep(self._retry_period)
            deadline = self._clock.monotonic() + self._renew_deadline
            while not await self._try_acquire_or_renew(deadline=deadline):
                if self.observed_leader != self._identity:
                    self._lost(f"lease is now held by {self.observed_leader or 'nobody'}")
                remaining = deadline - self._clock.monotonic()
                if remaining > 0:
                    await self._clock.sleep(min(self._retry_period, remaining))
                if self._clock.monotonic() >= deadline:
                    self._lost(
                        f"failed to renew lease within the renew deadline "
                        f"({self._renew_deadline:g}s)"
                    )
            self._last_renew = self._clock.monotonic()

    def _lost(self, why: str) -> NoReturn:
        self._leading = False
        self._status.set(0)
        self._logger.error("leader election lost", reason=why)
        raise LeadershipLost(
            f"leader election lost for lease {self._namespace}/{self._name}: {why}"
        )

    # ------------------------------------------------------------------ one round

    def _observed_is_me(self) -> bool:
        return self._observed is not None and self._observed.holder_identity == self._identity

    def _lease_valid(self, now: float) -> bool:
        if self._observed is None:
            return False
        return self._observed_time + self._observed.lease_duration_seconds > now

    def _set_observed(self, record: LeaderElectionRecord) -> None:
        previous = self._observed.holder_identity if self._observed else None
        if record.holder_identity not in (previous, "", self._identity):
            self._logger.info("new leader observed", leader=record.holder_identity)
        self._observed = record
        self._observed_time = self._clock.monotonic()

    async def _try_acquire_or_renew(self, *, deadline: float | None) -> bool:
        """One round of client-go's tryAcquireOrRenew; True when we hold the Lease after it."""
        stamp = micro_time(self._clock.now())
        record = LeaderElectionRecord(self._identity, self._lease_seconds, stamp, stamp, 0)

        # 1. Fast path: we lead and our copy is probably current; one PUT, no GET.
        if self._observed_is_me() and self._lease_valid(self._clock.monotonic()):
            assert self._observed is not None
            record = record._replace(
                acquire_time=self._observed.acquire_time,
                leader_transitions=self._observed.leader_transitions,
            )
            if await self._write(record, deadline=deadline, what="renew"):
                return True

        # 2. Read the Lease; create it when absent.
        try:
            lease = await self._call("get", self._get, deadline=deadline)
        except Exception as exc:
            if error_status(exc) != 404:
                self._log_failure("get", exc)
                return False
            try:
                self._lease = await self._call(
                    "create", lambda: self._create(record), deadline=deadline
                )
            except Exception as create_exc:
                self._log_failure("create", create_exc)
                return False
            self._set_observed(record)
            return True

        # 3. Note a changed record (restarting its expiry clock), then judge it.
        self._lease = lease
        current = LeaderElectionRecord.from_lease(lease)
        if current != self._observed:
            self._set_observed(current)
        if (
            current.holder_identity
            and self._lease_valid(self._clock.monotonic())
            and not self._observed_is_me()
        ):
            return False

        # 4. Take over (or renew through the slow path).
        if self._observed_is_me():
            record = record._replace(
                acquire_time=current.acquire_time, leader_transitions=current.leader_transitions
            )
        else:
            record = record._replace(leader_transitions=current.leader_transitions + 1)
        return await self._write(record, deadline=deadline, what="update")

    async def _write(
        self, record: LeaderElectionRecord, *, deadline: float | None, what: str
    ) -> bool:
        if self._lease is None:
            return False
        body = self._lease_body(record)
        try:
            self._lease = await self._call(what, lambda: self._replace(body), deadline=deadline)
        except Exception as exc:
            self._log_failure(what, exc)
            return False
        self._set_observed(record)
        return True

    async def _release(self) -> None:
        if not (self._release_on_cancel and self._leading and self._observed_is_me()):
            return
        if self._lease is None:
            return
        assert self._observed is not None
        stamp = micro_time(self._clock.now())
        record = LeaderElectionRecord("", 1, stamp, stamp, self._observed.leader_transitions)
        body = self._lease_body(record)
        try:
            self._lease = await self._call("release", lambda: self._replace(body), deadline=None)
        except Exception as exc:
            self._log_failure("release", exc)
            return
        self._set_observed(record)
        self._leading = False
        self._status.set(0)
        self._logger.info("lease released")

    # ------------------------------------------------------------------ requests

    def _lease_body(self, record: LeaderElectionRecord) -> dict[str, Any]:
        assert self._lease is not None
        # Keep fields we do not manage (e.g. coordinated election's strategy) as they are.
        spec = {**(self._lease.get("spec") or {}), **record.to_spec()}
        if record.acquire_time is None:
            spec.pop("acquireTime", None)
        return {**self._lease, "spec": spec}

    async def _get(self) -> dict[str, Any]:
        return await self._client.get(LEASES, self._name, namespace=self._namespace)

    async def _create(self, record: LeaderElectionRecord) -> dict[str, Any]:
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": record.to_spec(),
        }
        return await self._client.create(LEASES, body, namespace=self._namespace)

    async def _replace(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._client.replace(LEASES, body, namespace=self._namespace)

    async def _call(
        self,
        what: str,
        request: Callable[[], Coroutine[Any, Any, T]],
        *,
        deadline: float | None,
    ) -> T:
        timeout = self._request_timeout
        if deadline is not None:
            timeout = min(timeout, deadline - self._clock.monotonic())
        if timeout <= 0:
            raise TimeoutError(f"no time left for the lease {what} request")
        return await _with_timeout(
            self._clock, request, timeout, name=f"leader-election-{self._name}-{what}"
        )

    def _log_failure(self, what: str, exc: Exception) -> None:
        status = error_status(exc)
        if status == 409:
            # Someone wrote the Lease since we read it: the next round reads it again.
            self._logger.info("lease changed concurrently; retrying next period", request=what)
        elif status == 404 and what in ("renew", "update", "release"):
            self._logger.warning("lease vanished", request=what)
        else:
            self._logger.warning(
                "lease request failed", request=what, error=str(exc) or type(exc).__name__
            )


async def _with_timeout(
    clock: Clock,
    request: Callable[[], Coroutine[Any, Any, T]],
    timeout: float,
    *,
    name: str,
) -> T:
    """Await `request()` for at most `timeout` seconds of `clock` time (TimeoutError after)."""
    task = asyncio.create_task(request(), name=name)
    timer = asyncio.create_task(clock.sleep(timeout), name=f"{name}-timeout")
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel_and_wait((timer, task))
    if task.cancelled():
        raise TimeoutError(f"{name} timed out after {timeout:g}s")
    return task.result()


async def _cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has finished.

    A cancellation of the caller arriving meanwhile is held back until the tasks are gone
    (so none is left running unowned), then re-raised.
    """
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    interrupted = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
