"""The subset of kubectl's JSONPath that printer columns and `-o jsonpath` templates use.

Owns parsing a path (`.spec.x`, `{.a.b[*]}`, `.status.conditions[?(@.type=="Ready")].status`,
`.spec.list[0].name`, `['a.b']`, `[1:3]`, `[0,2]`, `..name`) into steps and evaluating the
steps against raw JSON values.

Invariants: parsing never touches data and raises `JSONPathError` for anything it does not
understand; evaluation never raises: like client-go with `AllowMissingKeys(true)`, a key
that is absent, an index out of range or a step applied to the wrong type yields no result.
Results are returned in document order as a flat list of the matched values (not copies).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JSONPath", "JSONPathError", "find", "parse"]


class JSONPathError(ValueError):
    """The expression is not valid JSONPath (or uses syntax this subset does not support)."""


@dataclass(frozen=True)
class _Field:
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Indexes:
    indexes: tuple[int, ...]


@dataclass(frozen=True)
class _Slice:
    start: int | None
    stop: int | None
    step: int | None


@dataclass(frozen=True)
class _Filter:
    left: tuple[_Step, ...]
    op: str | None
    right: Any


@dataclass(frozen=True)
class _Recursive:
    """`..` followed by the step to apply at every depth."""

    step: _Step


_Step = _Field | _Wildcard | _Indexes | _Slice | _Filter | _Recursive

_NAME_STOP = frozenset(".[]")
_FILTER_OPS = ("==", "!=", "<=", ">=", "<", ">")
_INT_RE = re.compile(r"^-?\d+$")
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class JSONPath:
    """A parsed path; `find` evaluates it against a JSON value."""

    expression: str
    steps: tuple[_Step, ...]

    def find(self, data: Any) -> list[Any]:
        values = [data]
        for step in self.steps:
            values = [out for value in values for out in _apply(step, value)]
        return values


def parse(expression: str) -> JSONPath:
    """Parse `.a.b`, `{.a.b}` or `$.a.b`; raise JSONPathError when it is not valid."""
    text = expression.strip()
    if text.startswith("{"):
        if not text.endswith("}"):
            raise JSONPathError(f"unclosed action in {expression!r}")
        text = text[1:-1].strip()
    if not text:
        raise JSONPathError("empty JSONPath expression")
    if text.startswith("$"):
        text = text[1:]
    steps, end = _parse_steps(text, 0, stop_at_paren=False)
    if end != len(text):
        raise JSONPathError(f"unexpected {text[end]!r} at position {end} in {expression!r}")
    return JSONPath(expression, tuple(steps))


def find(expression: str | JSONPath, data: Any) -> list[Any]:
    """Convenience: parse (when given a string) and evaluate."""
    path = parse(expression) if isinstance(expression, str) else expression
    return path.find(data)


def _parse_steps(text: str, pos: int, *, stop_at_paren: bool) -> tuple[list[_Step], int]:
    steps: list[_Step] = []
    while pos < len(text):
        char = text[pos]
        if stop_at_paren and (char in " )=!<>"):
            break
        if text.startswith("..", pos):
            pos += 2
            if pos < len(text) and text[pos] == "[":
                inner, pos = _parse_bracket(text, pos)
            elif pos < len(text) and text[pos] == "*":
                inner, pos = _Wildcard(), pos + 1
            else:
                name, pos = _read_name(text, pos, stop_at_paren=stop_at_paren)
                inner = _Field((name,))
            steps.append(_Recursive(inner))
        elif char == ".":
            pos += 1
            if pos >= len(text) or (stop_at_paren and text[pos] in " )=!<>"):
                break  # "." alone means the current node
            if text[pos] == "[":
                continue
            if text[pos] == "*":
                steps.append(_Wildcard())
                pos += 1
                continue
            name, pos = _read_name(text, pos, stop_at_paren=stop_at_paren)
            steps.append(_Field((name,)))
        elif char == "[":
            step, pos = _parse_bracket(text, pos)
            steps.append(step)
        elif not steps and pos == 0 and char not in "]":
            # `{metadata.name}` without the leading dot is accepted by kubectl too.
            name, pos = _read_name(text, pos, stop_at_paren=stop_at_paren)
            steps.append(_Field((name,)))
        else:
            raise JSONPathError(f"unexpected {char!r} at position {pos}")
    return steps, pos


def _read_name(text: str, pos: int, *, stop_at_paren: bool) -> tuple[str, int]:
    start = pos
    stops = _NAME_STOP | (frozenset(" )=!<>") if stop_at_paren else frozenset())
    while pos < len(text) and text[pos] not in stops:
        pos += 1
    name = text[start:pos]
    if not name:
        raise JSONPathError(f"missing field name at position {start}")
    return name, pos


def _matching_bracket(text: str, pos: int) -> int:
    """Index of the `]` closing the `[` at `pos`, skipping quotes and nested brackets."""
    depth = 0
    quote: str | None = None
    index = pos
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise JSONPathError(f"unterminated [ at position {pos}")


def _parse_bracket(text: str, pos: int) -> tuple[_Step, int]:
    end = _matching_bracket(text, pos)
    inner = text[pos + 1 : end].strip()
    after = end + 1
    if not inner:
        raise JSONPathError(f"empty [] at position {pos}")
    if inner == "*":
        return _Wildcard(), after
    if inner.startswith("?"):
        return _parse_filter(inner[1:].strip()), after
    if inner[0] in "'\"":
        return _Field(tuple(_unquote(part.strip()) for part in _split_top(inner, ","))), after
    if ":" in inner:
        parts = [p.strip() for p in inner.split(":")]
        if len(parts) > 3 or any(p and not _INT_RE.match(p) for p in parts):
            raise JSONPathError(f"invalid array slice [{inner}]")
        numbers = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
        if numbers[2] == 0:
            raise JSONPathError("slice step cannot be zero")
        return _Slice(numbers[0], numbers[1], numbers[2]), after
    parts = [p.strip() for p in inner.split(",")]
    if all(_INT_RE.match(p) for p in parts):
        return _Indexes(tuple(int(p) for p in parts)), after
    raise JSONPathError(f"invalid array index [{inner}]")


def _split_top(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    quote: str | None = None
    current: list[str] = []
    for char in text:
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(text: str) -> str:
    if len(text) < 2 or text[0] not in "'\"" or text[-1] != text[0]:
        raise JSONPathError(f"invalid quoted name {text}")
    return text[1:-1].replace("\\" + text[0], text[0])


def _parse_filter(text: str) -> _Filter:
    if not (text.startswith("(") and text.endswith(")")):
        raise JSONPathError(f"filter must be ?(...), got ?{text}")
    body = text[1:-1].strip()
    if not body.startswith("@"):
        raise JSONPathError(f"filter must start with @: {body}")
    left, pos = _parse_steps(body, 1, stop_at_paren=True)
    rest = body[pos:].strip()
    if not rest:
        return _Filter(tuple(left), None, None)
    for op in _FILTER_OPS:
        if rest.startswith(op):
            return _Filter(tuple(left), op, _literal(rest[len(op) :].strip()))
    raise JSONPathError(f"unsupported filter operator in {body}")


def _literal(text: str) -> Any:
    if not text:
        raise JSONPathError("missing value in filter")
    if text[0] in "'\"":
        return _unquote(text)
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _NUMBER_RE.match(text):
        return int(text) if _INT_RE.match(text) else float(text)
    raise JSONPathError(f"unsupported filter value {text}")


def _apply(step: _Step, value: Any) -> Iterator[Any]:
    if isinstance(step, _Field):
        if isinstance(value, dict):
            for name in step.names:
                if name in value:
                    yield value[name]
    elif isinstance(step, _Wildcard):
        if isinstance(value, dict):
            yield from value.values()
        elif isinstance(value, list):
            yield from value
    elif isinstance(step, _Indexes):
        if isinstance(value, list):
            for index in step.indexes:
                if -len(value) <= index < len(value):
                    yield value[index]
    elif isinstance(step, _Slice):
        if isinstance(value, list):
            yield from value[step.start : step.stop : step.step]
    elif isinstance(step, _Filter):
        if isinstance(value, list):
            yield from (item for item in value if _filter_matches(step, item))
    else:
        yield from _recurse(step.step, value)


def _recurse(step: _Step, value: Any) -> Iterator[Any]:
    yield from _apply(step, value)
    children: list[Any] = []
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    for child in children:
        yield from _recurse(step, child)


def _filter_matches(step: _Filter, item: Any) -> bool:
    values = [item]
    for sub in step.left:
        values = [out for value in values for out in _apply(sub, value)]
    if step.op is None:
        return bool(values)
    return any(_compare(value, step.op, step.right) for value in values)


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "==":
        return _same(left, right)
    if op == "!=":
        return not _same(left, right)
    numeric = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return False
    comparable = (isinstance(left, numeric) and isinstance(right, numeric)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        return False
    if op == "<":
        return bool(left < right)
    if op == ">":
        return bool(left > right)
    if op == "<=":
        return bool(left <= right)
    return bool(left >= right)


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)
