"""Logging configuration: JSON keys and order, context keys, stdlib routing, re-entrancy."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from servicegroup.log import (
    bind_context,
    bind_reconcile_context,
    configure_logging,
    context_keys,
    get_logger,
    new_reconcile_id,
)

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**config)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_controller_runtime_keys_first() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="info", stream=out)
    get_logger("manager", extra="x").info("starting", count=2)
    (line,) = _lines(out)
    assert list(line)[:4] == ["ts", "level", "logger", "msg"]
    assert ISO_UTC.fullmatch(line["ts"])
    assert line["level"] == "info"
    assert line["logger"] == "manager"
    assert line["msg"] == "starting"
    assert line["count"] == 2 and line["extra"] == "x"


def test_level_filtering() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="warning", stream=out)
    log = get_logger("x")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["msg"] for line in _lines(out)] == ["w", "e"]
    assert [line["level"] for line in _lines(out)] == ["warning", "error"]


def test_reconcile_and_own_context_keys() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="info", stream=out)
    log = get_logger("controller")
    with bind_reconcile_context(controller="deploymentgrid", namespace="ns", name="g") as rid:
        with bind_context(nodeunit="zone-a", resource="deployments.apps", rv="42"):
            log.info("applied")
        log.info("done")
    log.info("outside")
    first, second, third = _lines(out)
    assert first["controller"] == "deploymentgrid"
    assert (first["namespace"], first["name"], first["reconcileID"]) == ("ns", "g", rid)
    assert (first["nodeunit"], first["resource"], first["rv"]) == (
        "zone-a",
        "deployments.apps",
        "42",
    )
    assert "nodeunit" not in second and second["reconcileID"] == rid
    assert "controller" not in third and "reconcileID" not in third


def test_cluster_scoped_reconcile_has_no_namespace_key() -> None:
    with bind_reconcile_context(
        controller="nodeunit", namespace=None, name="zone", reconcile_id="r"
    ):
        keys = context_keys()
    assert keys == {"controller": "nodeunit", "name": "zone", "reconcileID": "r"}
    assert context_keys() == {}


async def test_context_keys_do_not_leak_between_tasks() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="info", stream=out)
    log = get_logger("controller")
    gate = asyncio.Event()

    async def reconcile(name: str) -> None:
        with bind_reconcile_context(controller="dg", namespace="ns", name=name):
            await gate.wait()  # both tasks hold their context at the same time
            log.info("reconciled")

    async with asyncio.TaskGroup() as group:
        group.create_task(reconcile("one"), name="reconcile-one")
        group.create_task(reconcile("two"), name="reconcile-two")
        await asyncio.sleep(0)
        gate.set()
    lines = _lines(out)
    assert sorted(line["name"] for line in lines) == ["one", "two"]
    assert lines[0]["reconcileID"] != lines[1]["reconcileID"]
    assert context_keys() == {}


def test_stdlib_loggers_routed_at_warning_and_above() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="debug", stream=out)
    logging.getLogger("aiohttp.access").info("GET /healthz 200")
    logging.getLogger("kubernetes_asyncio.client").debug("noise")
    logging.getLogger("asyncio").warning("slow callback %s", "cb")
    (line,) = _lines(out)
    assert line["logger"] == "asyncio"
    assert line["level"] == "warning"
    assert line["msg"] == "slow callback cb"
    assert ISO_UTC.fullmatch(line["ts"])


def test_configuring_twice_keeps_one_handler_and_the_last_settings() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", level="info", stream=first)
    configure_logging(fmt="json", level="error", stream=second)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_servicegroup_handler", False)]
    assert len(ours) == 1
    get_logger("x").warning("dropped")
    get_logger("x").error("kept")
    logging.getLogger("aiohttp.server").error("lib")
    assert first.getvalue() == ""
    assert [line["msg"] for line in _lines(second)] == ["kept", "lib"]


def test_exceptions_are_rendered_into_the_line() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="info", stream=out)
    try:
        raise ValueError("bad spec")
    except ValueError:
        get_logger("x").exception("reconcile failed")
    (line,) = _lines(out)
    assert line["level"] == "error"
    assert "ValueError: bad spec" in line["exception"]


def test_console_format() -> None:
    out = io.StringIO()
    configure_logging(fmt="console", level="info", stream=out)
    with bind_context(nodeunit="zone-a"):
        get_logger("manager").info("hello")
    text = out.getvalue()
    assert "hello" in text and "[manager]" in text and "nodeunit=zone-a" in text
    assert "\x1b[" not in text  # no colours when not writing to a terminal
    assert not text.lstrip().startswith("{")


def test_unknown_level_or_format_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(fmt="json", level="loud")
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging(fmt="xml", level="info")  # type: ignore[arg-type]


def test_reconcile_ids_are_unique() -> None:
    assert len({new_reconcile_id() for _ in range(100)}) == 100
