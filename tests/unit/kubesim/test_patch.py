"""kubesim's PATCH engines against RFC 7386 / RFC 6902 semantics and kube's strategic merge."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.kubesim.listtypes import builtin_list_types, crd_list_types
from servicegroup.kubesim.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

# ---- JSON merge patch (RFC 7386) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": {"x": 1}}, {"a": {"y": 2}}, {"a": {"x": 1, "y": 2}}),
        ({"a": 1}, {}, {"a": 1}),
        ({"a": None}, {"a": {"b": None, "c": 1}}, {"a": {"c": 1}}),
    ],
)
def test_merge_patch_vectors(target: dict[str, Any], patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


@pytest.mark.parametrize("patch", [["c"], None, "bar", 3])
def test_merge_patch_refuses_a_patch_that_is_not_an_object(patch: Any) -> None:
    with pytest.raises(PatchError) as err:
        merge_patch({"a": 1}, patch)
    assert err.value.status == 400
    assert str(err.value) == "Invalid JSON Patch"


def test_merge_patch_does_not_mutate_its_inputs() -> None:
    target: dict[str, Any] = {"a": {"b": [1, 2]}, "c": "d"}
    patch: dict[str, Any] = {"a": {"b": [3], "x": {"y": None}}, "c": None}
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    result = merge_patch(target, patch)
    assert (target, patch) == before
    assert result == {"a": {"b": [3], "x": {}}}
    result["a"]["b"].append(9)
    assert patch["a"]["b"] == [3]


_scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(max_size=2), _json, max_size=4)


def _merge_diff(a: Any, b: Any) -> dict[str, Any]:
    """The merge patch that turns object a into object b (independent of the engine)."""
    out: dict[str, Any] = {}
    for k in a:
        if k not in b:
            out[k] = None
    for k, v in b.items():
        if k in a and isinstance(a[k], dict) and isinstance(v, dict):
            sub = _merge_diff(a[k], v)
            if sub:
                out[k] = sub
        elif k not in a or a[k] != v or type(a[k]) is not type(v):
            out[k] = v
    return out


@settings(max_examples=150, deadline=None)
@given(_objects, _objects)
def test_merge_patch_of_a_diff_reproduces_the_target(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert merge_patch(a, _merge_diff(a, b)) == b


@settings(max_examples=80, deadline=None)
@given(_objects)
def test_empty_merge_patch_is_identity(a: dict[str, Any]) -> None:
    assert merge_patch(a, {}) == a


# ---- JSON patch (RFC 6902) ---------------------------------------------------------------


DOC = {"foo": "bar", "list": [1, 2, 3], "obj": {"a": 1}, "m~n": 8, "a/b": 7}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "add", "path": "/baz", "value": "qux"}], {**DOC, "baz": "qux"}),
        ([{"op": "add", "path": "/list/1", "value": 9}], {**DOC, "list": [1, 9, 2, 3]}),
        ([{"op": "add", "path": "/list/-", "value": 4}], {**DOC, "list": [1, 2, 3, 4]}),
        ([{"op": "add", "path": "/list/3", "value": 4}], {**DOC, "list": [1, 2, 3, 4]}),
        ([{"op": "add", "path": "/obj/b", "value": [1]}], {**DOC, "obj": {"a": 1, "b": [1]}}),
        ([{"op": "add", "path": "/foo", "value": {"x": 1}}], {**DOC, "foo": {"x": 1}}),
        ([{"op": "remove", "path": "/foo"}], {k: v for k, v in DOC.items() if k != "foo"}),
        ([{"op": "remove", "path": "/list/0"}], {**DOC, "list": [2, 3]}),
        ([{"op": "remove", "path": "/list/-1"}], {**DOC, "list": [1, 2]}),
        ([{"op": "replace", "path": "/foo", "value": 0}], {**DOC, "foo": 0}),
        ([{"op": "replace", "path": "/list/2", "value": "x"}], {**DOC, "list": [1, 2, "x"]}),
        (
            [{"op": "move", "from": "/foo", "path": "/obj/foo"}],
            {**{k: v for k, v in DOC.items() if k != "foo"}, "obj": {"a": 1, "foo": "bar"}},
        ),
        ([{"op": "move", "from": "/list/0", "path": "/list/-"}], {**DOC, "list": [2, 3, 1]}),
        ([{"op": "copy", "from": "/obj", "path": "/obj2"}], {**DOC, "obj2": {"a": 1}}),
        ([{"op": "test", "path": "/obj", "value": {"a": 1}}], DOC),
        ([{"op": "test", "path": "/m~0n", "value": 8}], DOC),
        ([{"op": "remove", "path": "/a~1b"}], {k: v for k, v in DOC.items() if k != "a/b"}),
        ([{"op": "replace", "path": "", "value": {"new": True}}], {"new": True}),
        (
            [
                {"op": "add", "path": "/n", "value": {}},
                {"op": "add", "path": "/n/x", "value": 1},
                {"op": "test", "path": "/n/x", "value": 1},
            ],
            {**DOC, "n": {"x": 1}},
        ),
        # evanphx/json-patch v4 (kube-apiserver's) lets replace create an object member.
        ([{"op": "replace", "path": "/absent", "value": 1}], {**DOC, "absent": 1}),
    ],
)
def test_json_patch_vectors(ops: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(DOC)
    assert json_patch(DOC, ops) == expected
    assert before == DOC


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (
            [{"op": "test", "path": "/foo", "value": "baz"}],
            "testing value /foo failed: test failed",
        ),
        (
            [{"op": "test", "path": "/obj/a", "value": 1.0}],
            "testing value /obj/a failed: test failed",
        ),
        (
            [{"op": "test", "path": "/obj/a", "value": True}],
            "testing value /obj/a failed: test failed",
        ),
        (
            [{"op": "remove", "path": "/nope"}],
            "error in remove for path: '/nope': "
            "Unable to remove nonexistent key: nope: missing value",
        ),
        (
            [{"op": "add", "path": "/missing/child", "value": 1}],
            'add operation does not apply: doc is missing path: "/missing/child": missing value',
        ),
        (
            [{"op": "add", "path": "/list/5", "value": 1}],
            "error in add for path: '/list/5': Unable to access invalid index: 5: "
            "invalid index referenced",
        ),
        (
            [{"op": "replace", "path": "/list/7", "value": 1}],
            "replace operation does not apply: doc is missing key: /list/7: missing value",
        ),
        (
            [{"op": "move", "from": "/missing/x", "path": "/y"}],
            "move operation does not apply: doc is missing from path: /missing/x: missing value",
        ),
        ([{"op": "frobnicate", "path": "/foo"}], "Unexpected kind: frobnicate"),
        ([{"path": "/foo"}], "Unexpected kind: unknown"),
    ],
)
def test_json_patch_errors_are_422_with_upstream_wording(
    ops: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(PatchError) as err:
        json_patch(DOC, ops)
    assert err.value.status == 422
    assert str(err.value) == message


def test_json_patch_is_all_or_nothing_and_never_mutates() -> None:
    before = copy.deepcopy(DOC)
    with pytest.raises(PatchError):
        json_patch(
            DOC, [{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/x", "value": 2}]
        )
    assert before == DOC


def test_json_patch_decoding_errors_are_400_and_size_is_limited() -> None:
    with pytest.raises(PatchError) as err:
        json_patch(DOC, {"op": "add"})  # type: ignore[arg-type]
    assert err.value.status == 400
    assert "cannot unmarshal object into Go value of type jsonpatch.Patch" in str(err.value)
    with pytest.raises(PatchError) as err:
        json_patch(DOC, ["add"])
    assert err.value.status == 400
    too_many = [{"op": "test", "path": "/foo", "value": "bar"}] * 10001
    with pytest.raises(PatchError) as err:
        json_patch(DOC, too_many)
    assert err.value.status == 413


def test_json_patch_test_of_null_matches_an_absent_member() -> None:
    assert json_patch({"a": 1}, [{"op": "test", "path": "/b", "value": None}]) == {"a": 1}


@settings(max_examples=120, deadline=None)
@given(_objects, st.text(min_size=1, max_size=4), _json)
def test_json_patch_add_then_remove_restores(doc: dict[str, Any], key: str, value: Any) -> None:
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    if key in doc:
        return
    added = json_patch(doc, [{"op": "add", "path": pointer, "value": value}])
    assert added[key] == value
    assert json_patch(added, [{"op": "test", "path": pointer, "value": value}]) == added
    assert json_patch(added, [{"op": "remove", "path": pointer}]) == doc


@settings(max_examples=80, deadline=None)
@given(st.lists(_scalars, min_size=1, max_size=6), st.data())
def test_json_patch_move_within_a_list_keeps_its_items(items: list[Any], data: Any) -> None:
    src = data.draw(st.integers(0, len(items) - 1))
    dst = data.draw(st.integers(0, len(items) - 1))
    moved = json_patch({"l": items}, [{"op": "move", "from": f"/l/{src}", "path": f"/l/{dst}"}])
    expected = list(items)
    expected.insert(dst, expected.pop(src))
    assert moved == {"l": expected}


# ---- strategic merge patch -----------------------------------------------------------------

DEPLOYMENT = builtin_list_types("apps", "Deployment")
POD = builtin_list_types("", "Pod")


def _pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "a", "tier": "web"}, "finalizers": ["x"]},
        "spec": {"containers": list(containers), **spec},
    }


NGINX = {
    "name": "nginx",
    "image": "nginx:1",
    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    "ports": [{"containerPort": 80, "protocol": "TCP"}],
}
SIDECAR = {"name": "sidecar", "image": "envoy:1"}


def _smp(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return strategic_merge_patch(target, patch, list_types=POD)


def test_smp_merges_containers_by_name_and_env_by_name() -> None:
    live = _pod(NGINX, SIDECAR)
    patch = {
        "spec": {
            "containers": [
                {"name": "nginx", "image": "nginx:2", "env": [{"name": "B", "value": "3"}]}
            ]
        }
    }
    out = _smp(live, patch)
    nginx, sidecar = out["spec"]["containers"]
    assert sidecar == SIDECAR
    assert nginx["image"] == "nginx:2"
    assert nginx["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert nginx["ports"] == NGINX["ports"]
    assert live == _pod(NGINX, SIDECAR)


def test_smp_adds_a_new_list_item_before_the_server_only_ones() -> None:
    # strategicpatch keeps patch items in patch order and puts new ones first.
    out = _smp(_pod(NGINX), {"spec": {"containers": [SIDECAR]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["sidecar", "nginx"]


def test_smp_merges_ports_by_container_port() -> None:
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "nginx",
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
                }
            ]
        }
    }
    ports = _smp(_pod(NGINX), patch)["spec"]["containers"][0]["ports"]
    assert ports == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 443},
    ]


def test_smp_delete_directive_removes_a_list_item() -> None:
    patch = {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}
    out = _smp(_pod(NGINX, SIDECAR), patch)
    assert out["spec"]["containers"] == [NGINX]
    env_patch = {
        "spec": {"containers": [{"name": "nginx", "env": [{"name": "A", "$patch": "delete"}]}]}
    }
    env = _smp(_pod(NGINX), env_patch)["spec"]["containers"][0]["env"]
    assert env == [{"name": "B", "value": "2"}]


def test_smp_replace_directive_on_a_list_and_on_a_map() -> None:
    patch = {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}
    assert _smp(_pod(NGINX, SIDECAR), patch)["spec"]["containers"] == [
        {"name": "only", "image": "x"}
    ]
    labels = {"metadata": {"labels": {"$patch": "replace", "new": "1"}}}
    assert _smp(_pod(NGINX), labels)["metadata"]["labels"] == {"new": "1"}
    gone = {"metadata": {"labels": {"$patch": "delete"}}}
    assert _smp(_pod(NGINX), gone)["metadata"]["labels"] == {}


def test_smp_set_element_order_reorders_and_merges() -> None:
    third = {"name": "third", "image": "t"}
    patch = {
        "spec": {
            "$setElementOrder/containers": [
                {"name": "sidecar"},
                {"name": "third"},
                {"name": "nginx"},
            ],
            "containers": [third],
        }
    }
    out = _smp(_pod(NGINX, SIDECAR), patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["sidecar", "third", "nginx"]
    only_order = {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}}
    out = _smp(_pod(NGINX, SIDECAR), only_order)
    assert out["spec"]["containers"] == [SIDECAR, NGINX]


def test_smp_set_element_order_must_cover_the_patch_list() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "nginx"}], "containers": [SIDECAR]}}
    with pytest.raises(PatchError) as err:
        _smp(_pod(NGINX), patch)
    assert "doesn't match $setElementOrder list" in str(err.value)


def test_smp_primitive_merge_list_unions_and_delete_from_primitive_list() -> None:
    live = _pod(NGINX)
    live["metadata"]["finalizers"] = ["a", "b"]
    out = _smp(live, {"metadata": {"finalizers": ["b", "c"]}})
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = _smp(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b"]
    out = _smp(
        live,
        {
            "metadata": {
                "$setElementOrder/finalizers": ["c", "b"],
                "finalizers": ["c"],
                "$deleteFromPrimitiveList/finalizers": ["a"],
            }
        },
    )
    assert out["metadata"]["finalizers"] == ["c", "b"]


def test_smp_lists_without_a_strategy_are_replaced() -> None:
    live = _pod(NGINX, tolerations=[{"key": "a"}, {"key": "b"}])
    out = _smp(live, {"spec": {"tolerations": [{"key": "c"}]}})
    assert out["spec"]["tolerations"] == [{"key": "c"}]
    args = _smp(
        _pod({**NGINX, "args": ["x", "y"]}),
        {"spec": {"containers": [{"name": "nginx", "args": ["z"]}]}},
    )
    assert args["spec"]["containers"][0]["args"] == ["z"]


def test_smp_null_deletes_and_nested_maps_merge() -> None:
    out = _smp(
        _pod(NGINX),
        {"metadata": {"labels": {"tier": None, "new": "x"}, "annotations": {"a": None}}},
    )
    assert out["metadata"]["labels"] == {"app": "a", "new": "x"}
    assert out["metadata"]["annotations"] == {}
    out = _smp(_pod(NGINX), {"spec": {"containers": [{"name": "nginx", "env": None}]}})
    assert "env" not in out["spec"]["containers"][0]


def test_smp_retain_keys_clears_unlisted_fields() -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
    }
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = strategic_merge_patch(live, patch, list_types=DEPLOYMENT)
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    bad = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(live, bad, list_types=DEPLOYMENT)
    assert err.value.status == 400
    assert str(err.value) == "invalid patch format of retainKeys"


def test_smp_volumes_merge_by_name_with_retain_keys() -> None:
    live = _pod(
        NGINX, volumes=[{"name": "v", "emptyDir": {}}, {"name": "w", "secret": {"secretName": "s"}}]
    )
    patch = {
        "spec": {
            "volumes": [
                {"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}
            ]
        }
    }
    out = _smp(live, patch)
    assert out["spec"]["volumes"] == [
        {"name": "v", "configMap": {"name": "cm"}},
        {"name": "w", "secret": {"secretName": "s"}},
    ]


def test_smp_new_fields_lose_their_directives_and_nulls() -> None:
    patch = {"spec": {"hostname": "h", "dnsConfig": {"options": None, "nameservers": ["1.1.1.1"]}}}
    out = _smp(_pod(NGINX), patch)
    assert out["spec"]["dnsConfig"] == {"nameservers": ["1.1.1.1"]}
    assert out["spec"]["hostname"] == "h"


def test_smp_errors_carry_kube_apiserver_statuses() -> None:
    with pytest.raises(PatchError) as err:
        _smp(_pod(NGINX), {"spec": {"containers": [{"image": "no-name"}]}})
    assert err.value.status == 500
    assert str(err.value) == "map: map[image:no-name] does not contain declared merge key: name"
    with pytest.raises(PatchError) as err:
        _smp(_pod(NGINX), {"metadata": {"labels": {"$patch": "merge"}}})
    assert err.value.status == 500
    assert str(err.value).startswith("unknown patch type: merge in map:")
    with pytest.raises(PatchError) as err:
        _smp({"metadata": {"finalizers": [["a"]]}}, {"metadata": {"finalizers": [["b"]]}})
    assert err.value.status == 422
    assert str(err.value) == "lists of lists are not supported"
    with pytest.raises(PatchError) as err:
        _smp(_pod(NGINX), {"metadata": {"$deleteFromPrimitiveList": ["a"]}})
    assert err.value.status == 400
    assert str(err.value) == "invalid patch format of primitive list"


def test_smp_is_refused_for_custom_resources() -> None:
    crd = crd_list_types({"type": "object", "properties": {"spec": {"type": "object"}}})
    with pytest.raises(PatchError) as err:
        strategic_merge_patch({"spec": {}}, {"spec": {"a": 1}}, list_types=crd)
    assert err.value.status == 415


def test_smp_on_deployment_template_containers_and_status_conditions() -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [NGINX, SIDECAR]}}},
        "status": {
            "conditions": [
                {"type": "Available", "status": "False"},
                {"type": "Progressing", "status": "True"},
            ]
        },
    }
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:2"}]}}},
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }
    out = strategic_merge_patch(live, patch, list_types=DEPLOYMENT)
    assert out["spec"]["template"]["spec"]["containers"] == [
        NGINX,
        {"name": "sidecar", "image": "envoy:2"},
    ]
    assert out["status"]["conditions"] == [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "True"},
    ]
