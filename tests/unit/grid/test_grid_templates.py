"""Canary template choice (SPEC A3) and unused pool entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from servicegroup.api.models import DeploymentGrid, DeploymentGridSpec, parse_grid
from servicegroup.grid.templates import (
    TemplateChoice,
    TemplateNotFound,
    choose_template,
    template_name_for,
    unused_pool_entries,
    unused_pool_patch,
    used_pool_entries,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"

T_MAIN = {"replicas": 1}
T1 = {"replicas": 2}
T2 = {"replicas": 3}


def spec(**fields: Any) -> DeploymentGridSpec:
    return DeploymentGridSpec.model_validate({"gridUniqKey": "zone", **fields})


def test_default_name_selects_spec_template() -> None:
    s = spec(template=T_MAIN)
    choice = choose_template(s, "zone-0")
    assert choice == TemplateChoice("default", T_MAIN, "spec.template")
    assert choice.template is s.template  # no copy here; render copies


def test_templates_entry_wins_over_default_template_name() -> None:
    s = spec(
        template=T_MAIN,
        templatePool={"test1": T1, "test2": T2},
        templates={"zone1": "test1", "zone2": "test2", "zone3": "default"},
        defaultTemplateName="test1",
    )
    assert choose_template(s, "zone1") == TemplateChoice("test1", T1, "spec.templatePool[test1]")
    assert choose_template(s, "zone2") == TemplateChoice("test2", T2, "spec.templatePool[test2]")
    assert choose_template(s, "zone3") == TemplateChoice("default", T_MAIN, "spec.template")
    # Not listed: defaultTemplateName.
    assert choose_template(s, "zone9") == TemplateChoice("test1", T1, "spec.templatePool[test1]")


def test_empty_names_mean_default() -> None:
    s = spec(template=T_MAIN, templates={"z": ""}, defaultTemplateName="")
    assert choose_template(s, "z").name == "default"  # type: ignore[union-attr]
    assert choose_template(s, "other").name == "default"  # type: ignore[union-attr]


def test_missing_pool_entry_fails_only_that_unit() -> None:
    s = spec(template=T_MAIN, templatePool={"test1": T1}, templates={"zone2": "test3"})
    missing = choose_template(s, "zone2")
    assert missing == TemplateNotFound("zone2", "test3", "spec.templates[zone2]")
    assert isinstance(missing, TemplateNotFound)
    assert missing.message == (
        'spec.templates[zone2]: Not found: "test3": no such spec.templatePool entry'
    )
    assert isinstance(choose_template(s, "zone1"), TemplateChoice)


def test_missing_default_template_name() -> None:
    s = spec(templatePool={"test1": T1}, defaultTemplateName="nope")
    result = choose_template(s, "zone-0")
    assert isinstance(result, TemplateNotFound)
    assert result.field == "spec.defaultTemplateName"
    assert template_name_for(s, "zone-0") == ("nope", "spec.defaultTemplateName")


def test_empty_spec_template_is_reported_for_units_that_use_it() -> None:
    s = spec(templatePool={"test1": T1}, templates={"zone1": "test1"})
    result = choose_template(s, "zone2")
    assert isinstance(result, TemplateNotFound)
    assert result.message == "spec.defaultTemplateName: Required value: spec.template is empty"
    assert isinstance(choose_template(s, "zone1"), TemplateChoice)


def test_unused_pool_entries() -> None:
    s = spec(
        templatePool={"test1": T1, "test2": T2, "old": T1, "older": T2},
        templates={"zone1": "test1", "zone3": "ghost"},
        defaultTemplateName="test2",
    )
    assert used_pool_entries(s) == {"test1", "test2"}
    assert unused_pool_entries(s) == {"old", "older"}


def test_unused_pool_patch_only_when_enabled() -> None:
    s = spec(templatePool={"test1": T1, "old": T1}, templates={"z": "test1"})
    assert unused_pool_patch(s) is None
    on = spec(
        templatePool={"test1": T1, "old": T1, "b": T2},
        templates={"z": "test1"},
        autoDeleteUnusedTemplate=True,
    )
    assert unused_pool_patch(on) == {"spec": {"templatePool": {"b": None, "old": None}}}
    assert unused_pool_patch(on, resource_version="42") == {
        "spec": {"templatePool": {"b": None, "old": None}},
        "metadata": {"resourceVersion": "42"},
    }
    nothing = spec(
        templatePool={"test1": T1}, templates={"z": "test1"}, autoDeleteUnusedTemplate=True
    )
    assert unused_pool_patch(nothing) is None


def test_upstream_multicluster_canary_choice() -> None:
    raw = yaml.safe_load((FIXTURES / "deploymentgrid-multicluster.yaml").read_text())
    grid = parse_grid(raw)
    assert isinstance(grid, DeploymentGrid)
    names = {u: choose_template(grid.spec, u).name for u in ("zone1", "zone2", "zone3")}  # type: ignore[union-attr]
    assert names == {"zone1": "test1", "zone2": "test2", "zone3": "test1"}
    assert unused_pool_entries(grid.spec) == frozenset()
