"""Helpers of the wrapper integration tests: a wrapper per node against kubesim, a watch
client built like kube-proxy's, raw watch streams, and polling with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import structlog

from servicegroup.clock import RealClock
from servicegroup.informers.informer import SharedInformer
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import ENDPOINTSLICES, SERVICES
from servicegroup.metrics import Metrics
from servicegroup.settings import BindAddress
from servicegroup.wrapper.app import Wrapper

# What kube-proxy puts on its Service and EndpointSlice informers.
KUBE_PROXY_SELECTOR = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"
SLICES_PATH = "/apis/discovery.k8s.io/v1/endpointslices"
# The simulated cluster's nodes and their NodeUnit (label `zone`).
UNITS = {
    "edge-1a": "zone-1",
    "edge-1b": "zone-1",
    "edge-2a": "zone-2",
    "edge-2b": "zone-2",
    "edge-3a": "zone-3",
}
Obj = dict[str, Any]


async def eventually(
    check: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class RunningWrapper:
    def __init__(self, wrapper: Wrapper, port: int, metrics: Metrics) -> None:
        self.wrapper = wrapper
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.metrics = metrics

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0


@contextlib.asynccontextmanager
async def running_wrapper(
    api_url: str, node_name: str, **options: Any
) -> AsyncIterator[RunningWrapper]:
    """A wrapper for `node_name` against the API server at `api_url`, synced."""
    metrics = Metrics()
    config = ClientConfig.for_server(api_url)
    logger = structlog.get_logger().bind(node=node_name)
    async with KubeClient(config=config, metrics=metrics, user_agent="wrapper-test") as client:
        options.setdefault("bookmark_interval", 0.2)
        # Upstream watches of 1-2 s: the reconnect paths run during the tests too.
        options.setdefault("min_upstream_watch_timeout", 1)
        options.setdefault("max_upstream_watch_timeout", 2)
        wrapper = Wrapper(
            node_name=node_name,
            client=client,
            config=config,
            metrics=metrics,
            logger=logger,
            rng=random.Random(7),
            **options,
        )
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as group:
            task = group.create_task(
                wrapper.run(BindAddress("127.0.0.1", 0), started=started.set_result),
                name=f"wrapper:{node_name}",
            )
            try:
                port = await started
                await wrapper.upstream.wait_synced()
                yield RunningWrapper(wrapper, port, metrics)
            finally:
                task.cancel()


class ProxyClient:
    """A watch client built like kube-proxy's: informers on Services and EndpointSlices with
    kube-proxy's label selector, talking to a wrapper."""

    def __init__(self, url: str, *, name: str) -> None:
        self.url = url
        self.name = name
        self.metrics = Metrics()
        self.client = KubeClient(
            config=ClientConfig.for_server(url),
            metrics=self.metrics,
            user_agent="kube-proxy/v1.32.0 (linux/amd64) kubernetes/test",
        )
        common: dict[str, Any] = {
            "client": self.client,
            "clock": RealClock(),
            "metrics": self.metrics,
            "logger": structlog.get_logger().bind(client=name),
            "label_selector": KUBE_PROXY_SELECTOR,
        }
        self.services = SharedInformer(ref=SERVICES, **common)
        self.slices = SharedInformer(ref=ENDPOINTSLICES, **common)

    def endpoint_ips(self, namespace: str, service: str) -> set[str]:
        """Every address kube-proxy would program for the Service (ready or not)."""
        out: set[str] = set()
        for obj in self.slices.store.list():
            metadata = obj["metadata"]
            labels = metadata.get("labels") or {}
            if metadata["namespace"] != namespace:
                continue
            if labels.get("kubernetes.io/service-name") != service:
                continue
            for endpoint in obj.get("endpoints") or ():
                out.update(endpoint.get("addresses") or ())
        return out

    def relists(self) -> float:
        return (
            self.metrics.registry.get_sample_value(
                "servicegroup_informer_relists_total",
                {"resource": "endpointslices.discovery.k8s.io"},
            )
            or 0.0
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ProxyClient]:
        async with self.client, asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self.services.run(), name=f"proxy-client:{self.name}:services"),
                group.create_task(self.slices.run(), name=f"proxy-client:{self.name}:slices"),
            ]
            try:
                await self.services.wait_synced()
                await self.slices.wait_synced()
                yield self
            finally:
                for task in tasks:
                    task.cancel()


class RawWatch:
    """One raw watch stream through the wrapper; events are collected as they arrive."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: list[Obj] = []

    async def collect(self) -> None:
        while line := await self.response.content.readline():
            self.events.append(orjson.loads(line))


@contextlib.asynccontextmanager
async def raw_watch(url: str, path: str, **params: str) -> AsyncIterator[RawWatch]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + path, params={"watch": "true", **params}) as response,
        asyncio.TaskGroup() as group,
    ):
        assert response.status == 200
        watch = RawWatch(response)
        task = group.create_task(watch.collect(), name="raw-watch")
        try:
            yield watch
        finally:
            task.cancel()


async def get_json(url: str, **params: str) -> Obj:
    async with aiohttp.ClientSession() as http, http.get(url, params=params) as response:
        body: Obj = await response.json()
        return body


async def post_fault(api_url: str, spec: Obj) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(api_url + "/kubesim/faults", json=spec) as response,
    ):
        assert response.status < 300, await response.text()


def endpoint_slice(name: str, service: str, endpoints: list[tuple[str, str]], **extra: Any) -> Obj:
    """An EndpointSlice as the EndpointSlice controller writes one: (ip, nodeName) pairs."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": extra.pop("namespace", "default"),
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                **extra.pop("labels", {}),
            },
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "nodeName": node, "conditions": {"ready": True}}
            for ip, node in endpoints
        ],
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


def service(name: str, *, topology: str | None = '["zone"]', **annotations: str) -> Obj:
    if topology is not None:
        annotations["topologyKeys"] = topology
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }
