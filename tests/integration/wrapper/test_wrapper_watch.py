"""Watch semantics through a wrapper on kubesim: resume, 410, upstream restarts, outages."""

from __future__ import annotations

from wrap_support import (
    SLICES_PATH,
    ProxyClient,
    endpoint_slice,
    eventually,
    get_json,
    post_fault,
    raw_watch,
    running_wrapper,
    service,
)

from servicegroup.kubesim.app import KubeSim

LOCAL = "edge-1a"  # zone-1


def names_and_ips(slices: list[dict[str, object]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for obj in slices:
        metadata = obj["metadata"]
        assert isinstance(metadata, dict)
        endpoints = obj.get("endpoints") or []
        assert isinstance(endpoints, list)
        out[metadata["name"]] = [e["addresses"][0] for e in endpoints]
    return out


async def test_watch_resumed_from_a_list_rv_gets_exactly_the_missed_events(sim: KubeSim) -> None:
    api = sim.client(manager="test")
    api.create("services", service("web"))
    api.create("endpointslices", endpoint_slice("web-1", "web", [("10.1.0.1", "edge-1b")]))
    async with running_wrapper(sim.url, LOCAL) as w:
        listed = await get_json(w.url + SLICES_PATH)
        rv = listed["metadata"]["resourceVersion"]
        assert names_and_ips(listed["items"]) == {"web-1": ["10.1.0.1"]}

        # Missed while no watch is open: web-2 appears with only a remote endpoint (served
        # empty), web-3 appears with a local one, web-1 gains a local endpoint.
        api.create("endpointslices", endpoint_slice("web-2", "web", [("10.2.0.1", "edge-2a")]))
        api.create("endpointslices", endpoint_slice("web-3", "web", [("10.1.0.3", "edge-1a")]))
        api.apply(
            "endpointslices",
            endpoint_slice("web-1", "web", [("10.1.0.1", "edge-1b"), ("10.1.0.2", "edge-1a")]),
        )
        await eventually(
            lambda: (
                w.wrapper.caches.endpointslices.get("default/web-3") is not None
                and w.wrapper.refilter.endpoint_counts == (3, 1)
            ),
            what="the wrapper to catch up",
        )
        async with raw_watch(w.url, SLICES_PATH, resourceVersion=rv, timeoutSeconds="5") as watch:
            await eventually(lambda: len(watch.events) >= 3, what="the missed events")
            # One live change after them: it must be the very next event.
            api.delete("endpointslices", "web-3", namespace="default")
            await eventually(lambda: len(watch.events) >= 4, what="the live event")
            got = [(e["type"], e["object"]["metadata"]["name"]) for e in watch.events]
            assert got == [
                ("ADDED", "web-2"),
                ("ADDED", "web-3"),
                ("MODIFIED", "web-1"),
                ("DELETED", "web-3"),
            ]
            assert watch.events[0]["object"]["endpoints"] == []
            assert [a["addresses"] for a in watch.events[2]["object"]["endpoints"]] == [
                ["10.1.0.1"],
                ["10.1.0.2"],
            ]
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in watch.events]
            assert rvs == sorted(rvs) and rvs[0] > int(rv)


async def test_an_rv_the_wrapper_cannot_serve_gets_410(
    sim: KubeSim,
) -> None:
    api = sim.client(manager="test")
    api.create("services", service("web"))
    async with running_wrapper(sim.url, LOCAL, history=5) as w:
        rv = (await get_json(w.url + SLICES_PATH))["metadata"]["resourceVersion"]
        for i in range(12):
            api.create(
                "endpointslices", endpoint_slice(f"web-{i}", "web", [(f"10.0.0.{i}", LOCAL)])
            )
        await eventually(lambda: len(w.wrapper.caches.endpointslices) >= 12, what="catch-up")
        async with raw_watch(w.url, SLICES_PATH, resourceVersion=rv) as watch:
            await eventually(lambda: bool(watch.events), what="an answer")
        (event,) = watch.events
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        # The real API server's RVs are far below ours: expired too, never misread.
        async with raw_watch(w.url, SLICES_PATH, resourceVersion="5") as watch:
            await eventually(lambda: bool(watch.events), what="an answer")
        assert watch.events[0]["object"]["code"] == 410


async def test_upstream_watches_closed_and_history_expired_lose_no_update(sim: KubeSim) -> None:
    api = sim.client(manager="test")
    api.create("services", service("web"))
    api.create("services", service("plain", topology=None))
    api.create("endpointslices", endpoint_slice("web-1", "web", [("10.1.0.1", LOCAL)]))
    async with (
        running_wrapper(sim.url, LOCAL) as w,
        ProxyClient(w.url, name="kube-proxy").running() as proxy,
    ):
        relists_before = w.sample(
            "servicegroup_wrapper_upstream_relists_total",
            {"resource": "endpointslices.discovery.k8s.io"},
        )
        client_relists = proxy.relists()
        # The API server drops every watch and forgets its history; meanwhile things change.
        await post_fault(sim.url, {"closeWatches": True, "expireHistory": True})
        api.apply("endpointslices", endpoint_slice("web-1", "web", [("10.1.0.9", LOCAL)]))
        api.create("endpointslices", endpoint_slice("web-2", "web", [("10.1.0.2", "edge-1b")]))
        api.create("endpointslices", endpoint_slice("plain-1", "plain", [("10.9.0.1", "edge-3a")]))
        api.delete("endpointslices", "web-1", namespace="default")
        await post_fault(sim.url, {"expireHistory": True})

        await eventually(
            lambda: (
                proxy.endpoint_ips("default", "web") == {"10.1.0.2"}
                and proxy.endpoint_ips("default", "plain") == {"10.9.0.1"}
            ),
            timeout=10,
            what="kube-proxy's view to converge",
        )
        assert (
            w.sample(
                "servicegroup_wrapper_upstream_relists_total",
                {"resource": "endpointslices.discovery.k8s.io"},
            )
            > relists_before
        )
        # The wrapper's own clients never had to relist: their watch just carried on.
        assert proxy.relists() == client_relists
        names = {o["metadata"]["name"] for o in proxy.slices.store.list()}
        assert names - {"kubernetes"} == {"web-2", "plain-1"}


async def test_api_server_outage_keeps_serving_and_reconciles(sim: KubeSim) -> None:
    api = sim.client(manager="test")
    api.create("services", service("web"))
    api.create("endpointslices", endpoint_slice("web-1", "web", [("10.1.0.1", LOCAL)]))
    async with (
        running_wrapper(sim.url, LOCAL) as w,
        ProxyClient(w.url, name="kube-proxy").running() as proxy,
    ):
        assert proxy.endpoint_ips("default", "web") == {"10.1.0.1"}
        await post_fault(sim.url, {"closeWatches": True, "fail": {"code": 503}})
        api.apply("endpointslices", endpoint_slice("web-1", "web", [("10.1.0.7", LOCAL)]))
        # The API server answers nothing but 503: the wrapper still lists from its cache...
        listed = await get_json(w.url + SLICES_PATH)
        assert "web-1" in names_and_ips(listed["items"])
        assert w.wrapper.upstream.synced()
        # ...and kube-proxy's watch stays open (bookmarks keep arriving).
        bookmarks = w.sample(
            "servicegroup_wrapper_events_sent_total",
            {"resource": "endpointslices.discovery.k8s.io", "type": "BOOKMARK"},
        )
        await eventually(
            lambda: (
                w.sample(
                    "servicegroup_wrapper_events_sent_total",
                    {"resource": "endpointslices.discovery.k8s.io", "type": "BOOKMARK"},
                )
                > bookmarks
            ),
            what="a bookmark during the outage",
        )
        assert (
            w.sample(
                "servicegroup_wrapper_watchers", {"resource": "endpointslices.discovery.k8s.io"}
            )
            == 1
        )
        assert proxy.endpoint_ips("default", "web") == {"10.1.0.1"}
        await post_fault(sim.url, {"clear": True})
        await eventually(
            lambda: proxy.endpoint_ips("default", "web") == {"10.1.0.7"},
            timeout=40,  # the wrapper's reflector backs off while the API server fails
            what="reconciliation after the outage",
        )
