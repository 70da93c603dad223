"""Reflector against kubesim over HTTP with the real KubeClient and the real clock.

Paging, bookmarks, watches closed by the server (re-watch from the last RV: no relist, no
lost or duplicated event), expired history (410: relist), an expired continue token,
list and watch errors (backoff, Retry-After, recovery), label and field selectors.
"""

from __future__ import annotations

import random
from typing import Any

from rt_support import (
    CapturedLogs,
    RecordingClock,
    RecordingSink,
    capture_logger,
    cm,
    eventually,
    running,
    sample,
)

from servicegroup.clock import Clock, RealClock
from servicegroup.informers.reflector import Reflector
from servicegroup.kube.client import KubeClient
from servicegroup.kube.resources import CONFIGMAPS, NAMESPACES, PODS, ResourceRef
from servicegroup.kubesim.app import KubeSim
from servicegroup.metrics import Metrics

Call = tuple[str, str, int]


def make_reflector(
    client: KubeClient,
    metrics: Metrics,
    sink: RecordingSink,
    logs: CapturedLogs,
    *,
    ref: ResourceRef = CONFIGMAPS,
    clock: Clock | None = None,
    **options: Any,
) -> Reflector:
    return Reflector(
        client=client,
        ref=ref,
        sink=sink,
        clock=clock or RealClock(),
        metrics=metrics,
        logger=capture_logger(logs),
        backoff_initial=0.05,
        backoff_cap=0.2,
        rng=random.Random(7),
        **options,
    )


def relists(metrics: Metrics, resource: str = "configmaps") -> float:
    return sample(metrics, "servicegroup_informer_relists_total", resource=resource)


def restarts(metrics: Metrics, reason: str, resource: str = "configmaps") -> float:
    return sample(
        metrics, "servicegroup_informer_watch_restarts_total", resource=resource, reason=reason
    )


async def direct_content(client: KubeClient, **selectors: Any) -> dict[str, int]:
    listed = await client.list(CONFIGMAPS, **selectors)
    return {
        f"{item['metadata']['namespace']}/{item['metadata']['name']}": int(
            item["metadata"]["resourceVersion"]
        )
        for item in listed["items"]
    }


class Writer:
    """Sequential writes to one namespace, remembering the watch event each one causes."""

    def __init__(self, client: KubeClient, sim: KubeSim, namespace: str) -> None:
        self.client = client
        self.sim = sim
        self.ns = namespace
        self.expected: list[Call] = []

    def _note(self, kind: str, name: str) -> None:
        # The test is the only writer, so the store's latest RV is this write's.
        self.expected.append((kind, f"{self.ns}/{name}", self.sim.store.resource_version))

    async def create(self, name: str, **data: str) -> None:
        body = cm(name, self.ns)
        body["data"] = data
        await self.client.create(CONFIGMAPS, body)
        self._note("ADDED", name)

    async def patch(self, name: str, **data: str) -> None:
        await self.client.patch(
            CONFIGMAPS, name, {"data": data}, patch_type="merge", namespace=self.ns
        )
        self._note("MODIFIED", name)

    async def delete(self, name: str) -> None:
        await self.client.delete(CONFIGMAPS, name, namespace=self.ns)
        self._note("DELETED", name)

    def local_burst(self, prefix: str, count: int) -> None:
        """Synchronous in-process writes: their events are all still queued when this returns."""
        local = self.sim.client(manager="burst")
        for i in range(count):
            name = f"{prefix}{i}"
            local.create("configmaps", cm(name, self.ns))
            self._note("ADDED", name)
            local.patch("configmaps", name, {"data": {"n": str(i)}}, namespace=self.ns)
            self._note("MODIFIED", name)


async def test_paged_list_then_watch_delivers_every_change_in_order(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    for i in range(23):
        await rt_client.create(CONFIGMAPS, cm(f"c{i:02}", rt_ns))
    await rt_client.create(CONFIGMAPS, cm("elsewhere", "default"))
    rt_sim.requests.reset()
    sink = RecordingSink()
    reflector = make_reflector(rt_client, metrics, sink, rt_logs, namespace=rt_ns, page_size=5)
    writer = Writer(rt_client, rt_sim, rt_ns)
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
        keys, list_rv = sink.replaces[0]
        assert keys == [f"{rt_ns}/c{i:02}" for i in range(23)]
        assert all(obj["kind"] == "ConfigMap" for obj in sink.objects.values())
        assert all(obj["apiVersion"] == "v1" for obj in sink.objects.values())
        assert rt_sim.requests.count(verb="list", resource="configmaps") == 5  # 5+5+5+5+3
        assert reflector.last_sync_resource_version == list_rv

        await writer.create("new", a="1")
        await writer.patch("new", a="2")
        await writer.delete("c00")
        await writer.patch("c01", b="1")
        await eventually(lambda: len(sink.calls) >= len(writer.expected), what="4 events")
        assert sink.calls == writer.expected
        assert sink.content() == await direct_content(rt_client, namespace=rt_ns)
    assert relists(metrics) == 1
    assert rt_sim.requests.count(verb="watch", resource="configmaps") == 1


async def test_bookmarks_move_the_resource_version_of_a_quiet_watch(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    await rt_client.create(CONFIGMAPS, cm("mine", rt_ns))
    sink = RecordingSink()
    reflector = make_reflector(rt_client, metrics, sink, rt_logs, namespace=rt_ns)
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
        list_rv = int(reflector.last_sync_resource_version)
        # Changes elsewhere move the global RV; only a bookmark can tell this watch.
        for i in range(3):
            await rt_client.create(CONFIGMAPS, cm(f"other{i}", "default"))
        target = rt_sim.store.resource_version
        assert target > list_rv
        await eventually(
            lambda: int(reflector.last_sync_resource_version) >= target, what="bookmark"
        )
    assert sink.calls == []
    assert relists(metrics) == 1
    assert rt_sim.requests.count(verb="watch", resource="configmaps") == 1


async def test_watches_closed_by_the_server_resume_without_relist_loss_or_duplicates(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    sink = RecordingSink()
    reflector = make_reflector(rt_client, metrics, sink, rt_logs, namespace=rt_ns, page_size=10)
    writer = Writer(rt_client, rt_sim, rt_ns)
    closed = 0
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
        for i in range(120):
            name = f"cm{i % 15}"
            if i < 15:
                await writer.create(name, v="0")
            elif i % 7 == 0:
                await writer.delete(name)
                await writer.create(name, v=str(i))
            else:
                await writer.patch(name, v=str(i))
            if i % 20 == 10:
                # Close while events are queued for the stream: they must come back by replay.
                writer.local_burst(f"burst{i}-", 5)
                closed += rt_sim.store.close_all_watches()
            elif i % 20 == 19:
                answer = await rt_client.request(
                    "POST", "/kubesim/faults", json_body={"closeWatches": True}
                )
                closed += answer["closedWatches"]
        await eventually(
            lambda: len(sink.calls) >= len(writer.expected), what="every event", timeout=15
        )
        assert sink.calls == writer.expected  # nothing lost, nothing twice, in order
        assert sink.content() == await direct_content(rt_client, namespace=rt_ns)
    assert closed >= 6
    assert relists(metrics) == 1
    assert len(sink.replaces) == 1
    assert restarts(metrics, "eof") + restarts(metrics, "timeout") >= 6
    assert restarts(metrics, "expired") == 0
    assert rt_sim.requests.count(verb="watch", resource="configmaps") >= 1 + 6


async def test_watch_errors_back_off_and_resume_from_the_last_rv(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    sink = RecordingSink()
    reflector = make_reflector(rt_client, metrics, sink, rt_logs, namespace=rt_ns)
    writer = Writer(rt_client, rt_sim, rt_ns)
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
        rt_sim.faults.fail(code=500, verbs=["watch"], resources=["configmaps"], count=2)
        rt_sim.faults.fail(code=429, verbs=["watch"], resources=["configmaps"], count=1)
        rt_sim.store.close_all_watches()
        await writer.create("during-outage")
        await writer.patch("during-outage", x="1")
        await eventually(lambda: len(sink.calls) >= 2, what="events written during the outage")
        assert sink.calls == writer.expected
    assert relists(metrics) == 1
    assert restarts(metrics, "error") == 3
    warnings = [entry["status"] for entry in rt_logs.events("watch failed; backing off")]
    assert warnings == [500, 500, 429]


async def test_expired_history_relists(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    for name in ("a", "b", "c", "d"):
        await rt_client.create(CONFIGMAPS, cm(name, rt_ns))
    sink = RecordingSink()
    reflector = make_reflector(rt_client, metrics, sink, rt_logs, namespace=rt_ns, page_size=2)
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
        # Keep the reflector off the air while things change and history is compacted.
        rt_sim.faults.fail(code=503, verbs=["watch"], resources=["configmaps"], count=10**6)
        watches = rt_sim.requests.count(verb="watch")
        rt_sim.store.close_all_watches()
        await eventually(lambda: rt_sim.requests.count(verb="watch") > watches, what="re-watch")
        await rt_client.delete(CONFIGMAPS, "b", namespace=rt_ns)
        await rt_client.delete(CONFIGMAPS, "c", namespace=rt_ns)
        await rt_client.create(CONFIGMAPS, cm("e", rt_ns))
        change = {"data": {"x": "1"}}
        await rt_client.patch(CONFIGMAPS, "a", change, patch_type="merge", namespace=rt_ns)
        rt_sim.store.expire_history()
        rt_sim.faults.clear()
        await eventually(lambda: len(sink.replaces) == 2, what="relist after 410")
        assert sink.replaces[1][0] == [f"{rt_ns}/{name}" for name in ("a", "d", "e")]
        assert sink.content() == await direct_content(rt_client, namespace=rt_ns)
        # The watch after the relist delivers new changes again.
        await rt_client.create(CONFIGMAPS, cm("f", rt_ns))
        await eventually(lambda: f"{rt_ns}/f" in sink.objects, what="event after relist")
    assert sink.calls[-1][:2] == ("ADDED", f"{rt_ns}/f")
    assert relists(metrics) == 2
    assert restarts(metrics, "expired") == 1
    assert rt_logs.events("watch expired; relisting")


async def test_expired_continue_token_restarts_the_list_without_paging(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    for i in range(30):
        await rt_client.create(CONFIGMAPS, cm(f"p{i:02}", rt_ns))
    rt_sim.requests.reset()
    # Slow lists down so the history can be compacted between two pages of one list.
    rt_sim.faults.add_latency(seconds=0.3, verbs=["list"], resources=["configmaps"])
    sink = RecordingSink()
    reflector = make_reflector(rt_client, metrics, sink, rt_logs, namespace=rt_ns, page_size=5)
    async with running(reflector.run(), name="reflector"):
        await eventually(
            lambda: rt_sim.requests.count(verb="list") >= 2, what="second page requested"
        )
        await rt_client.create(CONFIGMAPS, cm("zz-late", rt_ns))
        rt_sim.store.expire_history()
        await eventually(lambda: sink.replaces, what="list", timeout=15)
        rt_sim.faults.clear()
        keys, _ = sink.replaces[0]
        assert keys == sorted([f"{rt_ns}/p{i:02}" for i in range(30)] + [f"{rt_ns}/zz-late"])
    assert rt_logs.events("list continue token expired; listing without paging")
    assert relists(metrics) == 1  # one logical list, restarted inside


async def test_list_errors_back_off_honour_retry_after_then_recover(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    await rt_client.create(CONFIGMAPS, cm("x", rt_ns))
    rt_sim.requests.reset()
    rt_sim.faults.fail(code=500, verbs=["list"], resources=["configmaps"], count=2)
    rt_sim.faults.fail(code=429, verbs=["list"], resources=["configmaps"], count=1, retry_after=1)
    clock = RecordingClock()
    sink = RecordingSink()
    reflector = make_reflector(rt_client, metrics, sink, rt_logs, namespace=rt_ns, clock=clock)
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="list after errors")
    assert sink.replaces[0][0] == [f"{rt_ns}/x"]
    assert rt_sim.requests.count(verb="list", resource="configmaps") == 4
    statuses = [entry["status"] for entry in rt_logs.events("list failed; backing off")]
    assert statuses == [500, 500, 429]
    first, second, third = clock.sleeps[:3]
    assert 0.05 <= first <= 0.1  # 0.05 s, jittered up to x2
    assert 0.1 <= second <= 0.2  # doubled
    assert third >= 1.0  # Retry-After: 1 beats the 0.2 s cap
    assert relists(metrics) == 4  # every attempt counts as a (re)list


async def test_label_and_field_selectors_follow_objects_in_and_out(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    other = f"x{rt_ns}"  # not a prefix of rt_ns (see the paging test below)
    await rt_client.create(NAMESPACES, {"metadata": {"name": other}})
    await rt_client.create(CONFIGMAPS, cm("a", rt_ns, labels={"app": "web"}))
    await rt_client.create(CONFIGMAPS, cm("b", rt_ns, labels={"app": "db"}))
    await rt_client.create(CONFIGMAPS, cm("skip", rt_ns, labels={"app": "web"}))
    await rt_client.create(CONFIGMAPS, cm("c", other, labels={"app": "web"}))
    labels, fields = "app=web", "metadata.name!=skip"
    sink = RecordingSink()
    reflector = make_reflector(
        rt_client, metrics, sink, rt_logs, page_size=1, label_selector=labels, field_selector=fields
    )
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
        assert sink.replaces[0][0] == [f"{rt_ns}/a", f"{other}/c"]

        async def relabel(name: str, app: str) -> None:
            await rt_client.patch(
                CONFIGMAPS,
                name,
                {"metadata": {"labels": {"app": app}}},
                patch_type="merge",
                namespace=rt_ns,
            )

        await relabel("b", "web")  # moves into the selection: ADDED
        await relabel("a", "db")  # moves out: DELETED
        await relabel("skip", "web")  # excluded by the field selector: nothing
        await rt_client.patch(
            CONFIGMAPS, "c", {"data": {"k": "v"}}, patch_type="merge", namespace=other
        )
        await eventually(lambda: len(sink.calls) >= 3, what="three events")
        assert [(kind, key) for kind, key, _ in sink.calls] == [
            ("ADDED", f"{rt_ns}/b"),
            ("DELETED", f"{rt_ns}/a"),
            ("MODIFIED", f"{other}/c"),
        ]
        assert sink.content() == await direct_content(
            rt_client, label_selector=labels, field_selector=fields
        )


async def test_pods_by_node_field_selector_with_paging(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    def pod(name: str, node: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": rt_ns},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
        }

    for i in range(5):
        await rt_client.create(PODS, pod(f"a{i}", "node-a"))
    for i in range(3):
        await rt_client.create(PODS, pod(f"b{i}", "node-b"))
    rt_sim.requests.reset()
    sink = RecordingSink()
    reflector = make_reflector(
        rt_client,
        metrics,
        sink,
        rt_logs,
        ref=PODS,
        namespace=rt_ns,
        field_selector="spec.nodeName=node-a",
        page_size=2,
    )
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
        assert sink.replaces[0][0] == [f"{rt_ns}/a{i}" for i in range(5)]
        assert all(obj["kind"] == "Pod" for obj in sink.objects.values())
        assert rt_sim.requests.count(verb="list", resource="pods") == 3
        await rt_client.delete(PODS, "a0", namespace=rt_ns, grace_period_seconds=0)
        await rt_client.delete(PODS, "b0", namespace=rt_ns, grace_period_seconds=0)
        await rt_client.create(PODS, pod("a9", "node-a"))
        await eventually(lambda: f"{rt_ns}/a9" in sink.objects, what="new pod")
        assert [(kind, key) for kind, key, _ in sink.calls if kind != "MODIFIED"] == [
            ("DELETED", f"{rt_ns}/a0"),
            ("ADDED", f"{rt_ns}/a9"),
        ]
    assert relists(metrics, "pods") == 1


async def test_paging_across_namespaces_whose_names_share_a_prefix(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    # kube-apiserver pages in etcd key order ("ns-b/c" < "ns/a" as strings): every object
    # of the collection is in exactly one page, whatever the namespace names are.
    namespaces = [rt_ns, f"{rt_ns}-b", f"{rt_ns}-b-c"]
    for namespace in namespaces[1:]:
        await rt_client.create(NAMESPACES, {"metadata": {"name": namespace}})
    for namespace in namespaces:
        for name in ("a", "z"):
            await rt_client.create(CONFIGMAPS, cm(name, namespace, labels={"suite": rt_ns}))
    sink = RecordingSink()
    reflector = make_reflector(
        rt_client, metrics, sink, rt_logs, page_size=1, label_selector=f"suite={rt_ns}"
    )
    async with running(reflector.run(), name="reflector"):
        await eventually(lambda: sink.replaces, what="initial list")
    expected = sorted(f"{namespace}/{name}" for namespace in namespaces for name in ("a", "z"))
    assert sink.replaces[0][0] == expected
