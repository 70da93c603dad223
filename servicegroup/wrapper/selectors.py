"""Label and field selectors as the wrapper's clients send them, parsed once per request.

Owns: `parse_label_selector` (apimachinery's string grammar: `k`, `!k`, `k=v`, `k==v`,
`k!=v`, `k in (a,b)`, `k notin (a,b)`, `k>N`, `k<N`, comma-separated), `parse_field_selector`
(`f=v`, `f==v`, `f!=v` with backslash escapes), the field getters each served resource
supports, and `Predicate` (namespace + both selectors) that a watcher applies to every object.

Invariants:
- A selector is validated when parsed; malformed input raises `SelectorError` (a 400 for the
  client) and never reaches matching.
- An empty selector matches everything. `!=`, `notin` and `!k` match objects without the key,
  as apimachinery does; `k>N`/`k<N` never match a value that is not an integer.
- Matching reads the object only (no copies, no mutation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from servicegroup.kube.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES, ResourceRef


class SelectorError(ValueError):
    """A malformed selector (the message is meant for the client)."""


_SPECIAL = frozenset("=!(),<>")
_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _check_key(key: str) -> str:
    prefix, slash, name = key.rpartition("/")
    ok = bool(name) and len(name) <= 63 and _NAME_PART.fullmatch(name) is not None
    if slash:
        ok = ok and len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix) is not None
    if not ok:
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or _LABEL_VALUE.fullmatch(value) is None:
        raise SelectorError(f"invalid label value {value!r}")
    return value


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector; `op` is one of exists, !, =, !=, in, notin, gt, lt."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if op in ("=", "in"):
            return value is not None and value in self.values
        if op in ("!=", "notin"):
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        (bound,) = self.values
        return number > int(bound) if op == "gt" else number < int(bound)


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


def _tokens(text: str) -> list[str]:
    """Split into identifiers and operators (`==` and `!=` are single tokens)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in _SPECIAL:
            two = text[i : i + 2]
            if two in ("==", "!="):
                out.append(two)
                i += 2
            else:
                out.append(c)
                i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            out.append(text[i:j])
            i = j
    return out


def _is_identifier(token: str | None) -> bool:
    return token is not None and token not in _SPECIAL and token not in ("==", "!=")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse apimachinery's label selector string syntax."""
    tokens = _tokens(text or "")
    if not tokens:
        return LabelSelector()
    requirements: list[Requirement] = []
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    while True:
        token = peek()
        if token == "!":
            pos += 1
            key = peek()
            if not _is_identifier(key):
                raise SelectorError(f"expected a label key after '!' in {text!r}")
            assert key is not None
            requirements.append(Requirement(_check_key(key), "!"))
            pos += 1
        elif _is_identifier(token):
            assert token is not None
            key = _check_key(token)
            pos += 1
            op = peek()
            if op is None or op == ",":
                requirements.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                pos += 1
                value = peek()
                if _is_identifier(value) and value not in ("in", "notin"):
                    assert value is not None
                    pos += 1
                elif value in (None, ","):
                    value = ""  # `k=` selects the empty value, as apimachinery allows
                else:
                    raise SelectorError(f"expected a value after {op!r} in {text!r}")
                norm = "!=" if op == "!=" else "="
                requirements.append(Requirement(key, norm, frozenset({_check_value(value)})))
            elif op in ("in", "notin"):
                pos += 1
                if peek() != "(":
                    raise SelectorError(f"expected '(' after {op!r} in {text!r}")
                pos += 1
                values: set[str] = set()
                expect_value = True
                while True:
                    item = peek()
                    if item is None:
                        raise SelectorError(f"unclosed '(' in {text!r}")
                    if item == ")":
                        if expect_value:
                            values.add("")  # `in ()` / `in (a,)`: the empty value
                        pos += 1
                        break
                    if item == ",":
                        if expect_value:
                            values.add("")
                        expect_value = True
                        pos += 1
                        continue
                    if not _is_identifier(item) or not expect_value:
                        raise SelectorError(f"unexpected {item!r} in value list of {text!r}")
                    values.add(_check_value(item))
                    expect_value = False
                    pos += 1
                requirements.append(Requirement(key, op, frozenset(values)))
            elif op in (">", "<"):
                pos += 1
                bound = peek()
                if bound is None or not re.fullmatch(r"-?\d+", bound):
                    raise SelectorError(f"expected an integer after {op!r} in {text!r}")
                pos += 1
                requirements.append(
                    Requirement(key, "gt" if op == ">" else "lt", frozenset({bound}))
                )
            else:
                raise SelectorError(f"unexpected {op!r} after label key in {text!r}")
        else:
            raise SelectorError(f"unexpected {token!r} in label selector {text!r}")
        token = peek()
        if token is None:
            break
        if token != ",":
            raise SelectorError(f"expected ',' but found {token!r} in {text!r}")
        pos += 1
        if peek() is None:
            raise SelectorError(f"trailing ',' in label selector {text!r}")
    return LabelSelector(tuple(requirements))


# --------------------------------------------------------------------------- fields

FieldGetter = Callable[[Mapping[str, Any]], str]


def _meta(field: str) -> FieldGetter:
    def get(obj: Mapping[str, Any]) -> str:
        return str((obj.get("metadata") or {}).get(field) or "")

    return get


def _spec(field: str) -> FieldGetter:
    def get(obj: Mapping[str, Any]) -> str:
        return str((obj.get("spec") or {}).get(field) or "")

    return get


_COMMON_FIELDS: dict[str, FieldGetter] = {
    "metadata.name": _meta("name"),
    "metadata.namespace": _meta("namespace"),
}
# The field labels kube-apiserver supports for each resource the wrapper serves.
FIELDS: dict[ResourceRef, dict[str, FieldGetter]] = {
    SERVICES: {**_COMMON_FIELDS, "spec.clusterIP": _spec("clusterIP"), "spec.type": _spec("type")},
    ENDPOINTS: dict(_COMMON_FIELDS),
    ENDPOINTSLICES: dict(_COMMON_FIELDS),
}


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    negated: bool
    getter: FieldGetter

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (self.getter(obj) == self.value) != self.negated


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(term.matches(obj) for term in self.terms)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for c in text:
        if escaped:
            current.append("\\" + c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    if escaped:
        raise SelectorError(f"field selector {text!r} ends with an unfinished escape")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            if nxt not in ("\\", ",", "="):
                raise SelectorError(f"invalid escape sequence \\{nxt} in field selector")
            out.append(nxt)
        else:
            out.append(c)
    return "".join(out)


def _find_operator(term: str) -> tuple[int, str] | None:
    """The first unescaped `!=`, `==` or `=` in `term`."""
    i = 0
    while i < len(term):
        c = term[i]
        if c == "\\":
            i += 2
            continue
        if term.startswith("!=", i):
            return i, "!="
        if term.startswith("==", i):
            return i, "=="
        if c == "=":
            return i, "="
        i += 1
    return None


def parse_field_selector(text: str | None, *, ref: ResourceRef) -> FieldSelector:
    """Parse `field=value,field!=value`; fields must be ones `ref` supports."""
    if not text or not text.strip():
        return FieldSelector()
    supported = FIELDS.get(ref, _COMMON_FIELDS)
    terms: list[FieldTerm] = []
    for raw in _split_unescaped(text, ","):
        term = raw.strip()
        if not term:
            raise SelectorError(f"empty term in field selector {text!r}")
        found = _find_operator(term)
        if found is None:
            raise SelectorError(f"invalid selector: {term!r}; can't understand it")
        at, op = found
        field = _unescape(term[:at]).strip()
        value = _unescape(term[at + len(op) :])
        getter = supported.get(field)
        if getter is None:
            raise SelectorError(f'field label not supported: "{field}"')
        terms.append(FieldTerm(field, value, op == "!=", getter))
    return FieldSelector(tuple(terms))


@dataclass(frozen=True)
class Predicate:
    """What one list or watch asks for: a namespace (None = all) and both selectors."""

    namespace: str | None = None
    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        return self.labels.matches(metadata.get("labels")) and self.fields.matches(obj)

    @property
    def everything(self) -> bool:
        return self.namespace is None and not self.labels.requirements and not self.fields.terms
