"""The member's hub link: credentials from the parent-cluster Secret, sessions following it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import structlog
from fed_fakes import Recorder

from servicegroup.kube.config import ConfigError
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.federation_link import (
    CredentialsError,
    HubCredentials,
    HubLink,
    credentials_from_secret,
)
from servicegroup.reconcilers.federation_metrics import FederationMetrics


def secret(**data: str | None) -> dict[str, Any]:
    values = {"parent-url": "https://hub:6443", "namespace": "clusternet-a", "token": "t1"}
    values.update(data)  # type: ignore[arg-type]
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items() if v is not None}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "parent-cluster", "namespace": "clusternet-system"},
        "data": encoded,
    }


def test_credentials_from_the_secret() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    creds = credentials_from_secret(secret(**{"ca.crt": pem}))
    assert creds == HubCredentials("https://hub:6443", "clusternet-a", "t1", pem.encode())
    assert credentials_from_secret(secret(token=None)).token == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"parent-url": None}, "parent-url"),
        ({"namespace": ""}, "namespace"),
        ({"parent-url": "hub:6443"}, "not an http"),
    ],
)
def test_unusable_secrets(data: dict[str, str | None], message: str) -> None:
    with pytest.raises(CredentialsError, match=message):
        credentials_from_secret(secret(**data))


def test_bad_base64() -> None:
    bad = secret()
    bad["data"]["token"] = "***"
    with pytest.raises(CredentialsError, match="base64"):
        credentials_from_secret(bad)


class FakeSession:
    def __init__(self, credentials: HubCredentials, log: list[str]) -> None:
        self.credentials = credentials
        self._log = log
        self.running = False

    async def run(self) -> None:
        self.running = True
        self._log.append(f"start {self.credentials.token}")
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.running = False
            self._log.append(f"stop {self.credentials.token}")


async def until(predicate: Callable[[], Any], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def test_sessions_follow_the_secret(metrics: Metrics) -> None:
    log: list[str] = []
    ended: list[str] = []
    recorder = Recorder()

    def factory(credentials: HubCredentials, _secret: Mapping[str, Any]) -> Any:
        if credentials.token == "bad-ca":
            raise ConfigError("bad CA")
        return FakeSession(credentials, log)

    link = HubLink(
        session_factory=factory,
        recorder=recorder,
        fed_metrics=FederationMetrics(metrics),
        logger=structlog.get_logger(),
        on_session_end=lambda s: ended.append(s.credentials.token),
    )
    handlers = link.secret_handlers()
    task = asyncio.create_task(link.run(), name="test-hub-link")
    try:
        assert link.session is None
        handlers.on_add(secret(), False)  # type: ignore[misc]
        await until(lambda: log == ["start t1"], "the first session")
        first = link.session

        # An update that changes no credential (a label, say) restarts nothing.
        relabelled = secret()
        relabelled["metadata"]["labels"] = {"x": "y"}
        handlers.on_update(secret(), relabelled)  # type: ignore[misc]
        await asyncio.sleep(0)
        assert link.session is first and log == ["start t1"]

        # A rotated token: the old session stops before the new one starts.
        handlers.on_update(relabelled, secret(token="t2"))  # type: ignore[misc]
        await until(lambda: log == ["start t1", "stop t1", "start t2"], "the rotation")
        assert ended == ["t1"]

        # Unusable credentials stop the session and say why.
        handlers.on_update(secret(), secret(namespace=""))  # type: ignore[misc]
        await until(lambda: link.session is None and log[-1] == "stop t2", "the stop")
        assert recorder.reasons() == ["InvalidHubCredentials"]

        handlers.on_update(secret(), secret(token="bad-ca"))  # type: ignore[misc]
        await until(lambda: recorder.reasons().count("InvalidHubCredentials") == 2, "bad CA")
        assert link.session is None

        handlers.on_update(secret(), secret(token="t3"))  # type: ignore[misc]
        await until(lambda: log[-1] == "start t3", "a session again")
        handlers.on_delete(secret())  # type: ignore[misc]
        await until(lambda: link.session is None and log[-1] == "stop t3", "the deletion")
        failures = metrics.registry.get_sample_value(
            "servicegroup_federation_failures_total",
            {"side": "member", "reason": "InvalidHubCredentials"},
        )
        assert failures == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert all(not s.running for s in [first] if s is not None)  # type: ignore[attr-defined]
