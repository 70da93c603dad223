"""Label and field selectors as the wrapper parses and matches them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.kube.resources import ENDPOINTSLICES, SERVICES
from servicegroup.wrapper.selectors import (
    Predicate,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

KUBE_PROXY = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {"a": "1"}, True),
        (KUBE_PROXY, {}, True),
        (KUBE_PROXY, {"service.kubernetes.io/headless": ""}, False),
        (KUBE_PROXY, {"service.kubernetes.io/service-proxy-name": "x"}, False),
        (KUBE_PROXY, {"app": "web"}, True),
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a!=1", {"a": "1"}, False),
        ("a", {"a": ""}, True),
        ("a", {"b": "1"}, False),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a in (1,2)", {}, False),
        ("a notin (1,2)", {}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("a=", {"a": ""}, True),
        ("a=", {"a": "x"}, False),
        ("n>3", {"n": "4"}, True),
        ("n>3", {"n": "3"}, False),
        ("n<3", {"n": "x"}, False),
        ("a=1, b in (x), !c", {"a": "1", "b": "x"}, True),
        ("a=1,b in (x),!c", {"a": "1", "b": "x", "c": "y"}, False),
        ("example.com/key=v", {"example.com/key": "v"}, True),
    ],
)
def test_label_selector_matches_like_apimachinery(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(
    "selector",
    ["a=1,", "=1", "a in 1", "a in (1", "a b", "a=b=c", "!", "a>x", "-bad=1", "a=-bad-", ",a"],
)
def test_malformed_label_selectors_are_rejected(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


_names = st.sampled_from(["a", "b", "c", "app", "x.io/k"])
_values = st.sampled_from(["", "1", "2", "web"])


@given(
    labels=st.dictionaries(_names, _values, max_size=4),
    wanted=st.dictionaries(_names, _values.filter(bool), max_size=3),
    absent=st.lists(_names, max_size=2),
)
def test_equality_and_absence_terms_are_a_conjunction(
    labels: dict[str, str], wanted: dict[str, str], absent: list[str]
) -> None:
    terms = [f"{k}={v}" for k, v in wanted.items()] + [f"!{k}" for k in absent]
    model = all(labels.get(k) == v for k, v in wanted.items()) and all(
        k not in labels for k in absent
    )
    assert parse_label_selector(",".join(terms)).matches(labels) is model


def test_field_selectors_use_the_fields_the_api_server_supports() -> None:
    svc = {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"type": "ClusterIP"}}
    assert parse_field_selector("metadata.name=web", ref=SERVICES).matches(svc)
    assert not parse_field_selector("metadata.name!=web", ref=SERVICES).matches(svc)
    assert parse_field_selector("spec.type==ClusterIP,metadata.namespace=ns", ref=SERVICES).matches(
        svc
    )
    with pytest.raises(SelectorError, match="not supported"):
        parse_field_selector("spec.type=ClusterIP", ref=ENDPOINTSLICES)
    with pytest.raises(SelectorError):
        parse_field_selector("metadata.name", ref=SERVICES)


def test_field_selector_escapes() -> None:
    obj = {"metadata": {"name": "a,b=c"}}
    assert parse_field_selector(r"metadata.name=a\,b\=c", ref=SERVICES).matches(obj)


def test_predicate_combines_namespace_labels_and_fields() -> None:
    obj = {"metadata": {"name": "s", "namespace": "ns", "labels": {"app": "web"}}}
    assert Predicate().everything
    assert Predicate(namespace="ns", labels=parse_label_selector("app=web")).matches(obj)
    assert not Predicate(namespace="other").matches(obj)
    assert not Predicate(fields=parse_field_selector("metadata.name=t", ref=SERVICES)).matches(obj)
