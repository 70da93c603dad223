"""Label and field selectors: parsing (apimachinery's grammar) and compiled matchers.

Owns: `parse_label_selector` (the full string syntax: `=`, `==`, `!=`, `in`, `notin`,
existence, `!key`, `>`/`<` integer comparisons), `label_selector_from_dict` (a
metav1.LabelSelector with matchLabels/matchExpressions), `parse_field_selector` (`=`,
`==`, `!=` terms with backslash escapes) and `field_value` (what a field label reads on a
stored object).

Invariants:
- A selector is parsed and validated once per request; matching is a plain Python call on a
  labels dict (or an object) with no parsing.
- An empty selector matches everything; `!=` and `notin` match objects without the key,
  like apimachinery.
- Invalid selectors raise `SelectorError` carrying a message for a 400 BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Labels = Mapping[str, str]


class SelectorError(ValueError):
    """The selector string is malformed or names something invalid."""


_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_errors(key: str) -> list[str]:
    """apimachinery IsQualifiedName, returning its messages."""
    errors: list[str] = []
    prefix, slash, name = key.rpartition("/")
    if not slash:
        name = key
    elif not prefix:
        errors.append("prefix part must be non-empty")
    else:
        if len(prefix) > 253:
            errors.append("prefix part must be no more than 253 characters")
        if not _DNS1123_SUBDOMAIN.match(prefix):
            errors.append(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character"
            )
    if key.count("/") > 1:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character with an optional DNS subdomain "
            "prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME_PART.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """apimachinery IsValidLabelValue, returning its messages."""
    errors: list[str] = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return errors


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector."""

    key: str
    operator: str  # in, notin, exists, !, =, ==, !=, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Labels) -> bool:
        op = self.operator
        if op in ("=", "==", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("gt", "lt"):
            if self.key not in labels:
                return False
            try:
                have = int(labels[self.key])
            except ValueError:
                return False
            want = int(self.values[0])
            return have > want if op == "gt" else have < want
        raise AssertionError(f"unknown operator {op}")


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector: all requirements must match."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False  # labels.Nothing(): matches no object

    def matches(self, labels: Labels | None) -> bool:
        if self.nothing:
            return False
        if not self.requirements:
            return True
        have = labels or {}
        return all(req.matches(have) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        parts = []
        for req in self.requirements:
            if req.operator == "exists":
                parts.append(req.key)
            elif req.operator == "!":
                parts.append(f"!{req.key}")
            elif req.operator in ("in", "notin"):
                parts.append(f"{req.key} {req.operator} ({','.join(req.values)})")
            elif req.operator in ("gt", "lt"):
                parts.append(f"{req.key}{'>' if req.operator == 'gt' else '<'}{req.values[0]}")
            else:
                parts.append(f"{req.key}{req.operator}{req.values[0]}")
        return ",".join(parts)


EVERYTHING = LabelSelector()

# The lexer of apimachinery's selector parser: these characters end an identifier.
_SPECIAL = set("!=<>(),")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _SPECIAL:
            two = text[i : i + 2]
            if two in ("==", "!="):
                tokens.append(("op", two))
                i += 2
            elif ch in "=<>":
                tokens.append(("op", ch))
                i += 1
            elif ch == "!":
                tokens.append(("not", ch))
                i += 1
            else:
                tokens.append((ch, ch))
                i += 1
            continue
        start = i
        while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        if word in ("in", "notin"):
            tokens.append(("setop", word))
        else:
            tokens.append(("id", word))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def fail(self, found: str, expected: str) -> SelectorError:
        return SelectorError(
            f"unable to parse requirement: found '{found}', expected: {expected}"
            if found
            else f"unable to parse requirement: found end of string, expected: {expected}"
        )

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        if self.peek()[0] == "end":
            return EVERYTHING
        while True:
            requirements.append(self.requirement())
            kind, value = self.take()
            if kind == "end":
                break
            if kind != ",":
                raise self.fail(value, "',' or 'end of string'")
            if self.peek()[0] == "end":
                raise self.fail("", "identifier or '!'")
        return LabelSelector(tuple(requirements))

    def requirement(self) -> Requirement:
        negated = False
        kind, value = self.take()
        if kind == "not":
            negated = True
            kind, value = self.take()
        if kind != "id":
            raise self.fail(value, "identifier" if negated else "identifier or '!'")
        key = value
        _check_key(key)
        if negated:
            return Requirement(key, "!")
        kind, value = self.peek()
        if kind in ("end", ","):
            return Requirement(key, "exists")
        self.take()
        if kind == "op":
            op = {"=": "=", "==": "==", "!=": "!=", ">": "gt", "<": "lt"}[value]
            next_kind, next_value = self.peek()
            if next_kind in ("end", ","):
                if op in ("gt", "lt"):
                    raise self.fail("", "identifier")
                _check_value(key, "")
                return Requirement(key, op, ("",))
            if next_kind != "id":
                raise self.fail(next_value, "identifier")
            self.take()
            if op in ("gt", "lt"):
                try:
                    int(next_value)
                except ValueError:
                    raise SelectorError(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                        f"must be an integer: {next_value!r}"
                    ) from None
            else:
                _check_value(key, next_value)
            return Requirement(key, op, (next_value,))
        if kind == "setop":
            return Requirement(key, value, self.value_set(key))
        raise self.fail(value, "'=', '!=', '==', 'in', notin'")

    def value_set(self, key: str) -> tuple[str, ...]:
        kind, value = self.take()
        if kind != "(":
            raise self.fail(value, "'('")
        values: list[str] = []
        expect_value = True
        while True:
            kind, value = self.take()
            if kind == ")":
                if expect_value and values:
                    values.append("")
                break
            if kind == "," and not expect_value:
                expect_value = True
                continue
            if kind == "," and expect_value:
                values.append("")
                continue
            if kind == "id" and expect_value:
                _check_value(key, value)
                values.append(value)
                expect_value = False
                continue
            raise self.fail(value, "',', ')' or identifier")
        if not values:
            values.append("")
        return tuple(sorted(set(values)))


def _check_key(key: str) -> None:
    errors = label_key_errors(key)
    if errors:
        raise SelectorError(
            f'unable to parse requirement: key: Invalid value: "{key}": {"; ".join(errors)}'
        )


def _check_value(key: str, value: str) -> None:
    errors = label_value_errors(value)
    if errors:
        raise SelectorError(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": '
            f"{'; '.join(errors)}"
        )


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse `labelSelector`; raises SelectorError (-> 400 BadRequest)."""
    if not text or not text.strip():
        return EVERYTHING
    return _Parser(text).parse()


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None matches nothing, {} matches everything."""
    if selector is None:
        return LabelSelector(nothing=True)
    requirements: list[Requirement] = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        _check_key(key)
        _check_value(key, str(value))
        requirements.append(Requirement(key, "=", (str(value),)))
    for expression in selector.get("matchExpressions") or []:
        key = str(expression.get("key", ""))
        operator = str(expression.get("operator", ""))
        values = tuple(str(v) for v in expression.get("values") or ())
        _check_key(key)
        mapping = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
        if operator not in mapping:
            raise SelectorError(f'"{operator}" is not a valid label selector operator')
        op = mapping[operator]
        if op in ("in", "notin") and not values:
            raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
        if op in ("exists", "!") and values:
            raise SelectorError("values set must be empty for exists and does not exist")
        for value in values:
            _check_value(key, value)
        requirements.append(Requirement(key, op, tuple(sorted(set(values)))))
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    negated: bool


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector: a conjunction of `field=value` / `field!=value` terms."""

    terms: tuple[FieldTerm, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms

    def exact(self, field: str) -> str | None:
        """The value a `field=value` term requires, if there is one (for index lookups)."""
        for term in self.terms:
            if term.field == field and not term.negated:
                return term.value
        return None


NO_FIELDS = FieldSelector()


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence in {text!r}")
            out.append(text[i + 1])
            i += 2
            continue
        if ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped {ch!r} in {text!r}")
        out.append(ch)
        i += 1
    return "".join(out)


def _split_term(term: str) -> tuple[str, str, str] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
        i += 1
    return None


def parse_field_selector(text: str | None, *, allowed: Sequence[str]) -> FieldSelector:
    """Parse `fieldSelector`, checking each field against the resource's supported labels."""
    if not text or not text.strip():
        return NO_FIELDS
    terms: list[FieldTerm] = []
    for raw in _split_unescaped(text, ","):
        if not raw.strip():
            continue
        split = _split_term(raw)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{raw}'")
        field, op, value = split
        field = field.strip()
        if field not in allowed:
            raise SelectorError(f'field label not supported: "{field}"')
        terms.append(FieldTerm(field, _unescape(value), op == "!="))
    return FieldSelector(tuple(terms))


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """What a field label reads on an object: the string form kube's GetAttrs produces."""
    node: Any = obj
    for part in field.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        if field in {"spec.unschedulable", "spec.hostNetwork"}:
            return "false"
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if field == "status.podIPs" and isinstance(node, list):
        # The pod field label reads the primary IP only.
        return str(node[0].get("ip", "")) if node and isinstance(node[0], Mapping) else ""
    if field == "source" and isinstance(node, Mapping):
        return str(node.get("component", ""))
    return str(node)


def field_matcher(selector: FieldSelector) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a field selector into a predicate on whole objects."""
    if selector.empty:
        return lambda obj: True
    terms = selector.terms

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, term.field) == term.value) != term.negated for term in terms)

    return matches
