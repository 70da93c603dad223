"""The CRDs' CEL rules agree with grid/validation.py (evaluated with kubesim's CEL subset)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.api.crds import crd_manifests
from servicegroup.api.models import DeploymentGridSpec
from servicegroup.grid.validation import (
    template_reference_errors,
    validate_grid_uniq_key,
    validate_name,
)

KINDS = ["DeploymentGrid", "StatefulSetGrid", "ServiceGrid"]


def schema_of(kind: str) -> dict[str, Any]:
    for crd in crd_manifests():
        if crd["spec"]["names"]["kind"] == kind:
            schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            assert isinstance(schema, dict)
            return schema
    raise AssertionError(kind)


# The rules use nothing beyond kubesim's CEL subset: every rule compiles and evaluates.
cel = pytest.importorskip("servicegroup.kubesim.cel")


def cel_ok(rules: list[dict[str, str]], value: Any) -> bool:
    return all(cel.evaluate(cel.compile_rule(r["rule"]), self_value=value) for r in rules)


keys = st.one_of(
    st.sampled_from(["zone", "superedge.io/zone", "a/b/c", "-z", "Ex.com/z", "a" * 254 + "/z"]),
    st.from_regex(r"\A([a-z0-9.-]{1,12}/)?[A-Za-z0-9_.-]{0,70}\Z"),
)


@settings(max_examples=150, deadline=None)
@given(keys)
def test_grid_uniq_key_rules_agree_with_validation(key: str) -> None:
    node = schema_of("DeploymentGrid")["properties"]["spec"]["properties"]["gridUniqKey"]
    in_bounds = node["minLength"] <= len(key) <= node["maxLength"]
    cel_says = in_bounds and cel_ok(node["x-kubernetes-validations"], key)
    assert cel_says == (validate_grid_uniq_key(key) == [])


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(KINDS), st.from_regex(r"\A[a-zA-Z0-9.-]{1,70}\Z"))
def test_name_rules_agree_with_validation(kind: str, name: str) -> None:
    rules = schema_of(kind)["x-kubernetes-validations"]
    cel_says = cel_ok(rules, {"metadata": {"name": name}})
    assert cel_says == (validate_name(name, kind=kind) == [])


pool_names = st.sampled_from(["", "default", "t1", "t2", "ghost"])


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["t1", "t2"]), st.just({"replicas": 1}), max_size=2),
    st.dictionaries(st.sampled_from(["zone1", "zone2"]), pool_names, max_size=2),
    st.one_of(st.none(), pool_names),
)
def test_template_rules_agree_with_validation(
    pool: dict[str, Any], templates: dict[str, str], default: str | None
) -> None:
    spec: dict[str, Any] = {"gridUniqKey": "zone"}
    if pool:
        spec["templatePool"] = pool
    if templates:
        spec["templates"] = templates
    if default is not None:
        spec["defaultTemplateName"] = default
    rules = schema_of("DeploymentGrid")["properties"]["spec"]["x-kubernetes-validations"]
    parsed = DeploymentGridSpec.model_validate(spec)
    assert cel_ok(rules, spec) == (template_reference_errors(parsed) == [])


def all_rules() -> list[str]:
    rules = []
    for kind in KINDS:
        schema = schema_of(kind)
        spec = schema["properties"]["spec"]
        for node in (schema, spec, spec["properties"]["gridUniqKey"]):
            rules += [r["rule"] for r in node.get("x-kubernetes-validations", [])]
    return rules


def test_every_rule_compiles() -> None:
    rules = all_rules()
    assert len(rules) == 3 * 2 + 2 * 2 + 3 * 2
    for rule in rules:
        cel.compile_rule(rule)
