"""Controller-side validation: the CEL rules' checks, terminal vs per-unit errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicegroup.api.models import DeploymentGrid
from servicegroup.grid.render import render_units
from servicegroup.grid.validation import FieldError, validate_grid

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(data, dict)
    return data


def dg(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "dg", "namespace": "default"},
        "spec": {"gridUniqKey": "zone", "template": {"replicas": 1}, **spec},
    }


def messages(obj: dict[str, Any], **kw: Any) -> list[str]:
    return validate_grid(obj, **kw).messages()


@pytest.mark.parametrize(
    "name",
    [
        "deploymentgrid-demo.yaml",
        "statefulsetgrid-demo.yaml",
        "servicegrid-demo.yaml",
        "deploymentgrid-multicluster.yaml",
    ],
)
def test_upstream_examples_are_valid(name: str) -> None:
    result = validate_grid(load(name))
    assert result.ok
    assert result.errors == ()
    assert result.reference_errors == ()
    assert result.grid is not None and result.grid.kind == load(name)["kind"]


def test_docs_canary_sketch_is_rejected_only_for_its_placeholder() -> None:
    raw = load("deploymentgrid-canary.yaml")
    assert raw["spec"]["template"] == "......"  # the docs elide the workload spec
    result = validate_grid(raw)
    assert not result.ok
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith('spec.template: Invalid value: "......": ')
    # Without the placeholder line it is a working canary: zone1 -> test1, zone2 -> test2.
    del raw["spec"]["template"]
    result = validate_grid(raw)
    assert result.ok and result.reference_errors == ()
    assert isinstance(result.grid, DeploymentGrid)
    plan = render_units(result.grid, ["zone1", "zone2", "zone3"])
    images = {
        u: (
            c.template_name,
            c.obj["spec"]["replicas"],
            c.obj["spec"]["template"]["spec"]["containers"][0]["image"],
        )
        for u, c in plan.children.items()
    }
    assert images == {
        "zone1": ("test1", 2, "superedge/echoserver:2.2"),
        "zone2": ("test2", 3, "superedge/echoserver:2.3"),
        "zone3": ("test1", 2, "superedge/echoserver:2.2"),
    }


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "spec.gridUniqKey: Required value: must be a valid label key"),
        ("-zone", 'spec.gridUniqKey: Invalid value: "-zone": must be a valid label key'),
        ("a/b/c", 'spec.gridUniqKey: Invalid value: "a/b/c": must be a valid label key'),
        ("z" * 64, "spec.gridUniqKey: Invalid value: "),
    ],
)
def test_invalid_grid_uniq_key_is_terminal(key: str, message: str) -> None:
    result = validate_grid(dg(gridUniqKey=key))
    assert not result.ok
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith(message)


def test_missing_grid_uniq_key() -> None:
    obj = dg()
    del obj["spec"]["gridUniqKey"]
    assert messages(obj) == ["spec.gridUniqKey: Required value: must be a valid label key"]


@pytest.mark.parametrize(
    "key", ["zone", "superedge.io/zone", "topology.kubernetes.io/zone", "Zone_1"]
)
def test_valid_grid_uniq_keys(key: str) -> None:
    assert validate_grid(dg(gridUniqKey=key)).ok


def test_wrong_types_report_paths() -> None:
    obj = dg(templatePool={"test1": "nope"}, templates={"zone1": 5}, autoDeleteUnusedTemplate="yes")
    result = validate_grid(obj)
    assert result.grid is None
    paths = sorted(e.path for e in result.errors)
    assert paths == [
        "spec.autoDeleteUnusedTemplate",
        "spec.templatePool[test1]",
        "spec.templates[zone1]",
    ]


def test_missing_spec_and_wrong_kind() -> None:
    obj = dg()
    del obj["spec"]
    assert "spec: Required value" in messages(obj)
    assert str(validate_grid(dg(), kind="ServiceGrid").errors[0]).startswith(
        'kind: Unsupported value: "DeploymentGrid"'
    )
    unknown = validate_grid({"kind": "Pod"})
    assert unknown.grid is None and unknown.errors[0].path == "kind"


@pytest.mark.parametrize(
    ("kind", "limit"), [("DeploymentGrid", 54), ("StatefulSetGrid", 43), ("ServiceGrid", 59)]
)
def test_name_length_limits(kind: str, limit: int) -> None:
    obj = dg()
    obj["kind"] = kind
    if kind == "ServiceGrid":
        obj["spec"] = {"gridUniqKey": "zone", "template": {}}
    obj["metadata"]["name"] = "g" * limit
    assert validate_grid(obj).ok
    obj["metadata"]["name"] = "g" * (limit + 1)
    result = validate_grid(obj)
    assert [str(e) for e in result.errors] == [
        f"metadata.name: Too long: may not be more than {limit} characters "
        "(child names are built from it)"
    ]


@pytest.mark.parametrize(("kind", "name"), [("DeploymentGrid", "My.Grid"), ("ServiceGrid", "1svc")])
def test_name_shape(kind: str, name: str) -> None:
    obj = dg()
    obj["kind"] = kind
    obj["metadata"]["name"] = name
    if kind == "ServiceGrid":
        obj["spec"] = {"gridUniqKey": "zone"}
    [error] = validate_grid(obj).errors
    assert error.path == "metadata.name" and error.type == "Invalid value"


def test_dangling_template_references_are_per_unit_not_terminal() -> None:
    obj = dg(
        templatePool={"test1": {"replicas": 2}},
        templates={"zone1": "test1", "zone2": "test3", "zone3": "default", "zone4": ""},
        defaultTemplateName="ghost",
    )
    result = validate_grid(copy.deepcopy(obj))
    assert result.ok
    assert [str(e) for e in result.reference_errors] == [
        'spec.defaultTemplateName: Not found: "ghost": no such templatePool entry',
        'spec.templates[zone2]: Not found: "test3": no such templatePool entry',
    ]


def test_field_error_formats() -> None:
    assert str(FieldError("a.b", "Required value")) == "a.b: Required value"
    assert (
        str(FieldError("a", "Invalid value", {"x": 1}, "bad")) == 'a: Invalid value: {"x":1}: bad'
    )
    assert str(FieldError("a", "Not found", "n")) == 'a: Not found: "n"'
