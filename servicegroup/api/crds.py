"""CustomResourceDefinitions of the three grids, built from api/models.py (SPEC A1, B1, B8, B13).

Owns: `crd_manifests()` (apiextensions.k8s.io/v1 dicts), `render_crds_yaml()` (what
`servicegroup crds` prints), `crd_files()` (the committed files under manifests/crds/).
Regenerate those files with `python -m servicegroup.api.crds` from the repository root.

Invariants:
- The openAPIV3Schema is structural and generated from the pydantic models: the same field
  names, types and descriptions; then per-kind constraints and CEL rules are laid on top.
- Templates can never be pruned (SPEC B13). Every template (`template`, each `templatePool`
  value) and each `status.states` value is `type: object` with
  `x-kubernetes-preserve-unknown-fields: true` and *no* nested `properties`. Pruning keeps
  unknown fields only where that flag sits on the very node that holds them: upstream's CRD
  describes `templatePool.*.template.metadata` as a bare `type: object`, so the API server
  strips the pod template's labels and its canary example renders no valid child. Describing
  the template fully would repeat that risk for every nested object (and cost ~1 MB of schema);
  the API server validates the children when they are applied instead.
- CEL rules (Kubernetes >= 1.25) mirror grid/validation.py, from the same regular expressions
  and limits in grid/naming.py; every string a rule reads has a maxLength and the one map it
  iterates has maxProperties, so the rules' estimated cost stays far below the API server's
  budget. `metadata.name` is also constrained by `maxLength`/`pattern` (the only metadata
  restrictions a CRD schema may carry), which works without CEL.
- No schema defaults: the API server stores a grid exactly as written; defaults are applied by
  the models. Output is deterministic (fixed key order), so the committed files can be checked.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from servicegroup.api.models import GRID_TYPES, GROUP, VERSION, Condition, GridType
from servicegroup.grid.naming import (
    DNS1035_LABEL_RE,
    DNS1123_LABEL_RE,
    GRID_NAME_MAX,
    QUALIFIED_NAME_MAX,
    QUALIFIED_NAME_RE,
)
from servicegroup.settings import CrdsSettings

CATEGORY = "servicegroup"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
VALIDATIONS = "x-kubernetes-validations"

# A unit key of `templates` is a label value; a pool name is any string, kept to a DNS
# subdomain's length so rules comparing it have a bounded cost.
TEMPLATE_NAME_MAX = 253
# `templates` lists one entry per canary NodeUnit; 10000 leaves room for any real cluster
# while bounding the cost of the rule that iterates it.
TEMPLATES_MAX = 10000

# metav1.Condition's own limits.
CONDITION_TYPE_RE = f"^{QUALIFIED_NAME_RE}$"
CONDITION_REASON_RE = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


# -- schema from models ------------------------------------------------------------------


def _opaque(description: str) -> dict[str, Any]:
    return {"description": description, "type": "object", PRESERVE: True}


def _type_schema(annotation: Any, description: str) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    base: dict[str, Any] = {"description": description} if description else {}
    if origin in (types.UnionType, typing.Union):
        present = [a for a in args if a is not type(None)]
        if len(present) != 1:
            raise TypeError(f"unsupported union {annotation!r}")
        return _type_schema(present[0], description)
    if origin is typing.Literal:
        return {**base, "type": "string", "enum": list(args)}
    if annotation is str:
        return {**base, "type": "string"}
    if annotation is bool:
        return {**base, "type": "boolean"}
    if annotation is int:
        return {**base, "type": "integer", "format": "int64"}
    if annotation is typing.Any:
        return {**base, "type": "object", PRESERVE: True}
    if origin is dict:
        if args[0] is not str:
            raise TypeError(f"map keys must be strings: {annotation!r}")
        value = args[1]
        if value is typing.Any:
            return {**base, "type": "object", PRESERVE: True}
        return {**base, "type": "object", "additionalProperties": _type_schema(value, "")}
    if origin is list:
        return {**base, "type": "array", "items": _type_schema(args[0], "")}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {**base, **model_schema(annotation)}
    raise TypeError(f"no schema for {annotation!r}")


def _description(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    return " ".join(doc.split()) if doc and "Usage docs" not in doc else ""


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Structural schema of a model: properties by wire name, required = no default."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    field: FieldInfo
    for name, field in model.model_fields.items():
        wire = field.alias or name
        properties[wire] = _type_schema(field.annotation, field.description or "")
        if field.is_required():
            required.append(wire)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    description = _description(model)
    if description:
        schema = {"description": description, **schema}
    if required:
        schema["required"] = required
    return schema


# -- per-kind constraints ----------------------------------------------------------------


def _rule(rule: str, message: str) -> dict[str, str]:
    return {"rule": rule, "message": message}


def name_rules(kind: str) -> list[dict[str, str]]:
    """CEL on metadata.name: every child name must be formable (limits: grid/naming.py)."""
    limit = GRID_NAME_MAX[kind]
    if kind == "ServiceGrid":
        pattern = DNS1035_LABEL_RE
        shape = (
            "a DNS-1035 label (a-z, 0-9, '-', starting with a letter): the Service is {name}-svc"
        )
    else:
        pattern = DNS1123_LABEL_RE
        shape = "a DNS-1123 label (a-z, 0-9, '-'): it starts every child's name"
    return [
        _rule(
            f"self.metadata.name.size() <= {limit}",
            f"metadata.name may not be more than {limit} characters, so that every child "
            "name (including the hashed form for NodeUnit values that are not valid names) "
            "fits the child kind's limit",
        ),
        _rule(f"self.metadata.name.matches('^{pattern}$')", f"metadata.name must be {shape}"),
    ]


def grid_uniq_key_rules() -> list[dict[str, str]]:
    return [
        _rule(
            f"self.matches('^{QUALIFIED_NAME_RE}$')",
            "gridUniqKey must be a valid label key: an optional DNS subdomain prefix and '/', "
            "then at most 63 characters of [A-Za-z0-9_.-] starting and ending with an "
            "alphanumeric character",
        ),
        _rule(
            "!self.contains('/') || self.matches('^[^/]{1,253}/')",
            "the prefix of gridUniqKey may not be more than 253 characters",
        ),
    ]


def template_rules() -> list[dict[str, str]]:
    return [
        _rule(
            "!has(self.templates) || self.templates.all(u, self.templates[u] in ['', 'default']"
            " || (has(self.templatePool) && self.templates[u] in self.templatePool))",
            "every value of spec.templates must be 'default' or a key of spec.templatePool",
        ),
        _rule(
            "!has(self.defaultTemplateName) || self.defaultTemplateName in ['', 'default'] || "
            "(has(self.templatePool) && self.defaultTemplateName in self.templatePool)",
            "spec.defaultTemplateName must be 'default' or a key of spec.templatePool",
        ),
    ]


def _condition_schema() -> dict[str, Any]:
    schema = model_schema(Condition)
    props = schema["properties"]
    props["type"].update(maxLength=316, pattern=CONDITION_TYPE_RE)
    props["reason"].update(minLength=1, maxLength=1024, pattern=CONDITION_REASON_RE)
    props["message"].update(maxLength=32768)
    props["lastTransitionTime"].update(format="date-time")
    props["observedGeneration"].update(minimum=0)
    schema["required"] = ["type", "status", "lastTransitionTime", "reason", "message"]
    return schema


def _spec_schema(grid: GridType) -> dict[str, Any]:
    schema = model_schema(grid.spec_model)
    props = schema["properties"]
    props["gridUniqKey"].update(minLength=1, maxLength=QUALIFIED_NAME_MAX)
    props["gridUniqKey"][VALIDATIONS] = grid_uniq_key_rules()
    schema["required"] = ["gridUniqKey"]
    what = grid.template_kind
    props["template"] = _opaque(
        f"{props['template']['description']} An {what}, kept exactly as written."
    )
    if grid.has_pool:
        props["templatePool"]["additionalProperties"] = _opaque(
            f"An {what}, kept exactly as written (pod template metadata included)."
        )
        props["templates"]["additionalProperties"]["maxLength"] = TEMPLATE_NAME_MAX
        props["templates"]["maxProperties"] = TEMPLATES_MAX
        props["defaultTemplateName"]["maxLength"] = TEMPLATE_NAME_MAX
        schema[VALIDATIONS] = template_rules()
    return schema


def _status_schema(grid: GridType) -> dict[str, Any]:
    schema = model_schema(grid.status_model)
    props = schema["properties"]
    props["observedGeneration"]["minimum"] = 0
    props["conditions"]["items"] = _condition_schema()
    props["conditions"]["x-kubernetes-list-type"] = "map"
    props["conditions"]["x-kubernetes-list-map-keys"] = ["type"]
    if "states" in props:
        props["units"]["minimum"] = 0
        props["readyUnits"]["minimum"] = 0
        props["states"]["additionalProperties"] = _opaque(
            f"Status of the NodeUnit's {grid.child_kind}."
        )
    return schema


def openapi_schema(grid: GridType) -> dict[str, Any]:
    limit = GRID_NAME_MAX[grid.kind]
    pattern = DNS1035_LABEL_RE if grid.kind == "ServiceGrid" else DNS1123_LABEL_RE
    return {
        "description": f"{grid.kind}: one {grid.child_kind} per NodeUnit of spec.gridUniqKey."
        if grid.has_pool
        else f"{grid.kind}: a NodeUnit-local Service {{name}}-svc.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": limit, "pattern": f"^{pattern}$"}
                },
            },
            "spec": _spec_schema(grid),
            "status": _status_schema(grid),
        },
        "required": ["spec"],
        VALIDATIONS: name_rules(grid.kind),
    }


def printer_columns(grid: GridType) -> list[dict[str, Any]]:
    key = {
        "name": "Key",
        "type": "string",
        "jsonPath": ".spec.gridUniqKey",
        "description": "Node label key whose values are the NodeUnits",
    }
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    if not grid.has_pool:
        ready = {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        }
        return [key, ready, age]
    units = {
        "name": "Units",
        "type": "integer",
        "jsonPath": ".status.units",
        "description": "NodeUnits (distinct values of the key)",
    }
    ready = {
        "name": "Ready",
        "type": "integer",
        "jsonPath": ".status.readyUnits",
        "description": f"NodeUnits whose {grid.child_kind} is ready",
    }
    return [key, units, ready, age]


def crd_manifest(grid: GridType) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": grid.crd_name,
            "labels": {"app.kubernetes.io/part-of": "servicegroup"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": grid.kind,
                "listKind": grid.list_kind,
                "plural": grid.plural,
                "singular": grid.singular,
                "shortNames": [grid.short_name],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(grid)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(grid),
                }
            ],
        },
    }


def crd_manifests() -> list[dict[str, Any]]:
    """The three CRDs (fresh dicts on every call)."""
    return [crd_manifest(grid) for grid in GRID_TYPES.values()]


def to_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, width=100)


def render_crds_yaml() -> str:
    """All CRDs as one multi-document YAML stream."""
    return "".join(f"---\n{to_yaml(crd)}" for crd in crd_manifests())


def crd_files() -> dict[str, str]:
    """File name under manifests/crds/ -> content."""
    return {f"{crd['metadata']['name']}.yaml": to_yaml(crd) for crd in crd_manifests()}


def _write_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in crd_files().items():
        (directory / name).write_text(text, encoding="utf-8")


def run(settings: CrdsSettings) -> int:
    """`servicegroup crds`: print the three CRD manifests (YAML stream or a JSON List)."""
    if settings.output == "json":
        items = {"apiVersion": "v1", "kind": "List", "items": crd_manifests()}
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    else:
        sys.stdout.write(render_crds_yaml())
    return 0


if __name__ == "__main__":
    # `python -m servicegroup.api.crds [DIR]` writes the files (default manifests/crds);
    # `python -m servicegroup.api.crds -` prints the YAML stream instead.
    target = sys.argv[1] if len(sys.argv) > 1 else "manifests/crds"
    if target == "-":
        sys.stdout.write(render_crds_yaml())
    else:
        _write_files(Path(target))
