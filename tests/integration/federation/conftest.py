"""Fixtures of the multi-cluster suite (names prefixed `fed_` to shadow nothing).

`fed_world`: a hub and two member clusters (fed_support.py), parent-cluster Secrets in
place, no controller running yet (tests start them, so they can decide the order).
`fed_bare_world`: the same without the members' Secrets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fed_support import World, start_world, stop_world


@pytest.fixture
async def fed_world(tmp_path: Path) -> AsyncIterator[World]:
    world = await start_world(tmp_path)
    try:
        yield world
    finally:
        await stop_world(world)


@pytest.fixture
async def fed_bare_world(tmp_path: Path) -> AsyncIterator[World]:
    world = await start_world(tmp_path, with_secrets=False, workloads=False)
    try:
        yield world
    finally:
        await stop_world(world)
