"""Resource quantities (`500m`, `1Gi`, `1e3`) parsed and printed like apimachinery.

Owns `Quantity`, `parse_quantity`, `canonical` and `canonicalize_resource_list`. The
apiserver never stores what the client sent: it parses every quantity, rounds it up to
milli precision (`SetDefaults_ResourceList`) and writes it back in canonical form, so
`cpu: 0.5` reads back as `500m` and `memory: 1024Mi` as `1Gi`. A controller that compares
its own `0.5` with the live `500m` hot-loops on a real cluster and must do so here too.

Invariants:
- Values are exact (`Fraction`); no float ever touches a quantity.
- `canonical(parse_quantity(canonical(q))) == canonical(q)` (printing is idempotent).
- The format (decimal SI, binary SI, decimal exponent) is the one of the parsed suffix;
  binary values below 1024 or not whole print as decimal SI, as Go does.
- Parsing and canonicalizing are pure: answers are remembered per (type, value), bounded.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, NamedTuple

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_NUMBER_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_EXPONENT_RE = re.compile(r"[eE]([+-]?[0-9]+)")

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_BY_EXP = {exp: suffix for suffix, exp in _BINARY.items()}

PARSE_ERROR = f"quantities must match the regular expression '{QUANTITY_PATTERN}'"


class Quantity(NamedTuple):
    value: Fraction
    format: str


_MEMO_SIZE = 4096
_MEMO_MAX_LEN = 64


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Bounded memo: a full one starts over (the common quantities come back at once)."""
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value


_PARSED: dict[tuple[type, Any], Quantity] = {}
_CANONICAL: dict[tuple[type, Any], Any] = {}


def parse_quantity(raw: Any) -> Quantity:
    """Parse a JSON quantity (string, or a bare number as the Go decoder also accepts)."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError(PARSE_ERROR)
    memo_key = (type(raw), raw)
    found = _PARSED.get(memo_key)
    if found is None:
        found = _parse(raw)
        if len(str(raw)) <= _MEMO_MAX_LEN:
            _remember(_PARSED, memo_key, found)
    return found


def _parse(raw: str | int | float) -> Quantity:
    text = raw.strip() if isinstance(raw, str) else repr(raw)
    match = _QUANTITY_RE.match(text)
    if not match or not _NUMBER_RE.fullmatch(match.group(1)):
        raise ValueError(PARSE_ERROR)
    number = Fraction(match.group(1))
    suffix = match.group(2)
    if suffix in _BINARY:
        return Quantity(number * 2 ** _BINARY[suffix], BINARY_SI)
    if suffix in _DECIMAL:
        return Quantity(number * Fraction(10) ** _DECIMAL[suffix], DECIMAL_SI)
    exponent = _EXPONENT_RE.fullmatch(suffix)
    if exponent:
        return Quantity(number * Fraction(10) ** int(exponent.group(1)), DECIMAL_EXPONENT)
    raise ValueError(PARSE_ERROR)


def round_up_milli(quantity: Quantity) -> Quantity:
    """`Quantity.RoundUp(-3)`: sub-milli precision rounds away from zero."""
    scaled = quantity.value * 1000
    if scaled.denominator == 1:
        return quantity
    rounded = math.ceil(abs(scaled)) * (1 if scaled > 0 else -1)
    return Quantity(Fraction(rounded, 1000), quantity.format)


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    # mantissa * 10**exponent == value, exponent a multiple of 3, mantissa as short as that allows.
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    mantissa = int(value)
    while mantissa != 0 and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    while exponent % 3 != 0:
        mantissa *= 10
        exponent -= 1
    return mantissa, exponent


_PRINTED: dict[Quantity, str] = {}


def canonical(quantity: Quantity) -> str:
    """`Quantity.String()` for a value already at milli precision or coarser."""
    found = _PRINTED.get(quantity)
    if found is None:
        found = _print(quantity)
        _remember(_PRINTED, quantity, found)
    return found


def _print(quantity: Quantity) -> str:
    value, fmt = quantity
    if value == 0:
        return "0"
    if fmt == BINARY_SI and (abs(value) < 1024 or value.denominator != 1):
        fmt = DECIMAL_SI
    if fmt == BINARY_SI:
        mantissa, exponent = int(value), 0
        while mantissa % 1024 == 0 and exponent < 60:
            mantissa //= 1024
            exponent += 10
        return f"{mantissa}{_BINARY_BY_EXP[exponent]}"
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_EXPONENT or exponent not in _DECIMAL_BY_EXP:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_BY_EXP[exponent]}"


def canonicalize(raw: Any) -> Any:
    """The stored form of one quantity; unparseable input is returned untouched."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return raw
    memo_key = (type(raw), raw)
    found = _CANONICAL.get(memo_key)
    if found is None:
        try:
            found = canonical(round_up_milli(parse_quantity(raw)))
        except ValueError:
            found = raw
        if len(str(raw)) <= _MEMO_MAX_LEN:
            _remember(_CANONICAL, memo_key, found)
    return found


def canonicalize_resource_list(resources: Any) -> None:
    """Rewrite every value of a `ResourceList` map in place."""
    if not isinstance(resources, dict):
        return
    for name, raw in list(resources.items()):
        resources[name] = canonicalize(raw)
