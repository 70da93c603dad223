"""Child names: upstream-exact when valid, sanitized + hashed otherwise, always valid."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.grid.naming import (
    CHILD_NAME_MAX,
    GRID_NAME_MAX,
    HASH_LENGTH,
    ChildNameError,
    NameCollisionError,
    assign_child_names,
    child_name,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    sanitize,
    service_name,
    unit_hash,
)

KINDS = ["Deployment", "StatefulSet"]
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

# Any node label value: up to 63 of [A-Za-z0-9_.-], alphanumeric at both ends.
label_values = st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")
# Unit values that are already valid name parts (lower-case DNS label text).
valid_units = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
grid_names = st.from_regex(r"\A[a-z]([-a-z0-9]{0,41}[a-z0-9])?\Z")  # <= 43: fits every kind
kinds = st.sampled_from(KINDS)


def test_upstream_doc_names() -> None:
    assert child_name("deploymentgrid-demo", "zone-0", kind="Deployment") == (
        "deploymentgrid-demo-zone-0"
    )
    assert child_name("statefulsetgrid-demo", "zone-2", kind="StatefulSet") == (
        "statefulsetgrid-demo-zone-2"
    )
    assert child_name("deploymentgrid-demo", "zone1", kind="Deployment") == (
        "deploymentgrid-demo-zone1"
    )
    assert service_name("servicegrid-demo") == "servicegrid-demo-svc"


@pytest.mark.parametrize(
    ("unit", "sanitized"),
    [("Zone-A", "zone-a"), ("zone_1", "zone-1"), ("site.a", "site-a"), ("_x_", "x")],
)
def test_invalid_values_are_sanitized_with_a_hash(unit: str, sanitized: str) -> None:
    name = child_name("dg", unit, kind="Deployment")
    assert name == f"dg-{sanitized}-{unit_hash(unit)}"
    assert is_dns1123_label(name)


def test_value_with_nothing_left_after_sanitizing_gets_only_the_hash() -> None:
    assert child_name("dg", "___", kind="Deployment") == f"dg-{unit_hash('___')}"


def test_too_long_values_are_shortened_to_the_kind_limit() -> None:
    unit = "a" * 63
    for kind in KINDS:
        name = child_name("grid", unit, kind=kind)
        assert len(name) <= CHILD_NAME_MAX[kind]
        assert name.endswith(unit_hash(unit))
        assert is_dns1123_label(name)
    # 52 is the StatefulSet limit: 'grid-' + 47 a's fits exactly, one more does not.
    assert child_name("grid", "a" * 47, kind="StatefulSet") == "grid-" + "a" * 47
    assert child_name("grid", "a" * 48, kind="StatefulSet") != "grid-" + "a" * 48


def test_limits() -> None:
    assert CHILD_NAME_MAX == {"Deployment": 63, "StatefulSet": 52, "Service": 63}
    assert HASH_LENGTH == 8
    assert GRID_NAME_MAX == {"DeploymentGrid": 54, "StatefulSetGrid": 43, "ServiceGrid": 59}


def test_grid_name_at_the_limit_still_works_and_one_more_fails() -> None:
    for grid_kind, kind in (("DeploymentGrid", "Deployment"), ("StatefulSetGrid", "StatefulSet")):
        limit = GRID_NAME_MAX[grid_kind]
        name = child_name("g" * limit, "Z" * 63, kind=kind)
        assert len(name) == CHILD_NAME_MAX[kind]
        with pytest.raises(ChildNameError):
            child_name("g" * (limit + 1), "Z" * 63, kind=kind)


def test_invalid_grid_name_is_an_error() -> None:
    with pytest.raises(ChildNameError):
        child_name("My.Grid", "zone", kind="Deployment")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="child kind"):
        child_name("g", "z", kind="Service")
    with pytest.raises(ValueError, match="never empty"):
        child_name("g", "", kind="Deployment")


def test_service_name_limits() -> None:
    assert service_name("s" * 59) == "s" * 59 + "-svc"
    with pytest.raises(ChildNameError):
        service_name("s" * 60)
    with pytest.raises(ChildNameError):
        service_name("0abc")  # a Service name must start with a letter


def test_predicates() -> None:
    assert is_dns1123_label("a-1") and not is_dns1123_label("A") and not is_dns1123_label("a" * 64)
    assert is_dns1035_label("a1") and not is_dns1035_label("1a")
    assert is_dns1123_subdomain("a.b-c") and not is_dns1123_subdomain("a..b")
    assert is_qualified_name("zone") and is_qualified_name("superedge.io/zone")
    assert not is_qualified_name("a/b/c") and not is_qualified_name("")
    assert not is_qualified_name("a" * 254 + "/zone")
    assert is_label_value("") and is_label_value("Zone_1.a") and not is_label_value("a/b")


def test_assign_resolves_a_collision_in_favour_of_the_exact_name() -> None:
    # Craft a valid unit equal to the sanitized name of another: the exact one keeps it.
    crafted = f"zone-{unit_hash('Zone')}"
    result = assign_child_names("dg", ["Zone", crafted], kind="Deployment")
    assert result.names == {crafted: f"dg-{crafted}"}
    assert isinstance(result.errors["Zone"], NameCollisionError)


def test_assign_reports_grid_name_errors_per_unit() -> None:
    result = assign_child_names("g" * 60, ["a", "B"], kind="Deployment")
    assert result.names == {"a": "g" * 60 + "-a"}
    assert isinstance(result.errors["B"], ChildNameError)


@given(grid_names, label_values, kinds)
def test_names_are_always_valid_and_within_the_limit(grid: str, unit: str, kind: str) -> None:
    name = child_name(grid, unit, kind=kind)
    assert DNS_LABEL.fullmatch(name)
    assert len(name) <= CHILD_NAME_MAX[kind]
    assert name.startswith(grid + "-")


@given(grid_names, label_values, kinds)
def test_names_are_deterministic(grid: str, unit: str, kind: str) -> None:
    assert child_name(grid, unit, kind=kind) == child_name(grid, unit, kind=kind)
    assert unit_hash(unit) == unit_hash(str(unit))


@given(grid_names, valid_units, kinds)
def test_valid_values_keep_the_upstream_name(grid: str, unit: str, kind: str) -> None:
    if len(grid) + 1 + len(unit) <= CHILD_NAME_MAX[kind]:
        assert child_name(grid, unit, kind=kind) == f"{grid}-{unit}"


@given(grid_names, st.lists(label_values, min_size=2, max_size=30, unique=True), kinds)
def test_distinct_values_get_distinct_names(grid: str, units: list[str], kind: str) -> None:
    names = [child_name(grid, u, kind=kind) for u in units]
    assert len(set(names)) == len(names)
    assigned = assign_child_names(grid, units, kind=kind)
    assert not assigned.errors
    assert len(set(assigned.names.values())) == len(units)


@given(label_values)
def test_values_differing_only_in_case_or_punctuation_differ(unit: str) -> None:
    variants = {unit, unit.upper(), unit.lower(), unit.replace(".", "_")}
    names = {child_name("g", v, kind="Deployment") for v in variants}
    assert len(names) == len(variants)


@given(st.text(max_size=80))
def test_sanitize_output_is_name_text(value: str) -> None:
    out = sanitize(value)
    assert re.fullmatch(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)?", out)
