"""Structural schemas: pruning, defaulting, validation messages, CEL rules, CRD validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.kubesim.fielderrors import Cause
from servicegroup.kubesim.schema import (
    apply_defaults,
    prune,
    unevaluated_rules,
    validate,
    validate_crd,
)

# -- fixtures ------------------------------------------------------------------------------

TEMPLATE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

GRID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "x-kubernetes-validations": [
        {"rule": "size(self.metadata.name) <= 50", "message": "grid name too long"}
    ],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["gridUniqKey"],
            "x-kubernetes-validations": [
                {
                    "rule": "self.gridUniqKey.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",
                    "message": "gridUniqKey must be a label key",
                    "fieldPath": ".gridUniqKey",
                },
                {
                    "rule": "!has(self.templates) || self.templates.all(k, "
                    "self.templates[k] in self.templatePool || self.templates[k] == 'default')",
                    "messageExpression": "'templates must name a pool entry or default, got '"
                    " + string(size(self.templates)) + ' entries'",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "self.gridUniqKey == oldSelf.gridUniqKey",
                    "message": "gridUniqKey is immutable",
                },
            ],
            "properties": {
                "gridUniqKey": {"type": "string", "minLength": 1},
                "defaultTemplateName": {"type": "string", "default": "default"},
                "autoDeleteUnusedTemplate": {"type": "boolean", "default": False},
                "template": TEMPLATE,
                "templatePool": {"type": "object", "additionalProperties": TEMPLATE},
                "templates": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "states": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                }
            },
        },
    },
}


def grid(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"gridUniqKey": "zone", **spec},
    }


def crd(schema: dict[str, Any] | None = None, **version: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "deploymentgrids.superedge.io"},
        "spec": {
            "group": "superedge.io",
            "scope": "Namespaced",
            "names": {"kind": "DeploymentGrid", "plural": "deploymentgrids", "shortNames": ["dg"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": copy.deepcopy(schema or GRID_SCHEMA)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Key", "type": "string", "jsonPath": ".spec.gridUniqKey"}
                    ],
                    **version,
                }
            ],
        },
    }


def fields(causes: list[Cause]) -> list[str]:
    return [c.field for c in causes]


def messages(causes: list[Cause]) -> dict[str, str]:
    return {c.field: c.message for c in causes}


# -- pruning ---------------------------------------------------------------------------------


def test_prune_drops_unknown_fields_and_keeps_type_meta() -> None:
    obj = grid(unknown=1, templates={"zone-a": "canary"})
    obj["extra"] = {"x": 1}
    obj["status"] = {"states": {"zone-a": {"replicas": 1}}, "bogus": True}
    prune(obj, GRID_SCHEMA)
    assert obj == {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"gridUniqKey": "zone", "templates": {"zone-a": "canary"}},
        "status": {"states": {"zone-a": {"replicas": 1}}},
    }


def test_prune_preserve_unknown_fields_at_several_levels() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    # A known field under preserve-unknown-fields is still pruned by its schema.
                    "strict": {"type": "object", "properties": {"a": {"type": "string"}}},
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                    },
                },
            },
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "list": {
                "type": "array",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
    }
    obj = {
        "apiVersion": "v1",
        "kind": "K",
        "metadata": {"name": "a"},
        "spec": {
            "anything": {"deep": [1, {"x": 2}]},
            "strict": {"a": "kept", "b": "dropped"},
            "items": [{"k": "v", "z": 1}],
        },
        "free": {"x": {"y": 1}},
        "list": [{"any": 1}],
        "gone": 1,
    }
    prune(obj, schema)
    assert obj["spec"] == {
        "anything": {"deep": [1, {"x": 2}]},
        "strict": {"a": "kept"},
        "items": [{"k": "v"}],
    }
    assert obj["free"] == {"x": {"y": 1}}
    assert obj["list"] == [{"any": 1}]
    assert "gone" not in obj


def test_prune_reduces_top_level_metadata_to_object_meta() -> None:
    obj = grid()
    obj["metadata"] = {
        "name": "demo",
        "generateName": "",
        "labels": {"a": "b"},
        "annotations": {"n": 1},  # malformed: a non-string value drops the whole map
        "creationTimestamp": None,
        "deletionTimestamp": "2024-01-02T03:04:05.123+02:00",
        "generation": 0,
        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u", "extra": 1}],
        "finalizers": [],
        "clusterName": "gone",
        "whatever": {"x": 1},
    }
    prune(obj, GRID_SCHEMA)
    assert obj["metadata"] == {
        "name": "demo",
        "labels": {"a": "b"},
        "deletionTimestamp": "2024-01-02T01:04:05Z",
        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u"}],
    }


def test_prune_embedded_resources_keep_type_meta_and_coerce_metadata() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "pod": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "properties": {
                            "spec": {"type": "object", "properties": {"a": {"type": "string"}}}
                        },
                    },
                    "raw": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                },
            }
        },
    }
    obj = {
        "apiVersion": "x/v1",
        "kind": "K",
        "metadata": {"name": "k"},
        "spec": {
            "pod": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "p",
                    "labels": {"a": "b"},
                    "creationTimestamp": None,
                    "junk": 1,
                },
                "spec": {"a": "x", "b": "y"},
                "status": {},
            },
            "raw": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"zzz": 1},
                "data": {"k": "v"},
            },
        },
    }
    prune(obj, schema)
    assert obj["spec"]["pod"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"a": "x"},
    }
    assert obj["spec"]["raw"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {},
        "data": {"k": "v"},
    }


def test_prune_keeps_int_or_string_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "ports": {"type": "array", "items": {"x-kubernetes-int-or-string": True}},
        },
    }
    obj = {"apiVersion": "v1", "kind": "K", "metadata": {}, "port": "http", "ports": [80, "https"]}
    prune(obj, schema)
    assert obj["port"] == "http"
    assert obj["ports"] == [80, "https"]


# -- defaulting ------------------------------------------------------------------------------

DEFAULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {
                    "type": "object",
                    "default": {"type": "RollingUpdate"},
                    "properties": {
                        "type": {"type": "string"},
                        "maxSurge": {"type": "integer", "default": 25},
                    },
                },
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "default": {"name": "http"},
                        "properties": {
                            "name": {"type": "string"},
                            "protocol": {"type": "string", "default": "TCP"},
                        },
                    },
                },
                "pool": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"replicas": {"type": "integer", "default": 2}},
                    },
                },
                "note": {"type": "string", "nullable": True, "default": "n"},
                "gone": {"type": "string"},
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"mode": {"type": "string", "default": "auto"}},
                },
            },
        }
    },
}


def test_defaults_are_applied_recursively() -> None:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "K",
        "metadata": {},
        "spec": {
            "ports": [{"name": "web"}, None],
            "pool": {"a": {}, "b": {"replicas": 5}},
            "note": None,
            "gone": None,
            "free": {"x": 1},
        },
    }
    apply_defaults(obj, DEFAULTS_SCHEMA)
    assert obj["spec"] == {
        "replicas": 1,
        # A default is itself defaulted: maxSurge comes from the nested property's default.
        "strategy": {"type": "RollingUpdate", "maxSurge": 25},
        "ports": [{"name": "web", "protocol": "TCP"}, {"name": "http", "protocol": "TCP"}],
        "pool": {"a": {"replicas": 2}, "b": {"replicas": 5}},
        "note": None,  # nullable: null is kept and not defaulted
        "free": {"x": 1, "mode": "auto"},
    }


def test_absent_parent_object_gets_its_default_then_children_defaults() -> None:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "K", "metadata": {}}
    apply_defaults(obj, DEFAULTS_SCHEMA)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["strategy"] == {"type": "RollingUpdate", "maxSurge": 25}
    assert obj["spec"]["note"] == "n"


def test_defaults_are_deep_copies() -> None:
    first: dict[str, Any] = {"spec": {}}
    second: dict[str, Any] = {"spec": {}}
    apply_defaults(first, DEFAULTS_SCHEMA)
    apply_defaults(second, DEFAULTS_SCHEMA)
    first["spec"]["strategy"]["type"] = "Recreate"
    assert second["spec"]["strategy"]["type"] == "RollingUpdate"
    assert DEFAULTS_SCHEMA["properties"]["spec"]["properties"]["strategy"]["default"] == {
        "type": "RollingUpdate"
    }


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "replicas": st.integers(0, 5),
            "ports": st.lists(
                st.one_of(st.none(), st.fixed_dictionaries({"name": st.text(max_size=3)})),
                max_size=3,
            ),
            "pool": st.dictionaries(st.text(min_size=1, max_size=3), st.just({}), max_size=3),
            "note": st.one_of(st.none(), st.text(max_size=3)),
        },
    )
)
def test_defaulting_is_idempotent(spec: dict[str, Any]) -> None:
    obj = {"spec": copy.deepcopy(spec)}
    apply_defaults(obj, DEFAULTS_SCHEMA)
    once = copy.deepcopy(obj)
    apply_defaults(obj, DEFAULTS_SCHEMA)
    assert obj == once


def test_grid_defaults_then_prune_then_validate() -> None:
    obj = grid(
        templatePool={"canary": {"replicas": 1, "template": {"metadata": {"labels": {"v": "2"}}}}}
    )
    apply_defaults(obj, GRID_SCHEMA)
    prune(obj, GRID_SCHEMA)
    assert obj["spec"]["defaultTemplateName"] == "default"
    assert obj["spec"]["autoDeleteUnusedTemplate"] is False
    # SPEC B13: pool templates keep their pod-template metadata.
    assert obj["spec"]["templatePool"]["canary"]["template"]["metadata"] == {"labels": {"v": "2"}}
    assert validate(obj, GRID_SCHEMA) == []


# -- validation --------------------------------------------------------------------------------


def obj_with(value: Any, prop: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"x": prop}}},
    }
    return {"apiVersion": "v1", "kind": "K", "metadata": {}, "spec": {"x": value}}, schema


@pytest.mark.parametrize(
    ("value", "prop", "cause_type", "message"),
    [
        (
            "string",
            {"type": "integer"},
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.x in body must be of type integer: "string"',
        ),
        (
            1.5,
            {"type": "integer"},
            "FieldValueTypeInvalid",
            'Invalid value: "number": spec.x in body must be of type integer: "number"',
        ),
        (
            True,
            {"type": "string"},
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.x in body must be of type string: "boolean"',
        ),
        (
            None,
            {"type": "string"},
            "FieldValueTypeInvalid",
            'Invalid value: "null": spec.x in body must be of type string: "null"',
        ),
        (
            [],
            {"type": "object"},
            "FieldValueTypeInvalid",
            'Invalid value: "array": spec.x in body must be of type object: "array"',
        ),
        (
            True,
            {"x-kubernetes-int-or-string": True},
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean"',
        ),
        (
            "c",
            {"type": "string", "enum": ["a", "b"]},
            "FieldValueNotSupported",
            'Unsupported value: "c": supported values: "a", "b"',
        ),
        (
            3,
            {"type": "integer", "enum": [1, 2]},
            "FieldValueNotSupported",
            'Unsupported value: 3: supported values: "1", "2"',
        ),
        (
            "Zone",
            {"type": "string", "pattern": "^[a-z]+$"},
            "FieldValueInvalid",
            "Invalid value: \"Zone\": spec.x in body should match '^[a-z]+$'",
        ),
        (
            "ab",
            {"type": "string", "minLength": 3},
            "FieldValueInvalid",
            'Invalid value: "ab": spec.x in body should be at least 3 chars long',
        ),
        (
            "abcdef",
            {"type": "string", "maxLength": 5},
            "FieldValueTooLong",
            "Too long: may not be more than 5 bytes",
        ),
        (
            "yesterday",
            {"type": "string", "format": "date-time"},
            "FieldValueTypeInvalid",
            'Invalid value: "yesterday": spec.x in body must be of type date-time: "yesterday"',
        ),
        (
            -1,
            {"type": "integer", "minimum": 0},
            "FieldValueInvalid",
            "Invalid value: -1: spec.x in body should be greater than or equal to 0",
        ),
        (
            0,
            {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
            "FieldValueInvalid",
            "Invalid value: 0: spec.x in body should be greater than 0",
        ),
        (
            11,
            {"type": "integer", "maximum": 10},
            "FieldValueInvalid",
            "Invalid value: 11: spec.x in body should be less than or equal to 10",
        ),
        (
            10,
            {"type": "integer", "maximum": 10, "exclusiveMaximum": True},
            "FieldValueInvalid",
            "Invalid value: 10: spec.x in body should be less than 10",
        ),
        (
            0.5,
            {"type": "number", "maximum": 0.25},
            "FieldValueInvalid",
            "Invalid value: 0.5: spec.x in body should be less than or equal to 0.25",
        ),
        (
            7,
            {"type": "integer", "multipleOf": 5},
            "FieldValueInvalid",
            "Invalid value: 7: spec.x in body should be a multiple of 5",
        ),
        (
            [1],
            {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "FieldValueInvalid",
            "Invalid value: 1: spec.x in body should have at least 2 items",
        ),
        (
            [1, 2, 3],
            {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
            "FieldValueTooMany",
            "Too many: 3: must have at most 2 items",
        ),
        (
            [1, 1],
            {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
            "FieldValueInvalid",
            'Invalid value: "": spec.x in body shouldn\'t contain duplicates',
        ),
        (
            {},
            {"type": "object", "minProperties": 1},
            "FieldValueInvalid",
            "Invalid value: 0: spec.x in body should have at least 1 properties",
        ),
        (
            {"a": 1, "b": 2},
            {"type": "object", "maxProperties": 1},
            "FieldValueTooMany",
            "Too many: 2: must have at most 1 item",
        ),
    ],
)
def test_validation_messages(
    value: Any, prop: dict[str, Any], cause_type: str, message: str
) -> None:
    obj, schema = obj_with(value, prop)
    causes = validate(obj, schema)
    assert causes[0] == Cause(cause_type, message, "spec.x")


@pytest.mark.parametrize(
    ("value", "prop"),
    [
        (3, {"type": "integer", "format": "int32"}),
        (3.0, {"type": "integer"}),
        (3, {"type": "number"}),
        ("http", {"x-kubernetes-int-or-string": True}),
        (8080, {"x-kubernetes-int-or-string": True}),
        (None, {"type": "string", "nullable": True}),
        ("2024-05-01T10:00:00Z", {"type": "string", "format": "date-time"}),
        ("2024-05-01T10:00:00.5+02:00", {"type": "string", "format": "date-time"}),
        ("anything", {"type": "string", "format": "int64"}),
        ({"deep": [1]}, {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    ],
)
def test_valid_values(value: Any, prop: dict[str, Any]) -> None:
    obj, schema = obj_with(value, prop)
    assert validate(obj, schema) == []


def test_required_and_paths_of_items_and_map_values() -> None:
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "list": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["k"],
                            "properties": {"k": {"type": "string"}},
                        },
                    },
                    "map": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            }
        },
    }
    assert validate({}, schema) == [Cause("FieldValueRequired", "Required value", "spec")]
    causes = validate({"spec": {"list": [{"k": "a"}, {}], "map": {"zone-a": "x"}}}, schema)
    assert messages(causes) == {
        "spec.list[1].k": "Required value",
        "spec.map.zone-a": 'Invalid value: "string": spec.map.zone-a in body must be of type integer: "string"',  # noqa: E501
        "spec.name": "Required value",
        "<nil>": 'Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation',  # noqa: E501
    }


def test_junctions_anyof_oneof_allof_not() -> None:
    prop = {
        "type": "string",
        "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}],
        "not": {"pattern": "^bad$"},
    }
    obj, schema = obj_with("c", prop)
    causes = validate(obj, schema)
    assert causes[0] == Cause(
        "FieldValueInvalid",
        'Invalid value: "": "spec.x" must validate at least one schema (anyOf)',
        "<nil>",
    )
    assert causes[1].field == "spec.x"
    obj, schema = obj_with("bad", prop)
    assert Cause(
        "FieldValueInvalid",
        'Invalid value: "": "spec.x" must not validate the schema (not)',
        "<nil>",
    ) in validate(obj, schema)
    one_of = {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]}
    obj, schema = obj_with(5, one_of)
    assert (
        validate(obj, schema)[0].message
        == 'Invalid value: "": "spec.x" must validate one and only one schema (oneOf). '
        "Found 2 valid alternatives"
    )
    all_of = {"type": "integer", "allOf": [{"minimum": 0}, {"maximum": 10}]}
    obj, schema = obj_with(11, all_of)
    assert [c.message for c in validate(obj, schema)] == [
        "Invalid value: 11: spec.x in body should be less than or equal to 10",
        'Invalid value: "": "spec.x" must validate all the schemas (allOf)',
    ]


def test_list_type_set_and_map_duplicates() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "tags": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string"},
                    },
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name", "protocol"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "protocol": {"type": "string", "default": "TCP"},
                            },
                        },
                    },
                },
            }
        },
    }
    obj = {
        "spec": {
            "tags": ["a", "b", "a"],
            "ports": [
                {"name": "http"},
                {"name": "http", "protocol": "TCP"},
                {"name": "http", "protocol": "UDP"},
            ],
        }
    }
    causes = validate(obj, schema)
    assert causes == [
        Cause("FieldValueDuplicate", 'Duplicate value: "a"', "spec.tags[2]"),
        Cause(
            "FieldValueDuplicate",
            'Duplicate value: {"name":"http","protocol":"TCP"}',
            "spec.ports[1]",
        ),
    ]


# -- CEL rules through validate ----------------------------------------------------------------


def test_cel_rules_pass_on_a_valid_grid() -> None:
    assert (
        validate(
            grid(templatePool={"canary": {}}, templates={"a": "canary", "b": "default"}),
            GRID_SCHEMA,
        )
        == []
    )


def test_cel_rule_message_field_path_and_message_expression() -> None:
    obj = grid(gridUniqKey="Bad_Key", templatePool={}, templates={"a": "missing"})
    causes = validate(obj, GRID_SCHEMA)
    assert causes == [
        Cause(
            "FieldValueInvalid",
            'Invalid value: "object": gridUniqKey must be a label key',
            "spec.gridUniqKey",
        ),
        Cause(
            "FieldValueInvalid",
            'Invalid value: "object": templates must name a pool entry or default, got 1 entries',
            "spec",
        ),
    ]
    # Reading an absent field is a runtime error, reported with the rule.
    causes = validate(grid(templates={"a": "x"}), GRID_SCHEMA)
    assert causes[0].message.startswith(
        'Invalid value: "object": no such key: templatePool evaluating rule: !has(self.templates)'
    )


def test_cel_root_rule_reports_on_nil_field() -> None:
    obj = grid()
    obj["metadata"]["name"] = "x" * 51
    assert validate(obj, GRID_SCHEMA) == [
        Cause("FieldValueInvalid", 'Invalid value: "object": grid name too long', "<nil>")
    ]


def test_cel_transition_rules_only_on_update() -> None:
    new = grid(gridUniqKey="region")
    assert validate(new, GRID_SCHEMA) == []
    assert validate(new, GRID_SCHEMA, old=grid()) == [
        Cause("FieldValueInvalid", 'Invalid value: "object": gridUniqKey is immutable', "spec")
    ]
    assert validate(grid(), GRID_SCHEMA, old=grid()) == []


def test_cel_default_message_reason_and_runtime_error() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "units": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "x-kubernetes-validations": [
                                {"rule": "self.replicas >= 0"},
                                {
                                    "rule": "has(self.owner)",
                                    "message": "owner required",
                                    "reason": "FieldValueRequired",
                                },
                                {"rule": "self.missing == 1"},
                            ],
                            "properties": {
                                "replicas": {"type": "integer"},
                                "owner": {"type": "string"},
                            },
                        },
                    }
                },
            }
        },
    }
    causes = validate({"spec": {"units": {"zone-a": {"replicas": -1}}}}, schema)
    assert causes == [
        Cause(
            "FieldValueInvalid",
            'Invalid value: "object": failed rule: self.replicas >= 0',
            "spec.units[zone-a]",
        ),
        Cause("FieldValueRequired", "Required value: owner required", "spec.units[zone-a]"),
        Cause(
            "FieldValueInvalid",
            'Invalid value: "object": no such key: missing evaluating rule: self.missing == 1',
            "spec.units[zone-a]",
        ),
    ]


def test_cel_rules_skipped_when_type_errors_block() -> None:
    obj = grid(gridUniqKey=5)
    causes = validate(obj, GRID_SCHEMA)
    assert fields(causes) == ["spec.gridUniqKey", "<nil>"]
    assert "some validation rules were not checked" in causes[1].message


def test_unsupported_cel_rules_are_skipped_not_guessed() -> None:
    schema = copy.deepcopy(GRID_SCHEMA)
    schema["properties"]["spec"]["x-kubernetes-validations"].append(
        {"rule": "self.gridUniqKey.isURL()"}
    )
    assert validate(grid(), schema) == []
    assert [r.rule for r in unevaluated_rules(crd(schema))] == ["self.gridUniqKey.isURL()"]
    assert unevaluated_rules(crd())[:1] == []


# -- CRD validation ----------------------------------------------------------------------------


def test_valid_grid_crd() -> None:
    assert validate_crd(crd()) == []


def test_crd_names_scope_and_versions() -> None:
    bad = crd()
    bad["metadata"]["name"] = "grids.superedge.io"
    bad["spec"]["group"] = "superedge"
    bad["spec"]["scope"] = "Global"
    bad["spec"]["names"]["plural"] = "Grids"
    bad["spec"]["versions"][0]["name"] = "V1"
    bad["spec"]["versions"][0]["storage"] = False
    found = messages(validate_crd(bad))
    assert (
        found["metadata.name"]
        == 'Invalid value: "grids.superedge.io": must be spec.names.plural+"."+spec.group'
    )
    assert (
        found["spec.group"]
        == 'Invalid value: "superedge": should be a domain with at least one dot'
    )
    assert (
        found["spec.scope"]
        == 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"'
    )
    assert found["spec.versions[0].name"].startswith('Invalid value: "V1": a DNS-1035 label')
    assert found["spec.names.plural"].startswith('Invalid value: "Grids": a DNS-1035 label')
    assert found["spec.versions"].endswith(
        "must have exactly one version marked as storage version"
    )


def test_crd_defaults_singular_and_list_kind() -> None:
    missing = crd()
    missing["spec"]["names"] = {"plural": "deploymentgrids"}
    assert fields(validate_crd(missing)) == [
        "spec.names.singular",
        "spec.names.kind",
        "spec.names.listKind",
    ]
    # With a kind, singular and listKind are defaulted (deploymentgrid, DeploymentGridList).
    assert validate_crd(crd()) == []


def schema_errors(schema: dict[str, Any], **version: Any) -> dict[str, str]:
    return messages(validate_crd(crd(schema, **version)))


ROOT = "spec.versions[0].schema.openAPIV3Schema"


def test_structural_schema_rules() -> None:
    found = schema_errors(
        {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}
    )
    assert found == {
        f"{ROOT}.properties[spec].type": "Required value: "
        "must not be empty for specified object fields"
    }
    found = schema_errors(
        {
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
            },
        }
    )
    assert (
        found[f"{ROOT}.properties[metadata]"]
        == "Forbidden: must not specify anything other than name and generateName, "
        "but metadata is implicitly specified"
    )
    ok = {
        "type": "object",
        "properties": {
            "metadata": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 20}},
            }
        },
    }
    assert schema_errors(ok) == {}
    found = schema_errors({"type": "object", "properties": {"a": {"type": "array"}}})
    assert found[f"{ROOT}.properties[a].items"] == "Required value: must be specified"
    found = schema_errors(
        {
            "type": "object",
            "properties": {"a": {"type": "object", "x-kubernetes-preserve-unknown-fields": False}},
        }
    )
    assert (
        found[f"{ROOT}.properties[a].x-kubernetes-preserve-unknown-fields"]
        == "Invalid value: false: must be true or undefined"
    )
    found = schema_errors(
        {
            "type": "object",
            "properties": {
                "a": {"type": "array", "uniqueItems": True, "items": {"type": "string"}}
            },
        }
    )
    assert (
        found[f"{ROOT}.properties[a].uniqueItems"]
        == "Forbidden: uniqueItems cannot be set to true since the runtime complexity "
        "becomes quadratic"
    )
    found = schema_errors(
        {
            "type": "object",
            "properties": {
                "a": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}
            },
        }
    )
    assert (
        found[f"{ROOT}.properties[a].x-kubernetes-list-map-keys"]
        == "Required value: must not be empty if x-kubernetes-list-type is map"
    )
    found = schema_errors(
        {
            "type": "object",
            "properties": {"a": {"type": "object", "x-kubernetes-embedded-resource": True}},
        }
    )
    assert found[f"{ROOT}.properties[a].properties"].startswith(
        "Required value: must not be empty if x-kubernetes-embedded-resource"
    )
    found = schema_errors({"type": "object", "properties": {"a": {"type": "strin"}}})
    assert found[f"{ROOT}.properties[a].type"].startswith(
        'Unsupported value: "strin": supported values: "array"'
    )
    assert (
        schema_errors({"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": True}}})
        == {}
    )


def test_crd_defaults_must_validate_and_be_pruned() -> None:
    found = schema_errors(
        {"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}}
    )
    assert (
        found[f"{ROOT}.properties[a].default"]
        == 'Invalid value: "string":  in body must be of type integer: "string"'
    )
    found = schema_errors(
        {"type": "object", "properties": {"a": {"type": "object", "default": {"b": 1}}}}
    )
    assert (
        found[f"{ROOT}.properties[a].default"]
        == 'Invalid value: {"b":1}: must not have unknown fields'
    )


def test_crd_printer_columns() -> None:
    columns = [
        {"name": "Bad", "type": "string", "jsonPath": "spec.x"},
        {"name": "Type", "type": "text", "jsonPath": ".spec.x"},
        {"type": "string", "jsonPath": ".spec.x", "format": "weird"},
    ]
    found = schema_errors(GRID_SCHEMA, additionalPrinterColumns=columns)
    base = "spec.versions[0].additionalPrinterColumns"
    assert (
        found[f"{base}[0].JSONPath"]
        == 'Invalid value: "spec.x": must be a simple json path starting with .'
    )
    assert (
        found[f"{base}[1].type"]
        == 'Invalid value: "text": must be one of boolean,date,integer,number,string'
    )
    assert found[f"{base}[2].name"] == "Required value"
    assert found[f"{base}[2].format"].startswith('Invalid value: "weird": must be one of byte,date')


def test_crd_cel_compile_errors() -> None:
    schema = copy.deepcopy(GRID_SCHEMA)
    rules = schema["properties"]["spec"]["x-kubernetes-validations"]
    rules.append({"rule": "self.gridUniqKey ==", "message": "broken"})
    rules.append({"rule": "nope.size() > 0"})
    found = validate_crd(crd(schema))
    path = f"{ROOT}.properties[spec].x-kubernetes-validations"
    assert fields(found) == [f"{path}[3].rule", f"{path}[4].rule"]
    assert found[0].message.startswith(
        'Invalid value: {"rule":"self.gridUniqKey ==","message":"broken"}: '
        "compilation failed: ERROR: <input>:1:20: Syntax error"
    )
    assert "undeclared reference to 'nope'" in found[1].message


def test_crd_old_self_only_where_correlatable() -> None:
    schema = {
        "type": "object",
        "properties": {
            "list": {
                "type": "array",
                "items": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf"}],
                },
            }
        },
    }
    found = messages(validate_crd(crd(schema)))
    key = f"{ROOT}.properties[list].items.x-kubernetes-validations[0].rule"
    assert (
        found[key]
        == 'Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable '
        f"portion of the schema within {ROOT}.properties[list]"
    )


def test_crd_rule_shapes() -> None:
    schema = {
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": ""},
            {"rule": "true", "reason": "Nope"},
            {"rule": "true", "fieldPath": ".missing"},
        ],
        "properties": {"a": {"type": "string"}},
    }
    found = messages(validate_crd(crd(schema)))
    base = f"{ROOT}.x-kubernetes-validations"
    assert found[f"{base}[0].rule"] == "Required value: rule is not specified"
    assert found[f"{base}[1].reason"].startswith('Unsupported value: "Nope"')
    assert (
        found[f"{base}[2].fieldPath"] == 'Invalid value: ".missing": fieldPath must be a valid path'
    )
