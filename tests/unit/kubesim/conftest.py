"""Fixtures of the kubesim unit tests: an in-process engine, no HTTP, no background tasks."""

from __future__ import annotations

import pytest

from servicegroup.clock import FakeClock
from servicegroup.kubesim.crds import CrdController
from servicegroup.kubesim.engine import Engine
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.registry import Registry
from servicegroup.kubesim.store import ObjectStore


@pytest.fixture
def local(clock: FakeClock) -> LocalClient:
    """A LocalClient on a fresh engine with a `default` namespace; CRDs are served as soon
    as they are stored (the CRD controller's listener), their status is never written."""
    engine = Engine(store=ObjectStore(), registry=Registry(), clock=clock)
    CrdController(engine=engine)
    client = LocalClient(engine, manager="unit-test")
    client.create("namespaces", {"metadata": {"name": "default"}})
    return client
