"""The demo's embedded copies of the upstream examples, and the one fix the canary needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from servicegroup.api.models import parse_grid
from servicegroup.demo import manifests

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"


@pytest.mark.parametrize("name", sorted(manifests.UPSTREAM))
def test_embedded_copy_is_byte_for_byte_the_upstream_example(name: str) -> None:
    assert manifests.UPSTREAM[name] == (FIXTURES / name).read_text()


@pytest.mark.parametrize(
    "name", ["deploymentgrid-demo.yaml", "servicegrid-demo.yaml", "statefulsetgrid-demo.yaml"]
)
def test_examples_shown_unchanged_are_valid_grids(name: str) -> None:
    grid = manifests.load(name)
    assert grid == yaml.safe_load((FIXTURES / name).read_text())
    parse_grid(grid)


def test_the_published_canary_is_not_a_manifest() -> None:
    assert manifests.load("deploymentgrid-canary.yaml")["spec"]["template"] == "......"


def test_fixed_canary_changes_only_what_canary_fixes_lists() -> None:
    renames = {"zone1": "zone-1", "zone2": "zone-2"}
    fixed = manifests.fixed_canary(renames)
    original = manifests.load("deploymentgrid-canary.yaml")
    assert (
        fixed["spec"]["template"] == manifests.load("deploymentgrid-demo.yaml")["spec"]["template"]
    )
    assert fixed["spec"]["templates"] == {"zone-1": "test1", "zone-2": "test2"}
    for key in ("templatePool", "defaultTemplateName", "autoDeleteUnusedTemplate", "gridUniqKey"):
        assert fixed["spec"][key] == original["spec"][key]
    assert fixed["metadata"] == original["metadata"]
    parse_grid(fixed)
    fixes = manifests.canary_fixes(renames)
    assert len(fixes) == 2
    assert "zone1 -> zone-1, zone2 -> zone-2" in fixes[1]
    # Without renames only the placeholder is fixed.
    assert manifests.fixed_canary({})["spec"]["templates"] == original["spec"]["templates"]
    assert len(manifests.canary_fixes({})) == 1


def test_loading_is_a_fresh_copy_each_time() -> None:
    first = manifests.load("deploymentgrid-demo.yaml")
    first["spec"]["template"]["replicas"] = 99
    assert manifests.load("deploymentgrid-demo.yaml")["spec"]["template"]["replicas"] == 2
