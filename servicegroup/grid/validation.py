"""The CRD's CEL checks, in Python, for clusters that do not evaluate CEL (SPEC B8).

Owns: `validate_grid`, which parses a raw grid object and sorts what is wrong into
- terminal errors: the grid cannot be reconciled at all until the user edits it (bad types,
  missing or invalid gridUniqKey, a name no child name can be built from). The reconciler sets
  InvalidSpec, emits a Warning Event and does not retry;
- reference errors: a `templates` value or `defaultTemplateName` naming a missing templatePool
  entry. The CRD rejects these too, but the controller treats them per unit: only the units
  that choose the missing template fail (TemplateNotFound, SPEC B5), the others are rendered.

Messages follow Kubernetes field errors: `<path>: <type>: <value>: <detail>`, e.g.
`spec.gridUniqKey: Invalid value: "": must be a valid label key`.

Invariants: pure; the same rules, limits and regular expressions as api/crds.py (both take
them from grid/naming.py), so a grid the API server accepts is valid here and vice versa.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
import pydantic

from servicegroup.api.models import GRID_TYPES, AnyGrid, WorkloadGridSpec
from servicegroup.grid.naming import (
    GRID_NAME_MAX,
    is_dns1035_label,
    is_dns1123_label,
    is_qualified_name,
)
from servicegroup.grid.templates import is_default_name

REQUIRED = "Required value"
INVALID = "Invalid value"
NOT_FOUND = "Not found"
TOO_LONG = "Too long"
UNSUPPORTED = "Unsupported value"

# Map-valued fields: the next element of an error location is a map key, shown as `[key]`.
_MAP_FIELDS = frozenset({"templatePool", "templates", "labels", "annotations", "states"})


class FieldError(NamedTuple):
    path: str
    type: str
    value: Any = None
    detail: str = ""

    def __str__(self) -> str:
        if self.type == REQUIRED:
            return f"{self.path}: {self.type}" + (f": {self.detail}" if self.detail else "")
        if self.type == TOO_LONG:
            return f"{self.path}: {self.type}: {self.detail}"
        text = f"{self.path}: {self.type}: {_show(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text


class GridValidation(NamedTuple):
    grid: AnyGrid | None  # the parsed grid, None when it could not be parsed
    errors: tuple[FieldError, ...]  # terminal
    reference_errors: tuple[FieldError, ...]  # per-unit: dangling template references

    @property
    def ok(self) -> bool:
        """The grid can be reconciled (reference errors affect single units only)."""
        return self.grid is not None and not self.errors

    def messages(self) -> list[str]:
        return [str(e) for e in self.errors]


def _show(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    after_map = False
    for part in loc:
        if isinstance(part, int) or after_map:
            path += f"[{part}]"
            after_map = False
        else:
            path = f"{path}.{part}" if path else str(part)
            after_map = part in _MAP_FIELDS
    return path


def _pydantic_errors(error: pydantic.ValidationError) -> list[FieldError]:
    result = []
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] == "missing":
            result.append(FieldError(_loc_path(loc), REQUIRED))
        else:
            detail = str(item["msg"])
            result.append(FieldError(_loc_path(loc), INVALID, item.get("input"), detail))
    return result


def validate_name(name: str, *, kind: str) -> list[FieldError]:
    """metadata.name must let every child name be formed (limits in grid/naming.py)."""
    if not name:
        return [FieldError("metadata.name", REQUIRED)]
    limit = GRID_NAME_MAX[kind]
    errors = []
    if len(name) > limit:
        errors.append(
            FieldError(
                "metadata.name",
                TOO_LONG,
                name,
                f"may not be more than {limit} characters (child names are built from it)",
            )
        )
    if kind == "ServiceGrid" and not is_dns1035_label(name[:63]):
        errors.append(
            FieldError(
                "metadata.name",
                INVALID,
                name,
                "must be a DNS-1035 label (lower-case letters, digits and '-', starting with a "
                "letter): the Service is named {name}-svc",
            )
        )
    elif kind != "ServiceGrid" and not is_dns1123_label(name[:63]):
        errors.append(
            FieldError(
                "metadata.name",
                INVALID,
                name,
                "must be a DNS-1123 label (lower-case letters, digits and '-'): child names "
                "are built from it",
            )
        )
    return errors


def validate_grid_uniq_key(key: str) -> list[FieldError]:
    if not key:
        return [FieldError("spec.gridUniqKey", REQUIRED, detail="must be a valid label key")]
    if not is_qualified_name(key):
        return [
            FieldError(
                "spec.gridUniqKey",
                INVALID,
                key,
                "must be a valid label key: an optional DNS subdomain prefix and '/', then at "
                "most 63 characters of [A-Za-z0-9_.-] starting and ending with an alphanumeric",
            )
        ]
    return []


def template_reference_errors(spec: WorkloadGridSpec) -> list[FieldError]:
    """Every template name that is neither 'default'/empty nor a templatePool key."""
    errors = []
    name = spec.default_template_name
    if not is_default_name(name) and name not in spec.template_pool:
        errors.append(
            FieldError("spec.defaultTemplateName", NOT_FOUND, name, "no such templatePool entry")
        )
    for unit, name in sorted(spec.templates.items()):
        if not is_default_name(name) and name not in spec.template_pool:
            errors.append(
                FieldError(f"spec.templates[{unit}]", NOT_FOUND, name, "no such templatePool entry")
            )
    return errors


def validate_grid(obj: Mapping[str, Any], *, kind: str | None = None) -> GridValidation:
    """Parse and check a raw grid object (of `kind`, or of its own `kind` field)."""
    actual = obj.get("kind")
    kind = kind or (actual if isinstance(actual, str) else "")
    if kind not in GRID_TYPES:
        return GridValidation(
            None, (FieldError("kind", UNSUPPORTED, actual, f"one of {sorted(GRID_TYPES)}"),), ()
        )
    errors: list[FieldError] = []
    if actual != kind:
        errors.append(FieldError("kind", UNSUPPORTED, actual, f'expected "{kind}"'))
    if not isinstance(obj.get("spec"), Mapping):
        errors.append(FieldError("spec", REQUIRED))
    grid: AnyGrid | None = None
    try:
        grid = GRID_TYPES[kind].model.model_validate(obj)
    except pydantic.ValidationError as exc:
        errors.extend(e for e in _pydantic_errors(exc) if e.path not in ("kind", "spec"))
    if grid is None:
        return GridValidation(None, tuple(errors), ())
    errors.extend(validate_name(grid.metadata.name, kind=kind))
    errors.extend(validate_grid_uniq_key(grid.spec.grid_uniq_key))
    references: list[FieldError] = []
    if isinstance(grid.spec, WorkloadGridSpec):
        references = template_reference_errors(grid.spec)
    return GridValidation(grid, tuple(errors), tuple(references))
