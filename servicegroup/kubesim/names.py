"""Kubernetes string formats (DNS names, label keys and values, port names, ...).

Owns the regexes and the exact explanation strings apimachinery returns from
`IsDNS1123Label`, `IsDNS1123Subdomain`, `IsDNS1035Label`, `IsQualifiedName` (label keys),
`IsValidLabelValue`, `IsValidPortName`, `IsConfigMapKey`, `IsValidPercent`
and `IsHTTPHeaderName`. Each `*_errors` function returns those explanations (empty when the
value is valid); the `is_*` predicates are the boolean form.

Invariants:
- Lengths count UTF-8 bytes, as Go's `len(string)` does.
- Matching is whole-string (`re.fullmatch`), like Go's anchored `^...$` patterns.
- Wording follows current apimachinery: object-name length errors say "characters"
  (`util/validation`), label key/value length errors say "bytes" (`api/validate/content`).
- The checks are pure functions of the string: the common ones remember their answers
  (`_memoized`, bounded; every call returns a fresh list).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
LABEL_VALUE_MAX = 63
LABEL_KEY_NAME_MAX = 63

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_KEY_CHAR = "[A-Za-z0-9]"
_LABEL_KEY_FMT = "(" + _LABEL_KEY_CHAR + "[-A-Za-z0-9_.]*)?" + _LABEL_KEY_CHAR
_LABEL_VALUE_FMT = "(" + _LABEL_KEY_FMT + ")?"
_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_PERCENT_FMT = "[0-9]+%"
_HTTP_HEADER_NAME_FMT = "[-A-Za-z0-9]+"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_MAP_KEY_RE = re.compile(_CONFIG_MAP_KEY_FMT)
_PERCENT_RE = re.compile(_PERCENT_FMT)
_HTTP_HEADER_NAME_RE = re.compile(_HTTP_HEADER_NAME_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
_LABEL_KEY_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
_CONFIG_MAP_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
_HTTP_HEADER_NAME_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"


def _byte_len(value: str) -> int:
    return len(value.encode("utf-8"))


_MEMO_SIZE = 4096
_MEMO_MAX_LEN = 256  # longer strings are checked every time


def _memoized(check: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """`check`, remembering its answer per string (validation repeats the same names)."""
    answers: dict[str, tuple[str, ...]] = {}

    @functools.wraps(check)
    def remembered(value: str) -> list[str]:
        if type(value) is not str or len(value) > _MEMO_MAX_LEN:
            return check(value)
        found = answers.get(value)
        if found is None:
            result = check(value)
            if len(answers) >= _MEMO_SIZE:
                answers.clear()  # bounded: start over, the common names come back at once
            answers[value] = tuple(result)
            return result
        return list(found)

    return remembered


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's `RegexError`, double spaces before each `or` included."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def max_len_characters(length: int) -> str:
    return f"must be no more than {length} characters"


def max_len_bytes(length: int) -> str:
    return f"must be no more than {length} bytes"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


@_memoized
def dns1123_label_errors(value: str) -> list[str]:
    errs: list[str] = []
    if _byte_len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_characters(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            # A valid subdomain that is no valid label can only be failing on its dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain_errors(value: str, *, unit: str = "characters") -> list[str]:
    errs: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} {unit}")
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


@_memoized
def dns1035_label_errors(value: str) -> list[str]:
    errs: list[str] = []
    if _byte_len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_characters(DNS1035_LABEL_MAX))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


@_memoized
def qualified_name_errors(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: `[prefix/]name`."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend(
                "prefix part " + msg for msg in dns1123_subdomain_errors(prefix, unit="bytes")
            )
    else:
        return [
            "a valid label key "
            + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif _byte_len(name) > LABEL_KEY_NAME_MAX:
        errs.append("name part " + max_len_bytes(LABEL_KEY_NAME_MAX))
    if not _LABEL_KEY_RE.fullmatch(name):
        errs.append(
            "name part "
            + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


@_memoized
def label_value_errors(value: str) -> list[str]:
    errs: list[str] = []
    if _byte_len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_bytes(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


@_memoized
def port_name_errors(value: str) -> list[str]:
    """IANA_SVC_NAME (RFC 6335), lower case only."""
    errs: list[str] = []
    if _byte_len(value) > 15:
        errs.append(max_len_characters(15))
    if not _PORT_NAME_CHARSET_RE.fullmatch(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number_errors(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def _chdir_prefix_errors(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


@_memoized
def config_map_key_errors(value: str) -> list[str]:
    errs: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_characters(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_MAP_KEY_RE.fullmatch(value):
        errs.append(
            regex_error(
                _CONFIG_MAP_KEY_MSG, _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"
            )
        )
    return errs + _chdir_prefix_errors(value)


@_memoized
def percent_errors(value: str) -> list[str]:
    if _PERCENT_RE.fullmatch(value):
        return []
    return [regex_error(_PERCENT_MSG, _PERCENT_FMT, "1%", "93%")]


def http_header_name_errors(value: str) -> list[str]:
    if _HTTP_HEADER_NAME_RE.fullmatch(value):
        return []
    return [regex_error(_HTTP_HEADER_NAME_MSG, _HTTP_HEADER_NAME_FMT, "X-Header-Name")]


def is_dns1123_label(value: str) -> bool:
    return not dns1123_label_errors(value)


def is_dns1123_subdomain(value: str) -> bool:
    return not dns1123_subdomain_errors(value)


def is_dns1035_label(value: str) -> bool:
    return not dns1035_label_errors(value)


def is_qualified_name(value: str) -> bool:
    return not qualified_name_errors(value)


def is_valid_label_value(value: str) -> bool:
    return not label_value_errors(value)
