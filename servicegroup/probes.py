"""HTTP endpoints for operators: /healthz and /readyz with named checks, and /metrics.

This module owns the probe and metrics HTTP servers (aiohttp). Responses follow
kube-apiserver's healthz package: `GET /healthz` is 200 "ok" when every check passes,
otherwise 500 with one `[+]name ok` / `[-]name failed: reason withheld` line per check and a
final "healthz check failed"; `?verbose` shows the lines on success too; `?exclude=name`
skips a check; `GET /healthz/<name>` runs one check. `/readyz` works the same way.
`GET /metrics` serves the injected Prometheus registry, negotiating the text or OpenMetrics
format from the Accept header.

Invariants:
- A check is a synchronous callable returning True (healthy); False or an exception is a
  failure, whose reason is logged (when the check's state changes) but never sent to the
  client.
- When the probe and metrics bind addresses are equal, one listener serves every path;
  otherwise (and always for port 0, "any free port") each address gets its own listener
  with only its own paths. "0" disables one.
- After `start()` the real bound ports are known (port 0 picks a free one), and `stop()`
  closes every listener; `run()` is start, wait until cancelled, stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import NamedTuple, Self

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from structlog.typing import FilteringBoundLogger

from servicegroup.settings import BindAddress, parse_bind_address

Check = Callable[[], bool]
_Handler = Callable[[web.Request], Awaitable[web.Response]]
_TEXT = "text/plain"


class CheckResult(NamedTuple):
    name: str
    ok: bool
    reason: str


class HealthChecks:
    """An ordered set of named checks, evaluated on demand (kube-apiserver's healthz model)."""

    def __init__(self, *, kind: str, logger: FilteringBoundLogger) -> None:
        self.kind = kind
        self._checks: dict[str, Check] = {}
        self._last_ok: dict[str, bool] = {}
        self._logger = logger

    def add(self, name: str, check: Check) -> None:
        """Register `check` under `name` (a path segment: no '/' and not empty)."""
        if not name or "/" in name or name != name.strip():
            raise ValueError(f"invalid {self.kind} check name {name!r}")
        if name in self._checks:
            raise ValueError(f"{self.kind} check {name!r} already registered")
        self._checks[name] = check

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._checks)

    def run_one(self, name: str) -> CheckResult:
        """Evaluate one check; KeyError when there is no such check."""
        check = self._checks[name]
        try:
            ok = bool(check())
            reason = "" if ok else "check returned false"
        except Exception as exc:  # a failing check is a result, not a crash
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        # Probes poll every few seconds: log changes of state, not every answer.
        if self._last_ok.get(name, True) != ok:
            if ok:
                self._logger.info(f"{self.kind} check passing again", check=name)
            else:
                self._logger.info(f"{self.kind} check failed", check=name, reason=reason)
        self._last_ok[name] = ok
        return CheckResult(name, ok, reason)

    def run_all(self, *, exclude: frozenset[str] = frozenset()) -> list[CheckResult]:
        return [self.run_one(name) for name in self._checks if name not in exclude]

    def passing(self) -> bool:
        """True when every check passes (what a GET without query parameters would say)."""
        return all(result.ok for result in self.run_all())


class ProbeServer:
    """The /healthz, /readyz and /metrics listeners of one process."""

    def __init__(
        self,
        *,
        health_bind_address: str,
        metrics_bind_address: str,
        registry: CollectorRegistry,
        logger: FilteringBoundLogger,
    ) -> None:
        self._health_addr = parse_bind_address(health_bind_address)
        self._metrics_addr = parse_bind_address(metrics_bind_address)
        self._registry = registry
        self._logger = logger
        self.healthz = HealthChecks(kind="healthz", logger=logger)
        self.readyz = HealthChecks(kind="readyz", logger=logger)
        self._runners: list[web.AppRunner] = []
        self._health_port: int | None = None
        self._metrics_port: int | None = None

    # ------------------------------------------------------------------ registration

    def add_healthz_check(self, name: str, check: Check) -> None:
        self.healthz.add(name, check)

    def add_readyz_check(self, name: str, check: Check) -> None:
        self.readyz.add(name, check)

    # ------------------------------------------------------------------ lifecycle

    @property
    def health_port(self) -> int | None:
        """The bound probe port once started (None when disabled or not started)."""
        return self._health_port

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics port once started (None when disabled or not started)."""
        return self._metrics_port

    async def start(self) -> None:
        if self._runners:
            raise RuntimeError("probe server already started")
        try:
            if (
                self._health_addr is not None
                and self._health_addr == self._metrics_addr
                and self._health_addr.port != 0
            ):
                port = await self._listen(self._health_addr, health=True, metrics=True)
                self._health_port = self._metrics_port = port
            else:
                if self._health_addr is not None:
                    self._health_port = await self._listen(
                        self._health_addr, health=True, metrics=False
                    )
                if self._metrics_addr is not None:
                    self._metrics_port = await self._listen(
                        self._metrics_addr, health=False, metrics=True
                    )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        self._health_port = self._metrics_port = None

    async def run(self) -> None:
        """Serve until cancelled (for use as a TaskGroup task)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _listen(self, address: BindAddress, *, health: bool, metrics: bool) -> int:
        app = web.Application()
        if health:
            for checks in (self.healthz, self.readyz):
                app.router.add_get(f"/{checks.kind}", self._all_handler(checks))
                app.router.add_get(f"/{checks.kind}/{{name}}", self._one_handler(checks))
            # /livez is what kube-apiserver calls liveness; same checks as /healthz.
            app.router.add_get("/livez", self._all_handler(self.healthz))
        if metrics:
            app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        sock = await _bind(address)
        site = web.SockSite(runner, sock)
        await site.start()
        port: int = sock.getsockname()[1]
        self._logger.info(
            "serving",
            address=f"{address.host}:{port}",
            paths=[p for p, on in (("healthz/readyz", health), ("metrics", metrics)) if on],
        )
        return port

    # ------------------------------------------------------------------ handlers

    def _all_handler(self, checks: HealthChecks) -> _Handler:
        async def handler(request: web.Request) -> web.Response:
            excluded = frozenset(request.query.getall("exclude", []))
            results = checks.run_all(exclude=excluded)
            ok = all(r.ok for r in results)
            verbose = "verbose" in request.query
            if ok and not verbose:
                return _text(200, "ok")
            lines = [
                f"[+]{r.name} ok" if r.ok else f"[-]{r.name} failed: reason withheld"
                for r in results
            ]
            lines.extend(f"[+]{n} excluded: ok" for n in checks.names if n in excluded)
            lines.append(f"{checks.kind} check {'passed' if ok else 'failed'}")
            return _text(200 if ok else 500, "\n".join(lines) + "\n")

        return handler

    def _one_handler(self, checks: HealthChecks) -> _Handler:
        async def handler(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            if name not in checks.names:
                return _text(404, f"{checks.kind} check {name!r} not found\n")
            result = checks.run_one(name)
            if result.ok:
                return _text(200, "ok")
            return _text(500, f"internal server error: {checks.kind} check {name} failed\n")

        return handler

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self._registry)
        response = web.Response(body=body, headers={"Content-Type": content_type})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response


def _text(status: int, body: str) -> web.Response:
    return web.Response(
        status=status,
        text=body,
        content_type=_TEXT,
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def _bind(address: BindAddress) -> socket.socket:
    """A listening socket; host "" means every interface (dual-stack when IPv6 works)."""
    if address.host:
        infos = await asyncio.get_running_loop().getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, sockaddr = infos[0]
        return _listening_socket(family, kind, proto, sockaddr, dual_stack=False)
    try:
        return _listening_socket(
            socket.AF_INET6, socket.SOCK_STREAM, 0, ("::", address.port), dual_stack=True
        )
    except OSError:
        # No IPv6 in this network namespace: all IPv4 interfaces, as Go falls back.
        return _listening_socket(
            socket.AF_INET, socket.SOCK_STREAM, 0, ("0.0.0.0", address.port), dual_stack=False
        )


def _listening_socket(
    family: int, kind: int, proto: int, sockaddr: tuple[object, ...], *, dual_stack: bool
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return sock
