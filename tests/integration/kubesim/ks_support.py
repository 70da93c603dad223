"""Shared helpers of the kubesim conformance suite (the `Cluster` under test).

`cluster` is an in-process KubeSim on a free port, or - when SERVICEGROUP_E2E_KUBECONFIG is
set - the real cluster that kubeconfig points at; every test talks to it over HTTP only, so
the same assertions hold kubesim and kube-apiserver to one standard. Tests of kubesim-only
features (faults, accounting, history expiry) call `cluster.require_sim()`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes_asyncio import client

from servicegroup.kubesim.app import KubeSim

USER_AGENT = "kubesim-conformance/1.0"


@dataclass
class KubectlResult:
    code: int
    stdout: str
    stderr: str


@dataclass
class Cluster:
    """One API server under test and clients for it."""

    api: client.ApiClient
    kubeconfig: Path
    cache_dir: Path
    sim: KubeSim | None
    namespace: str
    url: str
    extra_namespaces: list[str] = field(default_factory=list)

    @property
    def is_sim(self) -> bool:
        return self.sim is not None

    def require_sim(self) -> KubeSim:
        if self.sim is None:
            pytest.skip("kubesim-only feature (faults, accounting or history expiry)")
        return self.sim

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def crds(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self.api)

    async def raw(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> tuple[int, Any, dict[str, str]]:
        """A raw ApiClient call: (status, parsed JSON body, headers); never raises on 4xx."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            response = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                _preload_content=False,
                auth_settings=["BearerToken"],
            )
        except client.ApiException as err:
            return err.status, orjson.loads(err.body) if err.body else None, dict(err.headers or {})
        data = await response.read()
        return response.status, orjson.loads(data) if data else None, dict(response.headers)

    def fresh_namespace_name(self) -> str:
        name = f"ks-{secrets.token_hex(4)}"
        self.extra_namespaces.append(name)
        return name

    async def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 30.0
    ) -> KubectlResult:
        """Run kubectl against this cluster without blocking the event loop serving it."""
        env = {**os.environ, "KUBECACHEDIR": str(self.cache_dir)}
        env.pop("KUBECONFIG", None)
        process = await asyncio.create_subprocess_exec(
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None), timeout
            )
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
        return KubectlResult(process.returncode or 0, out.decode(), err.decode())


def api_client_for(url: str) -> client.ApiClient:
    configuration = client.Configuration(host=url)
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


async def wait_for(predicate: Any, *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll an async or sync predicate until it returns a truthy value (or fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)
