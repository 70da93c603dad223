"""Request accounting: product and component of the User-Agent, queries and the JSON form."""

from __future__ import annotations

import pytest

from servicegroup.kubesim.accounting import (
    RequestCounter,
    user_agent_component,
    user_agent_product,
)


@pytest.mark.parametrize(
    ("agent", "product", "component"),
    [
        ("servicegroup/0.1.0 (controller)", "servicegroup", "controller"),
        ("servicegroup/0.1.0 (wrapper)", "servicegroup", "wrapper"),
        ("servicegroup/0.1.0 (dns node-1)", "servicegroup", "dns"),
        ("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07", "kubectl", "linux/amd64"),
        ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla", "X11"),
        ("OpenAPI-Generator/36.1.0/python", "OpenAPI-Generator", ""),
        ("servicegroup/0.1.0 ()", "servicegroup", ""),
        ("servicegroup/0.1.0 (unterminated", "servicegroup", "unterminated"),
        ("", "", ""),
    ],
)
def test_product_and_component(agent: str, product: str, component: str) -> None:
    assert user_agent_product(agent) == product
    assert user_agent_component(agent) == component


def counter() -> RequestCounter:
    requests = RequestCounter()
    for agent, verb, resource in [
        ("servicegroup/0.1.0 (controller)", "patch", "deployments.apps"),
        ("servicegroup/0.1.0 (controller)", "patch", "deployments.apps"),
        ("servicegroup/0.1.0 (controller)", "list", "nodes"),
        ("servicegroup/0.1.0 (wrapper)", "watch", "endpointslices.discovery.k8s.io"),
        ("servicegroup/0.1.0 (dns)", "create", "configmaps"),
        ("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07", "create", "configmaps"),
    ]:
        requests.record(verb=verb, resource=resource, user_agent=agent)
    return requests


def test_queries_by_product_component_or_both() -> None:
    requests = counter()
    # The existing signatures keep working and keep counting per product.
    assert requests.count(user_agent_product="servicegroup") == 5
    assert requests.writes(user_agent_product="servicegroup") == 3
    assert requests.writes() == 4
    assert requests.writes(user_agent_product="servicegroup", resource="configmaps") == 1
    # The component tells the processes apart.
    assert requests.count(user_agent_component="controller") == 3
    assert requests.count(verb="patch", user_agent_component="controller") == 2
    assert requests.writes(user_agent_product="servicegroup", user_agent_component="dns") == 1
    assert requests.writes(user_agent_component="wrapper") == 0
    assert requests.count(user_agent_product="kubectl", user_agent_component="controller") == 0


def test_snapshot_and_json_carry_the_component() -> None:
    requests = counter()
    entries = {
        (e.verb, e.resource, e.user_agent, e.user_agent_component): e.count
        for e in requests.snapshot()
    }
    assert entries[("patch", "deployments.apps", "servicegroup", "controller")] == 2
    assert entries[("create", "configmaps", "kubectl", "linux/amd64")] == 1
    body = requests.to_json()
    assert body["total"] == 6
    row = next(r for r in body["requests"] if r["verb"] == "watch")
    assert row == {
        "verb": "watch",
        "resource": "endpointslices.discovery.k8s.io",
        "subresource": "",
        "count": 1,
        "userAgent": "servicegroup",
        "userAgentComponent": "wrapper",
    }
    requests.reset()
    assert requests.to_json() == {"requests": [], "total": 0}
