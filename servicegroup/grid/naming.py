"""Child names, and the Kubernetes name / label syntax they must satisfy (SPEC A2, B7).

Owns: `child_name` (Deployment / StatefulSet of a NodeUnit), `service_name` (a ServiceGrid's
Service), `assign_child_names` (names for a whole unit set, collisions resolved), the length
limits per kind, and the predicates for DNS labels, qualified names and label values.

Invariants:
- Upstream-compatible: when `{grid}-{unit}` is itself a valid child name it is returned
  unchanged, so switching from upstream renames nothing.
- Otherwise the name is `{grid}-{sanitized}-{hash}` (or `{grid}-{hash}` when nothing of the unit
  survives sanitizing): lower-cased, characters outside [a-z0-9-] turned into '-', '-' trimmed
  at both ends, shortened to fit, then an 8-character hash of the *raw* unit value. Distinct raw
  values get distinct hashes (40 bits; `assign_child_names` still checks the actual set).
- Deterministic: a pure function of (grid name, unit value, kind).
- Every returned name is a DNS-1123 label within the kind's limit; when the grid name itself
  leaves no room, `ChildNameError` is raised and the caller reports it on the grid.

Limits (the numbers the CRD's CEL rules and grid/validation.py use):
- Deployment: 63. The API accepts a DNS-1123 subdomain (253), but a Deployment's name prefixes
  its ReplicaSets' and Pods' names, and Pod hostnames are DNS labels: Kubernetes recommends
  DNS-1123 label names for Deployments, and SPEC B7 treats '.' and over-long values as invalid.
- StatefulSet: 52. Its name must be a DNS-1123 label, and every Pod gets the label
  `controller-revision-hash: {name}-{hash}` where the ControllerRevision hash is up to 10
  characters: 52 + 1 + 10 = 63, the label value limit (pod names `{name}-{ordinal}` fit too).
- Service: 63, a DNS-1035 label (must start with a letter).
- Grid names: the hashed form `{grid}-{hash}` must fit, so a DeploymentGrid name is at most
  63 - 1 - 8 = 54, a StatefulSetGrid name 52 - 1 - 8 = 43, and a ServiceGrid name 63 - 4 = 59
  (`{grid}-svc`). All are below 63, which the grid name also needs as the value of the
  `superedge.io/grid-selector` label. Grid names must be DNS-1123 labels (DNS-1035 for
  ServiceGrid): a '.' in the grid name would make every child name invalid.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

# Regular expressions written so the same text works in Python `re` and in CEL / RE2 (no
# backslashes: '.' only inside a character class).
DNS1123_LABEL_RE = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_RE = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_RE = f"{DNS1123_LABEL_RE}([.]{DNS1123_LABEL_RE})*"
# The name part of a qualified name (label key without prefix), at most 63 characters.
QUALIFIED_NAME_PART_RE = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
QUALIFIED_NAME_RE = f"({DNS1123_SUBDOMAIN_RE}/)?{QUALIFIED_NAME_PART_RE}"
LABEL_VALUE_RE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = DNS1123_SUBDOMAIN_MAX + 1 + 63

HASH_LENGTH = 8
SERVICE_SUFFIX = "-svc"

# Longest valid child name per child kind (see the module docstring for the reasons).
CHILD_NAME_MAX: Mapping[str, int] = {"Deployment": 63, "StatefulSet": 52, "Service": 63}

# Longest grid name per grid kind such that every child name can be formed.
GRID_NAME_MAX: Mapping[str, int] = {
    "DeploymentGrid": CHILD_NAME_MAX["Deployment"] - 1 - HASH_LENGTH,
    "StatefulSetGrid": CHILD_NAME_MAX["StatefulSet"] - 1 - HASH_LENGTH,
    "ServiceGrid": CHILD_NAME_MAX["Service"] - len(SERVICE_SUFFIX),
}

_DNS1123_LABEL = re.compile(DNS1123_LABEL_RE)
_DNS1035_LABEL = re.compile(DNS1035_LABEL_RE)
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_RE)
_QUALIFIED_NAME = re.compile(QUALIFIED_NAME_RE)
_LABEL_VALUE = re.compile(LABEL_VALUE_RE)
_NOT_NAME_CHAR = re.compile("[^a-z0-9-]")


class ChildNameError(ValueError):
    """No valid child name exists (the grid name is invalid or too long for the kind)."""


class NameCollisionError(ChildNameError):
    """The unit's child name is already taken by another unit of the same grid."""


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX and _DNS1123_LABEL.fullmatch(value) is not None


def is_dns1035_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX and _DNS1035_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= DNS1123_SUBDOMAIN_MAX and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def is_qualified_name(value: str) -> bool:
    """A valid label (or annotation) key: optional DNS-1123 subdomain prefix and '/', then a
    name of at most 63 characters."""
    if _QUALIFIED_NAME.fullmatch(value) is None:
        return False
    prefix, _, _ = value.rpartition("/")
    return len(prefix) <= DNS1123_SUBDOMAIN_MAX


def is_label_value(value: str) -> bool:
    return len(value) <= LABEL_VALUE_MAX and _LABEL_VALUE.fullmatch(value) is not None


def unit_hash(unit: str) -> str:
    """8 characters of [a-z2-7] (base32 of SHA-256), stable across processes and versions."""
    digest = hashlib.sha256(unit.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:HASH_LENGTH]


def sanitize(value: str) -> str:
    """Lower-case, characters outside [a-z0-9-] to '-', no '-' at either end."""
    return _NOT_NAME_CHAR.sub("-", value.lower()).strip("-")


def child_name(grid_name: str, unit: str, *, kind: str) -> str:
    """Name of the Deployment / StatefulSet (`kind`) serving NodeUnit `unit` of grid `grid_name`.

    Raises ValueError for an unknown kind or an empty unit, ChildNameError when no valid name
    exists for this grid name.
    """
    if kind not in ("Deployment", "StatefulSet"):
        raise ValueError(f"child kind must be Deployment or StatefulSet, not {kind!r}")
    if not unit:
        raise ValueError("a NodeUnit value is never empty")
    limit = CHILD_NAME_MAX[kind]
    exact = f"{grid_name}-{unit}"
    if len(exact) <= limit and is_dns1123_label(exact):
        return exact
    if not is_dns1123_label(grid_name):
        raise ChildNameError(
            f"grid name {grid_name!r} is not a DNS-1123 label, so no {kind} name can start with it"
        )
    suffix = unit_hash(unit)
    room = limit - len(grid_name) - len(suffix) - 2  # two '-' separators
    if room < 0:
        if len(grid_name) + 1 + len(suffix) > limit:
            raise ChildNameError(
                f"grid name {grid_name!r} is {len(grid_name)} characters long; a {kind} "
                f"child name needs it to be at most {limit - 1 - HASH_LENGTH}"
            )
        return f"{grid_name}-{suffix}"
    part = sanitize(unit)[:room].rstrip("-")
    return f"{grid_name}-{part}-{suffix}" if part else f"{grid_name}-{suffix}"


def is_exact_name(grid_name: str, unit: str, name: str) -> bool:
    """True when `name` is the upstream form `{grid}-{unit}` (not sanitized)."""
    return name == f"{grid_name}-{unit}"


def service_name(grid_name: str) -> str:
    """`{grid}-svc`; ChildNameError when that is not a valid Service name."""
    name = f"{grid_name}{SERVICE_SUFFIX}"
    if not is_dns1035_label(name):
        raise ChildNameError(
            f"Service name {name!r} is not a DNS-1035 label of at most {DNS1123_LABEL_MAX} "
            f"characters: the ServiceGrid name must start with a letter, use only [a-z0-9-] "
            f"and be at most {GRID_NAME_MAX['ServiceGrid']} characters"
        )
    return name


class NameAssignment(NamedTuple):
    """Names for a set of units: `names[unit]`, or `errors[unit]` when it has none."""

    names: dict[str, str]
    errors: dict[str, ChildNameError]


def assign_child_names(grid_name: str, units: Iterable[str], *, kind: str) -> NameAssignment:
    """Child names for every unit, guaranteeing no two units share a name.

    A sanitized name could in theory equal another unit's exact name (or two hashes could
    collide). Then the unit whose name is exact keeps it (upstream compatibility), else the
    lexicographically smallest unit does; the others get an error, never a shared child.
    """
    names: dict[str, str] = {}
    errors: dict[str, ChildNameError] = {}
    by_name: dict[str, list[str]] = {}
    for unit in sorted(set(units)):
        try:
            name = child_name(grid_name, unit, kind=kind)
        except ChildNameError as exc:
            errors[unit] = exc
            continue
        by_name.setdefault(name, []).append(unit)
    for name, claimants in by_name.items():
        winner = next((u for u in claimants if is_exact_name(grid_name, u, name)), claimants[0])
        names[winner] = name
        for unit in claimants:
            if unit != winner:
                errors[unit] = NameCollisionError(
                    f"child name {name!r} is already used by NodeUnit {winner!r}"
                )
    return NameAssignment(names, errors)
