"""Typed reads from raw Kubernetes JSON dicts, and field-path strings.

Owns the tolerant accessors every kubesim defaulting/validation function uses: a value of
the wrong JSON type reads as absent (the HTTP layer rejects undecodable bodies; these
functions must simply never crash on them), and `child`/`index`/`key` build paths the way
apimachinery's `field.Path.String()` prints them (`spec.ports[0].name`, `data[a.b]`).

Invariant: accessors never mutate; `ensure_dict` is the only one that inserts, and only
when the key is absent or null.
"""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def get_dict(obj: Any, key: str) -> dict[str, Any] | None:
    return as_dict(obj.get(key)) if isinstance(obj, dict) else None


def get_list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def get_str(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def get_int(obj: Any, key: str) -> int | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def dicts(values: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    """`(index, item)` for the items of a list that are objects (others are skipped)."""
    return [(i, item) for i, item in enumerate(values) if isinstance(item, dict)]


def ensure_dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """The dict at `key`, created empty when the key is absent or null."""
    value = obj.get(key)
    if isinstance(value, dict):
        return value
    if value is None:
        created: dict[str, Any] = {}
        obj[key] = created
        return created
    # A scalar where an object belongs: leave it for the decoder error, work on a scratch dict.
    return {}


def set_default(obj: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` when absent, null or the Go zero value of a string field (`""`)."""
    if obj.get(key) in (None, ""):
        obj[key] = value


def child(path: str, *names: str) -> str:
    for name in names:
        path = f"{path}.{name}" if path else name
    return path


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"
