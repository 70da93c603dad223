"""CRDs: committed files match the generator, names, printer columns, CEL rules, no pruning."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicegroup.api.crds import crd_files, crd_manifests, render_crds_yaml
from servicegroup.grid.naming import GRID_NAME_MAX

ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = ROOT / "manifests" / "crds"
FIXTURES = ROOT / "tests" / "fixtures" / "upstream"
REGENERATE = "regenerate with `python -m servicegroup.api.crds` from the repository root"

KINDS = ["DeploymentGrid", "StatefulSetGrid", "ServiceGrid"]


def by_kind() -> dict[str, dict[str, Any]]:
    return {crd["spec"]["names"]["kind"]: crd for crd in crd_manifests()}


def schema_of(kind: str) -> dict[str, Any]:
    schema = by_kind()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(data, dict)
    return data


# -- committed output ---------------------------------------------------------------------


def test_committed_crd_files_equal_the_generator_output() -> None:
    expected = crd_files()
    assert sorted(expected) == [
        "deploymentgrids.superedge.io.yaml",
        "servicegrids.superedge.io.yaml",
        "statefulsetgrids.superedge.io.yaml",
    ]
    for name, text in expected.items():
        path = CRD_DIR / name
        assert path.exists(), f"{path} is missing: {REGENERATE}"
        assert path.read_text() == text, f"{path} differs from the generator: {REGENERATE}"


def test_yaml_stream_is_the_three_manifests() -> None:
    docs = list(yaml.safe_load_all(render_crds_yaml()))
    assert docs == crd_manifests()
    assert render_crds_yaml().startswith("---\n")


def test_manifests_are_fresh_copies() -> None:
    first = crd_manifests()
    first[0]["spec"]["group"] = "changed"
    assert crd_manifests()[0]["spec"]["group"] == "superedge.io"


# -- names and versions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural", "short"),
    [
        ("DeploymentGrid", "deploymentgrids", "dg"),
        ("StatefulSetGrid", "statefulsetgrids", "ssg"),
        ("ServiceGrid", "servicegrids", "sg"),
    ],
)
def test_names_scope_and_version(kind: str, plural: str, short: str) -> None:
    crd = by_kind()[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{plural}.superedge.io"
    spec = crd["spec"]
    assert spec["group"] == "superedge.io"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["plural"] == plural
    assert names["singular"] == kind.lower()
    assert names["listKind"] == f"{kind}List"
    assert names["shortNames"] == [short]
    assert names["categories"] == ["servicegroup"]
    [version] = spec["versions"]
    assert version["name"] == "v1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", ["DeploymentGrid", "StatefulSetGrid"])
def test_printer_columns_of_workload_grids(kind: str) -> None:
    columns = by_kind()[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"].upper(), c["type"], c["jsonPath"]) for c in columns] == [
        ("KEY", "string", ".spec.gridUniqKey"),
        ("UNITS", "integer", ".status.units"),
        ("READY", "integer", ".status.readyUnits"),
        ("AGE", "date", ".metadata.creationTimestamp"),
    ]
    status = schema_of(kind)["properties"]["status"]["properties"]
    assert status["units"]["type"] == status["readyUnits"]["type"] == "integer"


def test_printer_columns_of_service_grid() -> None:
    columns = by_kind()["ServiceGrid"]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"].upper(), c["jsonPath"]) for c in columns] == [
        ("KEY", ".spec.gridUniqKey"),
        ("READY", '.status.conditions[?(@.type=="Ready")].status'),
        ("AGE", ".metadata.creationTimestamp"),
    ]


# -- schema shape -------------------------------------------------------------------------


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}[*]")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind: str) -> None:
    for path, node in walk(schema_of(kind)):
        assert "type" in node, f"{path} has no type"
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert "default" not in node, f"{path}: defaults belong to the models, not the CRD"
        if node["type"] == "object" and path:
            described = "properties" in node or "additionalProperties" in node
            assert described or node.get("x-kubernetes-preserve-unknown-fields") is True, (
                f"{path} is a bare object: the API server would prune everything inside it"
            )


@pytest.mark.parametrize("kind", KINDS)
def test_spec_and_status_fields(kind: str) -> None:
    schema = schema_of(kind)
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["gridUniqKey"]
    status = schema["properties"]["status"]["properties"]
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type", "status", "lastTransitionTime", "reason", "message",
    }  # fmt: skip
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert status["observedGeneration"]["type"] == "integer"
    expected = {"gridUniqKey", "template"}
    if kind != "ServiceGrid":
        expected |= {"templatePool", "templates", "defaultTemplateName", "autoDeleteUnusedTemplate"}
        assert status["states"]["additionalProperties"]["x-kubernetes-preserve-unknown-fields"]
    assert set(spec["properties"]) == expected


@pytest.mark.parametrize("kind", ["DeploymentGrid", "StatefulSetGrid"])
def test_templates_are_opaque_preserved_objects(kind: str) -> None:
    spec = schema_of(kind)["properties"]["spec"]["properties"]
    for node in (spec["template"], spec["templatePool"]["additionalProperties"]):
        assert node["type"] == "object"
        assert node["x-kubernetes-preserve-unknown-fields"] is True
        assert "properties" not in node, "nested properties would be pruned (upstream's bug)"


# -- pruning (SPEC B13) -------------------------------------------------------------------


def prune(value: Any, schema: dict[str, Any]) -> Any:
    """The API server's pruning of unknown fields, per the structural schema rules."""
    if isinstance(value, dict) and schema.get("type") == "object":
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            if key in props:
                out[key] = prune(item, props[key])
            elif isinstance(extra, dict):
                out[key] = prune(item, extra)
            elif preserve:
                out[key] = item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


PRUNABLE = [
    "deploymentgrid-demo.yaml",
    "statefulsetgrid-demo.yaml",
    "servicegrid-demo.yaml",
    "deploymentgrid-multicluster.yaml",
]


@pytest.mark.parametrize("name", PRUNABLE)
def test_upstream_examples_survive_pruning_unchanged(name: str) -> None:
    raw = load(name)
    root = schema_of(raw["kind"])
    # metadata is pruned by the ObjectMeta rules, not the schema: compare the rest.
    assert prune(raw["spec"], root["properties"]["spec"]) == raw["spec"]


def test_pool_template_metadata_survives_pruning() -> None:
    raw = load("deploymentgrid-multicluster.yaml")
    spec_schema = schema_of("DeploymentGrid")["properties"]["spec"]
    pruned = prune(copy.deepcopy(raw["spec"]), spec_schema)
    for name in ("test1", "test2"):
        meta = pruned["templatePool"][name]["template"]["metadata"]
        assert meta["labels"] == {"appGrid": "echo"}


def test_the_pruning_check_detects_upstreams_schema_bug() -> None:
    # Upstream describes templatePool.*.template.metadata as a bare object: labels vanish.
    upstream_like = {
        "type": "object",
        "properties": {
            "templatePool": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "template": {
                            "type": "object",
                            "properties": {"metadata": {"type": "object"}},
                        }
                    },
                },
            }
        },
    }
    raw = load("deploymentgrid-multicluster.yaml")["spec"]
    pruned = prune({"templatePool": raw["templatePool"]}, upstream_like)
    assert pruned["templatePool"]["test1"]["template"]["metadata"] == {}


# -- validation rules (SPEC B8) -----------------------------------------------------------


def rules_at(node: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


def regex_in(rule: str) -> str:
    match = re.search(r"matches\('(.*?)'\)", rule)
    assert match, rule
    return match.group(1)


@pytest.mark.parametrize("kind", KINDS)
def test_cel_rule_grid_uniq_key_is_a_label_key(kind: str) -> None:
    node = schema_of(kind)["properties"]["spec"]["properties"]["gridUniqKey"]
    rules = rules_at(node)
    assert len(rules) == 2
    assert node["minLength"] == 1
    assert node["maxLength"] == 253 + 1 + 63
    pattern = re.compile(regex_in(rules[0]))
    for good in ["zone", "a", "superedge.io/zone", "a.b-c/Z_z.9", "x" * 63]:
        assert pattern.search(good), good
    for bad in ["", "-zone", "zone-", "a/b/c", "Ex.com/zone", "/zone", "x" * 64, "zo ne"]:
        assert not pattern.search(bad), bad
    assert rules[1] == "!self.contains('/') || self.matches('^[^/]{1,253}/')"
    prefix = re.compile(regex_in(rules[1]))
    assert prefix.search("a" * 253 + "/zone")
    assert not prefix.search("a" * 254 + "/zone")


@pytest.mark.parametrize("kind", ["DeploymentGrid", "StatefulSetGrid"])
def test_cel_rules_template_references(kind: str) -> None:
    spec = schema_of(kind)["properties"]["spec"]
    rules = rules_at(spec)
    templates_rule = next(r for r in rules if "self.templates.all(" in r)
    assert "in ['', 'default']" in templates_rule
    assert "self.templates[u] in self.templatePool" in templates_rule
    default_rule = next(r for r in rules if "self.defaultTemplateName in self.templatePool" in r)
    assert "self.defaultTemplateName in ['', 'default']" in default_rule
    # Bounded cost: the iterated map and the compared strings have limits.
    assert spec["properties"]["templates"]["maxProperties"] == 10000
    assert spec["properties"]["templates"]["additionalProperties"]["maxLength"] == 253
    assert spec["properties"]["defaultTemplateName"]["maxLength"] == 253


def test_service_grid_has_no_template_rules() -> None:
    assert rules_at(schema_of("ServiceGrid")["properties"]["spec"]) == []


@pytest.mark.parametrize(
    ("kind", "limit", "first"),
    [("DeploymentGrid", 54, "[a-z0-9]"), ("StatefulSetGrid", 43, "[a-z0-9]"),
     ("ServiceGrid", 59, "[a-z]")],
)  # fmt: skip
def test_cel_rules_grid_name(kind: str, limit: int, first: str) -> None:
    assert GRID_NAME_MAX[kind] == limit
    schema = schema_of(kind)
    rules = rules_at(schema)
    assert f"self.metadata.name.size() <= {limit}" in rules
    name_rule = next(r for r in rules if "self.metadata.name.matches(" in r)
    pattern = re.compile(regex_in(name_rule))
    assert regex_in(name_rule).startswith(f"^{first}")
    assert pattern.search("deploymentgrid-demo")
    for bad in ["Demo", "a.b", "a_b", "-a", "a-"]:
        assert not pattern.search(bad), bad
    # The same limits without CEL: metadata.name's own schema.
    name = schema["properties"]["metadata"]["properties"]["name"]
    assert name["maxLength"] == limit
    assert name["pattern"] == regex_in(name_rule)
