"""Logging setup: structlog for our code, stdlib logging of libraries routed to the same output.

This module owns the process-wide logging configuration and the names of the context keys.
Components never call `structlog.get_logger()` themselves: they receive a bound logger as a
constructor argument (`get_logger(name)` makes one for the CLI to hand out).

Invariants:
- One line per event. JSON lines carry controller-runtime's keys first: `ts` (ISO 8601,
  UTC), `level`, `logger`, `msg`, then bound and context keys.
- Context keys bound with `bind_reconcile_context` / `bind_context` live in contextvars, so
  they follow the asyncio task that bound them and never leak into sibling tasks.
- Library loggers (aiohttp, asyncio, kubernetes_asyncio, ...) reach the output only at
  WARNING and above (or the configured level, if higher).
- `configure_logging` can be called any number of times; the last call wins and leaves
  exactly one of our handlers on the root logger.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# controller-runtime's zap JSON puts these first; the rest keep their binding order.
_LEADING_KEYS = ("ts", "level", "logger", "msg")
# Marks the root handler installed by configure_logging, so a second call replaces it.
_HANDLER_MARK = "_servicegroup_handler"


def _orjson_dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _order_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    ordered: EventDict = {k: event_dict.pop(k) for k in _LEADING_KEYS if k in event_dict}
    ordered.update(event_dict)
    return ordered


def _rename_stdlib_logger(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # ProcessorFormatter leaves the LogRecord in the dict; its name is the library's logger.
    record = event_dict.get("_record")
    if record is not None and "logger" not in event_dict:
        event_dict["logger"] = record.name
    return event_dict


def configure_logging(
    *, fmt: Literal["json", "console"], level: str, stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger to write to `stream` (stderr)."""
    try:
        threshold = LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {sorted(LEVELS)}") from None
    out = stream if stream is not None else sys.stderr

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        tail: list[Processor] = [
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("msg"),
            _order_keys,
        ]
    elif fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_tty(out), timestamp_key="ts", sort_keys=False
        )
        tail = [structlog.processors.StackInfoRenderer()]
    else:
        raise ValueError(f"unknown log format {fmt!r}; use json or console")

    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        context_class=dict,
        # Caching would pin loggers to the first configuration; tests reconfigure.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _rename_stdlib_logger],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, threshold))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(name: str, **bound: Any) -> FilteringBoundLogger:
    """A logger whose lines carry `logger=name` (plus `bound` keys)."""
    logger: FilteringBoundLogger = structlog.get_logger().bind(logger=name, **bound)
    return logger


def new_reconcile_id() -> str:
    """A fresh reconcile ID (a UUID, as controller-runtime uses)."""
    return str(uuid.uuid4())


@contextmanager
def bind_reconcile_context(
    *, controller: str, namespace: str | None, name: str, reconcile_id: str | None = None
) -> Iterator[str]:
    """Bind controller-runtime's reconcile keys for the current task; yields the reconcileID."""
    rid = reconcile_id or new_reconcile_id()
    keys: dict[str, Any] = {"controller": controller, "name": name, "reconcileID": rid}
    if namespace:
        keys["namespace"] = namespace
    with structlog.contextvars.bound_contextvars(**keys):
        yield rid


@contextmanager
def bind_context(
    *, nodeunit: str | None = None, resource: str | None = None, rv: str | None = None
) -> Iterator[None]:
    """Bind our own context keys (those given) for the current task."""
    keys = {k: v for k, v in (("nodeunit", nodeunit), ("resource", resource), ("rv", rv)) if v}
    with structlog.contextvars.bound_contextvars(**keys):
        yield


def context_keys() -> MutableMapping[str, Any]:
    """The context keys bound for the current task (a copy), for tests and error reports."""
    return dict(structlog.contextvars.get_contextvars())
