"""The JSONPath subset used by printer columns: paths, filters, wildcards, slices, errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.kubesim.jsonpath import JSONPathError, find, parse

DOC: dict[str, Any] = {
    "metadata": {"name": "demo", "labels": {"app.kubernetes.io/name": "web"}},
    "spec": {
        "x": 3,
        "list": [{"name": "a", "port": 80}, {"name": "b", "port": 443}, {"name": "c"}],
        "flags": [True, False],
    },
    "status": {
        "conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Ready", "status": "False"},
        ],
        "empty": None,
    },
    "a": {"b": [1, 2, 3]},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.x", [3]),
        ("{.spec.x}", [3]),
        ("$.spec.x", [3]),
        ("metadata.name", ["demo"]),
        (".spec.missing", []),
        (".spec.x.deeper", []),
        (".status.empty", [None]),
        ('.status.conditions[?(@.type=="Ready")].status', ["False"]),
        (".status.conditions[?(@.type=='Available')].status", ["True"]),
        ('.status.conditions[?(@.type!="Ready")].type', ["Available"]),
        (".spec.list[?(@.port > 100)].name", ["b"]),
        (".spec.list[?(@.port)].name", ["a", "b"]),
        (".spec.list[0].name", ["a"]),
        (".spec.list[-1].name", ["c"]),
        (".spec.list[5].name", []),
        (".spec.list[*].name", ["a", "b", "c"]),
        (".spec.list[0:2].name", ["a", "b"]),
        (".spec.list[0,2].name", ["a", "c"]),
        (".a.b[*]", [1, 2, 3]),
        (".a.b[::2]", [1, 3]),
        (".a.*", [[1, 2, 3]]),
        (".metadata.labels['app.kubernetes.io/name']", ["web"]),
        ('.metadata["labels"]["app.kubernetes.io/name"]', ["web"]),
        ("..name", ["demo", "a", "b", "c"]),
        (".spec.flags[?(@ == true)]", [True]),
    ],
)
def test_find(path: str, expected: list[Any]) -> None:
    assert find(path, DOC) == expected


@pytest.mark.parametrize(
    "path",
    ["", "{}", "{.spec", ".spec[", ".spec[abc]", ".spec[?(@.a ~ 1)]", ".spec[1:2:0]", ".a..", "[]"],
)
def test_invalid_paths_raise(path: str) -> None:
    with pytest.raises(JSONPathError):
        parse(path)


def test_parse_once_find_many() -> None:
    path = parse(".spec.x")
    assert path.find({"spec": {"x": 1}}) == [1]
    assert path.find({"spec": {}}) == []
    assert path.find([1, 2]) == []


@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers(), max_size=5))
def test_field_lookup_matches_dict_access(data: dict[str, int]) -> None:
    for key, value in data.items():
        assert find(f".{key}", data) == [value]
        assert find(f"['{key}']", data) == [value]
