"""Grid models: upstream examples parse and round-trip, defaults, aliases, strictness."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from servicegroup.api.models import (
    DEFAULT_TEMPLATE_NAME,
    GRID_TYPES,
    DeploymentGrid,
    DeploymentGridSpec,
    ServiceGrid,
    StatefulSetGrid,
    WorkloadGridStatus,
    grid_type,
    parse_grid,
    to_dict,
)
from servicegroup.kube import resources

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
# Complete manifests from the upstream docs. deploymentgrid-canary.yaml is the docs' canary
# sketch with "......" placeholders; it is covered in test_grid_validation.py.
COMPLETE = [
    "deploymentgrid-demo.yaml",
    "statefulsetgrid-demo.yaml",
    "servicegrid-demo.yaml",
    "deploymentgrid-multicluster.yaml",
]


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", COMPLETE)
def test_upstream_examples_parse_and_round_trip_unchanged(name: str) -> None:
    raw = load(name)
    pristine = copy.deepcopy(raw)
    grid = parse_grid(raw)
    assert grid.kind == raw["kind"]
    assert to_dict(grid) == pristine
    assert raw == pristine, "parsing must not modify its input"


def test_template_keeps_null_creation_timestamp_and_empty_strategy() -> None:
    grid = parse_grid(load("deploymentgrid-demo.yaml"))
    assert isinstance(grid, DeploymentGrid)
    template = grid.spec.template
    assert template["strategy"] == {}
    assert template["template"]["metadata"] == {
        "creationTimestamp": None,
        "labels": {"appGrid": "echo"},
    }
    assert template["template"]["spec"]["containers"][0]["resources"] == {}


def test_multicluster_example_fields() -> None:
    grid = parse_grid(load("deploymentgrid-multicluster.yaml"))
    assert isinstance(grid, DeploymentGrid)
    assert grid.metadata.labels == {"superedge.io/fed": "yes"}
    assert grid.spec.default_template_name == "test1"
    assert grid.spec.templates == {"zone1": "test1", "zone2": "test2"}
    assert set(grid.spec.template_pool) == {"test1", "test2"}
    assert grid.spec.template_pool["test2"]["replicas"] == 3
    assert grid.spec.auto_delete_unused_template is False


def test_defaults() -> None:
    spec = DeploymentGridSpec.model_validate({"gridUniqKey": "zone"})
    assert spec.default_template_name == DEFAULT_TEMPLATE_NAME == "default"
    assert spec.auto_delete_unused_template is False
    assert spec.template_pool == {}
    assert spec.templates == {}
    assert spec.template == {}
    # Defaults are not written back: the wire form is what was given.
    assert to_dict(spec) == {"gridUniqKey": "zone"}


def test_populate_by_name_and_alias_give_the_same_model() -> None:
    by_alias = DeploymentGridSpec.model_validate(
        {"gridUniqKey": "zone", "defaultTemplateName": "t", "autoDeleteUnusedTemplate": True}
    )
    by_name = DeploymentGridSpec(
        grid_uniq_key="zone", default_template_name="t", auto_delete_unused_template=True
    )
    assert by_alias == by_name
    assert to_dict(by_name)["autoDeleteUnusedTemplate"] is True


def test_unknown_fields_are_preserved() -> None:
    raw = {
        "apiVersion": "superedge.io/v1",
        "kind": "ServiceGrid",
        "metadata": {"name": "s", "creationTimestamp": None, "finalizers": ["x"]},
        "spec": {"gridUniqKey": "zone", "template": {"x-custom": {"a": [1, None]}}, "extra": 1},
    }
    assert to_dict(parse_grid(copy.deepcopy(raw))) == raw


@pytest.mark.parametrize(
    "spec",
    [
        {"gridUniqKey": 5},
        {"gridUniqKey": "zone", "template": "......"},
        {"gridUniqKey": "zone", "templatePool": {"a": "not an object"}},
        {"gridUniqKey": "zone", "templates": {"zone1": 3}},
        {"gridUniqKey": "zone", "autoDeleteUnusedTemplate": "true"},
    ],
)
def test_wrong_types_are_rejected_not_coerced(spec: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        DeploymentGridSpec.model_validate(spec)


def test_models_are_frozen() -> None:
    spec = DeploymentGridSpec.model_validate({"gridUniqKey": "zone"})
    with pytest.raises(pydantic.ValidationError):
        spec.grid_uniq_key = "other"  # type: ignore[misc]


def test_status_parses_upstream_and_our_shape() -> None:
    upstream = {"states": {"zone1": {"readyReplicas": 2, "replicas": 2, "conditions": []}}}
    status = WorkloadGridStatus.model_validate(upstream)
    assert status.states["zone1"]["readyReplicas"] == 2
    assert status.units == 0
    ours = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllUnitsReady",
                "message": "1/1 NodeUnits ready",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "units": 1,
        "readyUnits": 1,
        "states": upstream["states"],
    }
    parsed = WorkloadGridStatus.model_validate(ours)
    assert parsed.conditions[0].last_transition_time == "2026-01-01T00:00:00Z"
    assert to_dict(parsed) == ours
    with pytest.raises(pydantic.ValidationError):
        WorkloadGridStatus.model_validate(
            {"conditions": [{**ours["conditions"][0], "status": "Yes"}]}
        )


def test_grid_types_agree_with_the_resource_table() -> None:
    refs = {
        "DeploymentGrid": resources.DEPLOYMENTGRIDS,
        "StatefulSetGrid": resources.STATEFULSETGRIDS,
        "ServiceGrid": resources.SERVICEGRIDS,
    }
    assert set(GRID_TYPES) == set(refs)
    for kind, ref in refs.items():
        entry = grid_type(kind)
        assert entry.plural == ref.plural
        assert f"{ref.group}/{ref.version}" == "superedge.io/v1"
    assert [g.short_name for g in GRID_TYPES.values()] == ["dg", "ssg", "sg"]
    assert [g.child_kind for g in GRID_TYPES.values()] == ["Deployment", "StatefulSet", "Service"]
    assert grid_type("DeploymentGrid").model is DeploymentGrid
    assert grid_type("StatefulSetGrid").model is StatefulSetGrid
    assert grid_type("ServiceGrid").model is ServiceGrid
    assert not grid_type("ServiceGrid").has_pool


def test_parse_grid_rejects_unknown_kinds() -> None:
    with pytest.raises(KeyError):
        parse_grid({"kind": "Deployment"})
    with pytest.raises(KeyError):
        grid_type("Nope")
