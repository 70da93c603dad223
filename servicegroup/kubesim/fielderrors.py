"""Field errors exactly as kube-apiserver reports them in a 422 Status.

Owns the `Cause` record (one entry of `Status.details.causes`), the constructors that
build a cause's `message` the way apimachinery's `field.Error.ErrorBody()` does, and
`status_message` (the `Status.message` of `errors.NewInvalid`).

Invariants:
- `Cause.type` is one of the `FieldValue*` cause types; `Cause.message` never repeats the
  field path (that is only in `status_message`), matching `StatusCause.message`.
- Bad values print like Go: strings with `strconv.Quote`, integers and booleans bare,
  anything structured as compact JSON (current apiservers print
  `{"matchLabels":{"app":"x"}}`, not Go struct syntax). An absent value (`None`: a nil
  interface or pointer) prints `"null"`, quoted: `ErrorBody` replaces it with the string
  "null" and prints that with `%q`. A nil map or slice is a typed value, not a nil
  pointer: pass `NIL_COLLECTION` for it and it prints bare `null`.
- `status_message` de-duplicates identical errors and brackets two or more, like
  `utilerrors.Aggregate`; the causes list itself is never de-duplicated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
DUPLICATE = "FieldValueDuplicate"
NOT_FOUND = "FieldValueNotFound"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
INTERNAL = "InternalError"

_TYPE_TEXT = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    FORBIDDEN: "Forbidden",
    DUPLICATE: "Duplicate value",
    NOT_FOUND: "Not found",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    INTERNAL: "Internal error",
}

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


@dataclass(frozen=True)
class Cause:
    """One `Status.details.causes` entry: `type` is the reason, `field` the JSON path."""

    type: str
    message: str
    field: str

    def error(self) -> str:
        """The `field: message` text kube-apiserver joins into `Status.message`."""
        return f"{self.field}: {self.message}"


def go_quote(text: str) -> str:
    """Go's `strconv.Quote`: printable runes kept, the rest escaped."""
    out = ['"']
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def _strip_empty(value: Any) -> Any:
    # Go's encoder drops nested omitempty fields that are nil or empty; raw dicts keep them.
    if isinstance(value, dict):
        return {k: _strip_empty(v) for k, v in value.items() if v is not None and v not in ([], {})}
    if isinstance(value, list):
        return [_strip_empty(v) for v in value]
    return value


def go_json(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON as Go's encoder writes it (HTML-safe escaping, no spaces)."""
    text = json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys, default=str
    )
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


class _NilCollection:
    """A nil Go map or slice as a bad value (see the module docstring)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_COLLECTION"


NIL_COLLECTION: Final = _NilCollection()


def format_value(value: Any, *, sort_keys: bool = False) -> str:
    """A bad value as `ErrorBody` prints it. `sort_keys` for Go maps (labels, selectors)."""
    if value is None:
        return '"null"'  # a nil interface or pointer becomes the string "null", quoted
    if value is NIL_COLLECTION:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and math.fabs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return go_quote(value)
    if not sort_keys:
        # A struct: Go omits its empty omitempty fields. A map (sort_keys) keeps every entry.
        value = _strip_empty(value)
    return go_json(value, sort_keys=sort_keys)


def _body(kind: str, detail: str, value_text: str | None) -> str:
    text = _TYPE_TEXT[kind]
    if value_text is not None:
        text = f"{text}: {value_text}"
    if detail:
        text = f"{text}: {detail}"
    return text


def required(field: str, detail: str = "") -> Cause:
    return Cause(REQUIRED, _body(REQUIRED, detail, None), field)


def forbidden(field: str, detail: str) -> Cause:
    return Cause(FORBIDDEN, _body(FORBIDDEN, detail, None), field)


def invalid(field: str, value: Any, detail: str, *, sort_keys: bool = False) -> Cause:
    return Cause(INVALID, _body(INVALID, detail, format_value(value, sort_keys=sort_keys)), field)


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    quoted = ", ".join(go_quote(v) for v in supported)
    detail = f"supported values: {quoted}" if quoted else ""
    return Cause(NOT_SUPPORTED, _body(NOT_SUPPORTED, detail, format_value(value)), field)


def duplicate(field: str, value: Any) -> Cause:
    return Cause(DUPLICATE, _body(DUPLICATE, "", format_value(value)), field)


def not_found(field: str, value: Any, detail: str = "") -> Cause:
    return Cause(NOT_FOUND, _body(NOT_FOUND, detail, format_value(value)), field)


def too_long(field: str, max_bytes: int) -> Cause:
    unit = "byte" if max_bytes == 1 else "bytes"
    return Cause(TOO_LONG, _body(TOO_LONG, f"may not be more than {max_bytes} {unit}", None), field)


def too_many(field: str, actual: int, max_items: int) -> Cause:
    detail = (
        "must have at most 1 item" if max_items == 1 else f"must have at most {max_items} items"
    )
    return Cause(TOO_MANY, _body(TOO_MANY, detail, str(actual)), field)


def internal(field: str, detail: str) -> Cause:
    return Cause(INTERNAL, _body(INTERNAL, detail, None), field)


def qualified_kind(group: str, kind: str) -> str:
    """`schema.GroupKind.String()`: `Deployment.apps`, but just `Service` for core."""
    return f"{kind}.{group}" if group else kind


def status_message(kind: str, name: str, causes: Sequence[Cause]) -> str:
    """`Status.message` of a 422: `Deployment.apps "x" is invalid: [a, b]` (one: no brackets).

    `kind` is the qualified kind (see `qualified_kind`).
    """
    head = f"{kind} {go_quote(name)} is invalid"
    errors: list[str] = []
    for cause in causes:
        text = cause.error()
        if text not in errors:
            errors.append(text)
    if not errors:
        return head
    if len(errors) == 1:
        return f"{head}: {errors[0]}"
    return f"{head}: [{', '.join(errors)}]"
