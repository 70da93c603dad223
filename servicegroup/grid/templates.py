"""Canary template choice per NodeUnit, and the pool entries autoDeleteUnusedTemplate removes.

Owns SPEC A3: for unit `v` the template name is `templates[v]` when present, else
`defaultTemplateName`; a name equal to "default" or empty selects `spec.template`, any other
name selects `templatePool[name]`.

Invariants:
- A missing pool entry (or an empty `spec.template` where it is the chosen one) is an error for
  the units that choose it only (`TemplateNotFound`), never for the whole grid (SPEC B5).
- Nothing here copies or changes a template: `TemplateChoice.template` is the spec's own dict,
  and grid/render.py deep-copies it before adding anything.
- "Used" pool entries are those named by a `templates` value or by `defaultTemplateName`,
  whether or not a node currently carries the unit (a unit that comes back must find its
  template): this matches the upstream documentation of `autoDeleteUnusedTemplate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from servicegroup.api.models import DEFAULT_TEMPLATE_NAME, WorkloadGridSpec


class TemplateChoice(NamedTuple):
    name: str  # "default" for spec.template, otherwise the templatePool key
    template: Mapping[str, Any]  # the spec's own dict: read-only for callers
    field: str  # where it came from, e.g. "spec.template" or "spec.templatePool[test1]"


class TemplateNotFound(NamedTuple):
    unit: str
    name: str  # the template name that was asked for
    field: str  # the field that named it

    @property
    def message(self) -> str:
        if self.name in ("", DEFAULT_TEMPLATE_NAME):
            return f"{self.field}: Required value: spec.template is empty"
        return f'{self.field}: Not found: "{self.name}": no such spec.templatePool entry'


def is_default_name(name: str) -> bool:
    """True when a template name selects `spec.template` rather than a pool entry."""
    return name in ("", DEFAULT_TEMPLATE_NAME)


def template_name_for(spec: WorkloadGridSpec, unit: str) -> tuple[str, str]:
    """(template name, field that chose it) for `unit`."""
    if unit in spec.templates:
        return spec.templates[unit], f"spec.templates[{unit}]"
    return spec.default_template_name, "spec.defaultTemplateName"


def choose_template(spec: WorkloadGridSpec, unit: str) -> TemplateChoice | TemplateNotFound:
    """The template NodeUnit `unit` uses, or why it has none."""
    name, field = template_name_for(spec, unit)
    if is_default_name(name):
        if not spec.template:
            return TemplateNotFound(unit, name, field)
        return TemplateChoice(DEFAULT_TEMPLATE_NAME, spec.template, "spec.template")
    pooled = spec.template_pool.get(name)
    if pooled is None:
        return TemplateNotFound(unit, name, field)
    return TemplateChoice(name, pooled, f"spec.templatePool[{name}]")


def used_pool_entries(spec: WorkloadGridSpec) -> frozenset[str]:
    named = set(spec.templates.values())
    named.add(spec.default_template_name)
    return frozenset(n for n in named if n in spec.template_pool)


def unused_pool_entries(spec: WorkloadGridSpec) -> frozenset[str]:
    """Pool entries named neither by `templates` nor by `defaultTemplateName`."""
    return frozenset(spec.template_pool) - used_pool_entries(spec)


def unused_pool_patch(
    spec: WorkloadGridSpec, *, resource_version: str | None = None
) -> dict[str, Any] | None:
    """JSON merge patch removing the unused pool entries when autoDeleteUnusedTemplate is on.

    None when there is nothing to do. With `resource_version`, the API server refuses the patch
    (409) if the grid changed since it was read, so an entry the user has just started to
    reference is never removed on stale information.
    """
    if not spec.auto_delete_unused_template:
        return None
    unused = unused_pool_entries(spec)
    if not unused:
        return None
    patch: dict[str, Any] = {"spec": {"templatePool": dict.fromkeys(sorted(unused))}}
    if resource_version:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch
