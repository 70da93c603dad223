"""Lists (selectors, paging, resourceVersion semantics) and watches."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from ks_support import Cluster
from kubernetes_asyncio import client

pytestmark = pytest.mark.asyncio


async def _configmaps(cluster: Cluster, names_and_labels: list[tuple[str, dict[str, str]]]) -> None:
    for name, labels in names_and_labels:
        await cluster.core.create_namespaced_config_map(
            cluster.namespace, {"metadata": {"name": name, "labels": labels}}
        )


async def test_label_selectors_full_syntax(cluster: Cluster) -> None:
    await _configmaps(
        cluster,
        [
            ("a", {"app": "web", "tier": "front"}),
            ("b", {"app": "web", "tier": "back"}),
            ("c", {"app": "db"}),
        ],
    )

    async def names(selector: str) -> list[str]:
        listed = await cluster.core.list_namespaced_config_map(
            cluster.namespace, label_selector=selector
        )
        return sorted(item.metadata.name for item in listed.items)

    assert await names("app=web") == ["a", "b"]
    assert await names("app=web,tier!=back") == ["a"]
    assert await names("tier in (front,back)") == ["a", "b"]
    assert await names("tier notin (front)") == ["b", "c"]
    assert await names("!tier") == ["c"]
    assert await names("tier") == ["a", "b"]
    status, body, _ = await cluster.raw(
        "GET",
        f"/api/v1/namespaces/{cluster.namespace}/configmaps",
        query=[("labelSelector", "app in (web")],
    )
    assert status == 400
    assert body["reason"] == "BadRequest"


async def test_field_selectors(cluster: Cluster) -> None:
    ns = cluster.namespace
    await _configmaps(cluster, [("x", {}), ("y", {})])
    listed = await cluster.core.list_namespaced_config_map(ns, field_selector="metadata.name=y")
    assert [item.metadata.name for item in listed.items] == ["y"]
    listed = await cluster.core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={ns},metadata.name!=y"
    )
    assert [item.metadata.name for item in listed.items] == ["x"]
    for name, type_ in (("s1", "Opaque"), ("s2", "kubernetes.io/tls")):
        body: dict[str, Any] = {"metadata": {"name": name}, "type": type_}
        if type_ == "kubernetes.io/tls":
            body["data"] = {"tls.crt": "", "tls.key": ""}
        await cluster.core.create_namespaced_secret(ns, body)
    secrets = await cluster.core.list_namespaced_secret(ns, field_selector="type=Opaque")
    assert [item.metadata.name for item in secrets.items] == ["s1"]
    for name, node in (("p1", "node-a"), ("p2", "node-b")):
        await cluster.core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
            },
        )
    pods = await cluster.core.list_namespaced_pod(ns, field_selector="spec.nodeName=node-b")
    assert [item.metadata.name for item in pods.items] == ["p2"]
    status, body, _ = await cluster.raw(
        "GET", f"/api/v1/namespaces/{ns}/configmaps", query=[("fieldSelector", "data.x=1")]
    )
    assert status == 400


async def test_paging_with_limit_and_continue(cluster: Cluster) -> None:
    ns = cluster.namespace
    names = [f"page-{i:02d}" for i in range(7)]
    await _configmaps(cluster, [(name, {"set": "paging"}) for name in names])
    seen: list[str] = []
    first = await cluster.core.list_namespaced_config_map(ns, limit=3)
    assert len(first.items) == 3
    assert first.metadata._continue
    assert first.metadata.remaining_item_count == 4
    seen.extend(item.metadata.name for item in first.items)
    # A write between pages is not visible: pages are served at the first page's RV.
    await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "page-00a"}})
    token = first.metadata._continue
    while token:
        page = await cluster.core.list_namespaced_config_map(ns, limit=3, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        seen.extend(item.metadata.name for item in page.items)
        token = page.metadata._continue
    assert seen == names
    status, _body, _ = await cluster.raw(
        "GET", f"/api/v1/namespaces/{ns}/configmaps", query=[("continue", "garbage")]
    )
    assert status == 400


async def test_list_resource_version_semantics(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "rv"}})
    rv = created.metadata.resource_version
    await cluster.core.patch_namespaced_config_map("rv", ns, {"data": {"a": "1"}})
    now = await cluster.core.list_namespaced_config_map(ns)
    assert int(now.metadata.resource_version) > int(rv)
    any_rv = await cluster.core.list_namespaced_config_map(ns, resource_version="0")
    assert [item.metadata.name for item in any_rv.items] == ["rv"]
    exact = await cluster.core.list_namespaced_config_map(
        ns, resource_version=rv, resource_version_match="Exact"
    )
    assert exact.metadata.resource_version == rv
    assert exact.items[0].data is None  # the state at rv, before the patch
    status, body, _ = await cluster.raw(
        "GET",
        f"/api/v1/namespaces/{ns}/configmaps",
        query=[("resourceVersionMatch", "Exact")],
    )
    assert status == 422
    assert body["details"]["kind"] == "ListOptions"


async def _watch_lines(
    cluster: Cluster, path: str, query: list[tuple[str, Any]], *, count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    response = await cluster.api.call_api(
        path,
        "GET",
        query_params=[("watch", "true"), *query],
        header_params={"Accept": "application/json"},
        _preload_content=False,
        auth_settings=["BearerToken"],
    )
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(events) < count:
                line = await response.content.readline()
                if not line:
                    break
                events.append(orjson.loads(line))
    finally:
        response.release()
    return events


async def test_watch_without_resource_version_starts_with_synthetic_added(cluster: Cluster) -> None:
    ns = cluster.namespace
    await _configmaps(cluster, [("w1", {}), ("w2", {})])
    events = await _watch_lines(
        cluster, f"/api/v1/namespaces/{ns}/configmaps", [("timeoutSeconds", 5)], count=2
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"),
        ("ADDED", "w2"),
    ]
    assert events[0]["object"]["kind"] == "ConfigMap"


async def test_watch_from_resource_version_replays_later_events(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "r"}})
    await cluster.core.patch_namespaced_config_map("r", ns, {"data": {"a": "1"}})
    await cluster.core.delete_namespaced_config_map("r", ns)
    events = await _watch_lines(
        cluster,
        f"/api/v1/namespaces/{ns}/configmaps",
        [("resourceVersion", created.metadata.resource_version), ("timeoutSeconds", 5)],
        count=2,
    )
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs)
    assert rvs[0] > int(created.metadata.resource_version)


async def test_watch_sees_live_changes_and_label_transitions(cluster: Cluster) -> None:
    ns = cluster.namespace
    listed = await cluster.core.list_namespaced_config_map(ns)
    watch = asyncio.create_task(
        _watch_lines(
            cluster,
            f"/api/v1/namespaces/{ns}/configmaps",
            [
                ("resourceVersion", listed.metadata.resource_version),
                ("labelSelector", "keep=yes"),
                ("timeoutSeconds", 5),
            ],
            count=3,
        ),
        name="watch-reader",
    )
    await cluster.core.create_namespaced_config_map(
        ns, {"metadata": {"name": "t", "labels": {"keep": "yes"}}}
    )
    await cluster.core.patch_namespaced_config_map("t", ns, {"data": {"a": "1"}})
    await cluster.core.patch_namespaced_config_map(
        "t", ns, {"metadata": {"labels": {"keep": "no"}}}
    )
    events = await watch
    # Leaving the selector is seen as DELETED, like the apiserver's watch cache does.
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


async def test_watch_bookmarks_and_timeout(cluster: Cluster) -> None:
    if not cluster.is_sim:
        pytest.skip("bookmark timing on a real cluster is about a minute")
    ns = cluster.namespace
    listed = await cluster.core.list_namespaced_config_map(ns)
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await _watch_lines(
        cluster,
        f"/api/v1/namespaces/{ns}/configmaps",
        [
            ("resourceVersion", listed.metadata.resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", 1),
        ],
        count=100,
    )
    assert events, "expected at least one bookmark before the timeout"
    assert all(e["type"] == "BOOKMARK" for e in events)
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= int(
        listed.metadata.resource_version
    )
    # The stream ended by itself at timeoutSeconds (count was never reached).
    assert loop.time() - started < 9


async def test_watch_too_old_resource_version_gets_410(cluster: Cluster) -> None:
    sim = cluster.require_sim()
    ns = cluster.namespace
    created = await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "old"}})
    await cluster.core.patch_namespaced_config_map("old", ns, {"data": {"a": "1"}})
    sim.store.expire_history()
    events = await _watch_lines(
        cluster,
        f"/api/v1/namespaces/{ns}/configmaps",
        [("resourceVersion", created.metadata.resource_version)],
        count=1,
    )
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status"
    assert status["code"] == 410
    assert status["reason"] == "Expired"
    assert status["message"].startswith("too old resource version")
    with pytest.raises(client.ApiException) as err:
        await cluster.core.list_namespaced_config_map(
            ns,
            resource_version=created.metadata.resource_version,
            resource_version_match="Exact",
        )
    assert err.value.status == 410
