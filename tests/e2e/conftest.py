"""Fixtures of the e2e suite: the real cluster of SERVICEGROUP_E2E_KUBECONFIG.

Without that variable every test here is collected and skipped (reason shown with -rs).
`e2e_cluster`: a `RealCluster` (e2e_support.py) prepared for one test: CRDs present, a
namespace and a NodeUnit label key of its own on up to five schedulable nodes, all removed
afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from e2e_support import RealCluster, real_cluster

E2E_KUBECONFIG = os.environ.get("SERVICEGROUP_E2E_KUBECONFIG")
NOT_SET = "SERVICEGROUP_E2E_KUBECONFIG is not set: no real cluster to run the e2e suite on"


@pytest.fixture(autouse=True)
def _e2e_only() -> None:
    if not E2E_KUBECONFIG:
        pytest.skip(NOT_SET)


@pytest.fixture
async def e2e_cluster() -> AsyncIterator[RealCluster]:
    assert E2E_KUBECONFIG, NOT_SET
    async with real_cluster(E2E_KUBECONFIG) as cluster:
        yield cluster
