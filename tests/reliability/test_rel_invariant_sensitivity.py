"""The invariant check can fail: each kind of damage it exists to catch is planted on a
converged cluster (controller stopped, so nothing repairs it) and must be reported, in the
right category. Then a controller is started again and repairs what is its to repair."""

from __future__ import annotations

from typing import Any

from rel_invariants import (
    DnsProbe,
    Expectations,
    SimView,
    Verdict,
    WrapperProbe,
    converge,
    evaluate,
)
from rel_support import (
    NS,
    SCALE,
    RelEnv,
    deployment_spec,
    grid,
    service_spec,
    statefulset_spec,
    wait_until,
)

from servicegroup.grid.labels import FIELD_MANAGER


def found(verdict: Verdict, category: str, text: str) -> bool:
    return any(v.category == category and text in v.what for v in verdict.violations)


async def test_rel_invariant_reports_planted_damage(rel_env: RelEnv) -> None:
    env = rel_env
    controller = await env.start_controller()
    env.api.create("servicegrids", grid("servicegrids", "echo", "zone", service_spec("echo")))
    db = statefulset_spec("echo", service="echo-svc", replicas=1)
    env.api.create("statefulsetgrids", grid("statefulsetgrids", "db", "zone", db))
    env.api.create("deploymentgrids", grid("deploymentgrids", "web", "zone", deployment_spec("e")))
    foreign = env.api.create(
        "deployments",
        {"metadata": {"name": "foreign", "namespace": NS}, "spec": deployment_spec("foreign")},
    )
    view = SimView(env.sim)
    hosts = env.tmp / "hosts"
    hosts.write_text("")
    exp = Expectations(
        grids={("deploymentgrids", NS, "web"), ("deploymentgrids", NS, "gone")},
        dns=[DnsProbe("rel-n1", hosts)],
        # kubesim itself as the "wrapper": it serves every endpoint, unfiltered.
        wrappers=[WrapperProbe("rel-n1", env.sim.url)],
    )
    exp.plant_foreign("deployments", foreign)
    verdict = await evaluate(view, exp)
    assert found(verdict, "lost", "('deploymentgrids', 'default', 'gone')")
    exp.grids.discard(("deploymentgrids", NS, "gone"))
    exp.wrappers = []
    exp.dns = []
    await converge(view, exp, deadline=SCALE.converge_deadline, settled=env.settled)
    await env.stop_controller(controller)

    # The damage: none of it is the controller's doing, all of it must be seen.
    env.api.delete("deployments", "web-z-a", namespace=NS)  # a child lost
    edited: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "evil:1"}]}}}}  # fmt: skip
    kubectl = env.sim.client(manager="kubectl-edit")
    kubectl.patch("deployments", "web-z-b", edited, namespace=NS, patch_type="strategic")
    stray = env.api.get("deployments", "web-z-c", namespace=NS)
    stray["metadata"] = {
        "name": "web-z-gone",
        "namespace": NS,
        "labels": {**stray["metadata"]["labels"], "superedge.io/nodeunit": "z-gone"},
        "ownerReferences": stray["metadata"]["ownerReferences"],
    }
    stray.pop("status", None)
    env.api.create("deployments", stray)  # a child of a unit that does not exist
    env.sim.client(manager=FIELD_MANAGER).patch(
        "deployments", "foreign", {"metadata": {"labels": {"touched": "yes"}}}, namespace=NS
    )  # a foreign object written under the controller's field manager
    env.sim.client(manager="someone").patch(
        "deploymentgrids",
        "web",
        {"status": {"readyUnits": 0}},
        namespace=NS,
        subresource="status",
    )
    hosts.write_text("# BEGIN servicegroup\n10.9.9.9 db-0.echo-svc.default.svc.cluster.local\n")
    exp.dns = [DnsProbe("rel-n1", hosts)]
    exp.wrappers = [WrapperProbe("rel-n1", env.sim.url)]

    verdict = await evaluate(view, exp)
    assert found(verdict, "lost", "no Deployment web-z-a"), verdict.summary()
    assert found(verdict, "wrong", "Deployment web-z-b does not have the rendered spec")
    assert found(verdict, "extra", "web-z-gone of vanished NodeUnit 'z-gone'")
    assert found(verdict, "wrong", "foreign deployments default/foreign was modified")
    assert found(verdict, "wrong", "the controller modified deployments default/foreign")
    assert found(verdict, "wrong", "readyUnits 0")
    assert found(verdict, "extra", "hosts file of rel-n1: has stale ['10.9.9.9")
    assert found(verdict, "lost", "hosts file of rel-n1: lacks")
    assert found(verdict, "extra", "wrapper of rel-n1 (slices)")
    assert verdict.lost >= 2

    # A controller repairs its own children and status; the rest stays reported.
    exp.foreign.clear()
    exp.dns = []
    exp.wrappers = []
    await env.start_controller()

    async def only_the_foreign_write_left() -> bool:
        verdict = await evaluate(view, exp)
        return bool(verdict.violations) and all(
            v.what == "the controller modified deployments default/foreign"
            for v in verdict.violations
        )

    await wait_until(
        only_the_foreign_write_left,
        timeout=SCALE.converge_deadline,
        what="the controller to repair its children and status",
        interval=0.2,
    )
