"""Fixtures of the kubesim conformance suite.

`cluster` is an in-process KubeSim on a free port, or - when SERVICEGROUP_E2E_KUBECONFIG is
set - the real cluster that kubeconfig points at; every test talks to it over HTTP only, so
the same assertions hold kubesim and kube-apiserver to one standard. Tests of kubesim-only
features (faults, accounting, history expiry) call `cluster.require_sim()`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ks_support import USER_AGENT, Cluster, api_client_for
from kubernetes_asyncio import client, config

from servicegroup.kubesim.app import KubeSim, NodeSpec

E2E_KUBECONFIG = os.environ.get("SERVICEGROUP_E2E_KUBECONFIG")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    cache_dir = tmp_path / "kube-cache"
    if E2E_KUBECONFIG:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=E2E_KUBECONFIG, client_configuration=configuration
        )
        api = client.ApiClient(configuration)
        api.user_agent = USER_AGENT
        sim = None
        kubeconfig = Path(E2E_KUBECONFIG)
        url = configuration.host
    else:
        sim = KubeSim(
            nodes=[NodeSpec("node-a", {"zone": "a"}), NodeSpec("node-b", {"zone": "b"})],
            bookmark_interval=0.3,
            gc_dangling_delay=0.05,
        )
        await sim.start()
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        url = sim.url
        api = api_client_for(url)
    namespace = f"ks-{secrets.token_hex(4)}"
    state = Cluster(api, kubeconfig, cache_dir, sim, namespace, url)
    try:
        await state.core.create_namespace({"metadata": {"name": namespace}})
        yield state
    finally:
        for name in [namespace, *state.extra_namespaces]:
            with contextlib.suppress(client.ApiException):
                await state.core.delete_namespace(name)
        await api.close()
        if sim is not None:
            await sim.stop()


@pytest.fixture
def kubectl_available() -> None:
    if shutil.which("kubectl") is None:
        print("kubectl not on PATH: skipping kubectl conformance")
        pytest.skip("kubectl is not on PATH")
