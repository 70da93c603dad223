"""Federation wiring: the informers it declares and the keys its handlers enqueue."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from fed_fakes import Recorder

from servicegroup.clock import FakeClock
from servicegroup.controller import Controller, Request
from servicegroup.informers.informer import HandlerFuncs
from servicegroup.informers.store import Indexer, ReadOnlyStore
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.federation import (
    HUB_CONTROLLER,
    MEMBER_CONTROLLER,
    MemberController,
    federation_controllers,
)
from servicegroup.reconcilers.federation_render import FED_KINDS, render_copy
from servicegroup.reconcilers.nodeunit import NODE_TRANSFORM
from servicegroup.settings import ControllerSettings


class FakeInformer:
    def __init__(self, indexers: Mapping[str, Callable[[dict[str, Any]], list[str]]] | None):
        self.indexer = Indexer(indexers=indexers)
        self.store = ReadOnlyStore(self.indexer)
        self.handlers: list[HandlerFuncs] = []

    def add_event_handler(self, handler: HandlerFuncs, *, name: str | None = None) -> object:
        self.handlers.append(handler)
        return handler

    def add(self, obj: dict[str, Any]) -> None:
        self.indexer.add(obj)
        for handler in self.handlers:
            assert handler.on_add is not None
            handler.on_add(obj, False)

    def update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.indexer.add(new)
        for handler in self.handlers:
            assert handler.on_update is not None
            handler.on_update(old, new)


class FakeFactory:
    def __init__(self) -> None:
        self.informers: dict[tuple[Any, ...], FakeInformer] = {}

    def informer(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Any = None,
        indexers: Mapping[str, Callable[[dict[str, Any]], list[str]]] | None = None,
    ) -> FakeInformer:
        key = (ref.key, namespace, label_selector, field_selector, transform)
        if key not in self.informers:
            self.informers[key] = FakeInformer(indexers)
        return self.informers[key]

    def find(self, resource: str, selector: str | None = None) -> FakeInformer:
        (informer,) = [
            i for k, i in self.informers.items() if k[0] == resource and k[2] == selector
        ]
        return informer


def build(metrics: Metrics) -> tuple[FakeFactory, list[Any]]:
    factory = FakeFactory()
    controllers = federation_controllers(
        settings=ControllerSettings(log_format="json", enable_federation=True, workers=1),
        client=None,  # type: ignore[arg-type]
        factory=factory,
        metrics=metrics,
        clock=FakeClock(),
        logger=structlog.get_logger(),
        recorder=Recorder(),
    )
    return factory, controllers


async def drain(controller: Controller) -> set[Request]:
    found: set[Request] = set()
    while len(controller.queue):
        item = await controller.queue.get()
        controller.queue.done(item)
        found.add(item)
    return found


def test_declared_informers(metrics: Metrics) -> None:
    factory, controllers = build(metrics)
    assert [c.name for c in controllers] == [HUB_CONTROLLER, MEMBER_CONTROLLER]
    keys = set(factory.informers)
    for kind in FED_KINDS:
        resource = kind.ref.key
        selectors = {k[2] for k in keys if k[0] == resource}
        assert selectors == {
            "superedge.io/fed=yes,superedge.io/dis!=yes,!superedge.io/target-namespace",
            "superedge.io/dis=yes",
            "superedge.io/target-namespace,superedge.io/dis!=yes",
        }
    secret = [k for k in keys if k[0] == "secrets"]
    assert secret == [
        ("secrets", "clusternet-system", None, "metadata.name=parent-cluster", secret[0][4])
    ]
    # The node informer is the grid reconcilers' (same transform object: shared).
    assert ("nodes", None, None, None, NODE_TRANSFORM) in keys
    assert any(k[0] == "namespaces" for k in keys)


async def test_handlers_map_to_keys(metrics: Metrics) -> None:
    factory, controllers = build(metrics)
    hub = controllers[0]
    member = controllers[1]
    assert isinstance(member, MemberController)
    dg = FED_KINDS[0]
    original = {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "demo", "namespace": "apps", "uid": "u1", "resourceVersion": "1"},
        "spec": {"gridUniqKey": "zone"},
    }
    originals = factory.find(dg.ref.key, "superedge.io/fed=yes,superedge.io/dis!=yes,"
                             "!superedge.io/target-namespace")  # fmt: skip
    originals.add(original)
    assert await drain(hub) == {Request("apps", "deploymentgrid/demo")}

    # A copy -> its original.
    copies = factory.find(dg.ref.key, "superedge.io/dis=yes")
    made = render_copy(original, kind=dg, namespace="clusternet-a")
    made["metadata"]["resourceVersion"] = "2"
    copies.add(made)
    assert await drain(hub) == {Request("apps", "deploymentgrid/demo")}

    # A namespace becoming a cluster namespace by a label change -> every original.
    namespaces = factory.find("namespaces")
    plain = {"metadata": {"name": "clusternet-b", "resourceVersion": "1"}}
    namespaces.add(plain)
    assert await drain(hub) == set()
    labelled = {
        "metadata": {
            "name": "clusternet-b",
            "resourceVersion": "2",
            "labels": {"clusters.clusternet.io/cluster-id": "b"},
        }
    }
    namespaces.update(plain, labelled)
    assert await drain(hub) == {Request("apps", "deploymentgrid/demo")}

    # A local grid -> its own key on the member queue.
    local_informer = factory.find(dg.ref.key, "superedge.io/target-namespace,superedge.io/dis!=yes")
    local_informer.add(
        {
            "metadata": {
                "name": "demo",
                "namespace": "apps",
                "resourceVersion": "3",
                "labels": {"superedge.io/target-namespace": "apps"},
            }
        }
    )
    assert await drain(member.controller) == {Request("apps", "deploymentgrid/demo")}
