"""Scenario 7: hostile input. Hypothesis generates grids with random names, keys, labels,
pools, template references and template contents; each is sent to the API server over HTTP
(created, or replacing an earlier grid of the same name), on a cluster without CEL so the
controller's own validation is what stands between bad input and the children.

Properties, per example:
- the API server either refuses the grid with a 4xx that says why, or the controller handles
  it: observedGeneration catches up and a Ready condition is written (it never crashes);
- the whole invariant holds (rel_invariants): valid grids get their children, and every unit
  that cannot have one (and every invalid grid) gets a True failure condition naming the
  problem; an API server refusal of a child (ApplyFailed) is accepted, named per unit;
- an independent oracle agrees on the obvious classes: an invalid gridUniqKey is InvalidSpec
  naming spec.gridUniqKey; a `templates` entry naming a missing pool entry for an existing unit
  is TemplateNotFound naming that unit;
and at the end, with every accepted grid still there, the controller settles (no hot loop).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rel_invariants import Expectations, SimView, conditions_of, converge, node_units
from rel_support import (
    FULL,
    KIND_OF,
    NS,
    SCALE,
    InProcessController,
    RelEnv,
    ScenarioRecord,
    wait_until,
)

from servicegroup.clock import RealClock
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.errors import ApiError
from servicegroup.kube.resources import DEPLOYMENTGRIDS, SERVICEGRIDS, STATEFULSETGRIDS
from servicegroup.metrics import Metrics

REFS = {"deploymentgrids": DEPLOYMENTGRIDS, "statefulsetgrids": STATEFULSETGRIDS}
REFS["servicegrids"] = SERVICEGRIDS
# An independent statement of a valid label key (SPEC B8; Kubernetes qualified names).
_PART = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
VALID_KEY = re.compile(rf"({_PREFIX}/)?{_PART}")
ODD_NODE = {"zone": "z-a", "odd": "Upper_Case.Value", "example.com/zone": "edge", "site": "s-1"}
NOT_READY_REASONS = ("UnitsNotReady", "NoNodeUnits")

# ------------------------------------------------------------------------------ strategies

safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=24
)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), safe_text, st.floats(allow_nan=False)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(safe_text, inner, max_size=3)
    ),
    max_leaves=6,
)
valid_names = st.from_regex(r"[a-z]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
grid_names = st.one_of(
    *[valid_names] * 6,
    st.sampled_from(["h", "g" * 48, "g" * 60, "a.b", "svc", "Upper", "a_b", "-lead"]),
    safe_text,
)
label_maps = st.one_of(
    *[st.dictionaries(st.sampled_from(["app", "tier", "x.io/team"]), valid_names, max_size=2)] * 4,
    st.dictionaries(safe_text, safe_text, max_size=2),
)
keys = st.one_of(
    st.sampled_from(["zone", "site", "odd", "example.com/zone", "zone"]),
    st.sampled_from(["zone", "site", "odd", "example.com/zone", "zone"]),
    st.sampled_from(["", "not a key!", "-zone", "k" * 64, "UPPER/lower", "example.com/", "/z"]),
    safe_text,
)
unit_values = st.sampled_from(
    ["z-a", "z-b", "z-c", "s-1", "s-2", "Upper_Case.Value", "edge", "nope"]
)
pool_names = st.one_of(st.sampled_from(["canary", "default", "", "Canary_1", "p" * 70]), safe_text)


@st.composite
def workload_template(draw: st.DrawFn, *, statefulset: bool) -> Any:
    if draw(st.integers(0, 19)) == 19:
        return draw(json_value)  # not even an object
    app = draw(st.sampled_from(["web", "db", "x"]))
    spec: dict[str, Any] = {
        "replicas": draw(
            st.one_of(st.integers(1, 2), st.just(0), st.integers(-2, -1), st.just("x"))
        ),
        "selector": draw(
            st.sampled_from(
                [
                    {"matchLabels": {"app": app}},
                    {"matchLabels": {"app": "other"}},
                    {},
                    None,
                    "selector",
                ]
            )
        ),
        "template": {
            "metadata": draw(
                st.sampled_from(
                    [
                        {"labels": {"app": app}},
                        {"labels": {"app": app}, "creationTimestamp": None},
                        {},
                        {"labels": {"bad key!": "v"}},
                    ]
                )
            ),
            "spec": {
                "containers": draw(
                    st.sampled_from(
                        [
                            [{"name": "main", "image": "registry.local/app:1"}],
                            [],
                            [{"name": "Bad_Name", "image": ""}],
                            [{"image": "registry.local/app:1"}],
                            "containers",
                        ]
                    )
                ),
                "nodeSelector": draw(
                    st.sampled_from(
                        [None, {"zone": "z-b"}, {"other": "x"}, "not-a-map", {"site": "s-2"}]
                    )
                ),
            },
        },
    }
    if statefulset:
        spec["serviceName"] = draw(st.sampled_from(["svc-svc", "", "Bad Name", None]))
    if draw(st.booleans()):
        spec[draw(safe_text)] = draw(json_value)  # unknown fields
    if draw(st.integers(0, 9)) == 9:
        spec["template"] = draw(json_value)
    return spec


@st.composite
def service_template(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 19:
        return draw(json_value)
    return {
        "selector": draw(st.sampled_from([{"app": "web"}, {}, None, {"bad key!": "v"}])),
        "ports": draw(
            st.sampled_from(
                [
                    [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
                    [{"port": 0}],
                    [{"port": 70000}],
                    [],
                    [{"name": "Bad_Name", "port": 80}],
                ]
            )
        ),
        "type": draw(st.sampled_from(["ClusterIP", "NodePort", "Weird", None])),
    }


@st.composite
def hostile_grid(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    resource = draw(st.sampled_from(sorted(KIND_OF)))
    metadata: dict[str, Any] = {"name": draw(grid_names), "namespace": NS}
    if draw(st.booleans()):
        metadata["labels"] = draw(label_maps)
    if draw(st.booleans()):
        metadata["annotations"] = draw(label_maps)
    spec: dict[str, Any] = {"gridUniqKey": draw(keys)}
    if resource == "servicegrids":
        spec["template"] = draw(service_template())
    else:
        template = workload_template(statefulset=resource == "statefulsetgrids")
        if draw(st.integers(0, 4)) < 4:
            spec["template"] = draw(template)
        if draw(st.booleans()):
            spec["templatePool"] = draw(st.dictionaries(pool_names, template, max_size=2))
        if draw(st.booleans()):
            spec["templates"] = draw(st.dictionaries(unit_values, pool_names, max_size=3))
        if draw(st.booleans()):
            spec["defaultTemplateName"] = draw(pool_names)
        if draw(st.booleans()):
            spec["autoDeleteUnusedTemplate"] = draw(
                st.one_of(st.booleans(), st.booleans(), json_scalar)
            )
    garbage = draw(st.integers(0, 14)) == 14  # the whole spec is garbage
    return resource, {
        "apiVersion": "superedge.io/v1",
        "kind": KIND_OF[resource],
        "metadata": metadata,
        "spec": draw(json_value) if garbage else spec,
    }


# ------------------------------------------------------------------------------ the test


def reconciles(controller: InProcessController) -> float:
    return sum(
        sample.value
        for metric in controller.metrics.registry.collect()
        if metric.name == "controller_runtime_reconcile"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def processed(obj: dict[str, Any] | None) -> bool:
    if obj is None:
        return False
    status = obj.get("status")
    if not isinstance(status, dict):
        return False
    generation = obj["metadata"].get("generation")
    return status.get("observedGeneration") == generation and "Ready" in conditions_of(obj)


def oracle(env: RelEnv, resource: str, obj: dict[str, Any], stats: Counter[str]) -> None:
    """Independent expectations for the obvious classes of bad input."""
    conds = conditions_of(obj)
    ready = conds["Ready"]
    spec = obj.get("spec")
    key = spec.get("gridUniqKey") if isinstance(spec, dict) else None
    failing = {t: c for t, c in conds.items() if t != "Ready" and c.get("status") == "True"}
    stats[f"Ready={ready.get('status')} ({ready.get('reason')})"] += 1
    for ctype in failing:
        stats[ctype] += 1
    if ready.get("status") == "False" and ready.get("reason") not in NOT_READY_REASONS:
        assert failing, f"Ready False ({ready.get('reason')}) without a failure condition: {obj}"
        for condition in failing.values():
            assert str(condition.get("message") or "").strip(), condition
    if not isinstance(key, str) or not VALID_KEY.fullmatch(key):
        invalid = conds.get("InvalidSpec")
        assert invalid is not None and invalid["status"] == "True", (key, conds)
        assert "spec" in str(invalid.get("message")), invalid
        return
    if resource == "servicegrids" or "InvalidSpec" in failing:
        return
    pool = spec.get("templatePool") if isinstance(spec, dict) else None
    templates = spec.get("templates") if isinstance(spec, dict) else None
    if not isinstance(pool, dict) or not isinstance(templates, dict):
        return
    units = node_units(env.api.list("nodes"), key)
    for unit, name in templates.items():
        if unit in units and name not in ("", "default") and name not in pool:
            missing = conds.get("TemplateNotFound")
            assert missing is not None and missing["status"] == "True", (unit, name, conds)
            assert unit in missing["message"], missing


@pytest.mark.timeout(600)
async def test_rel_hostile_input(rel_lenient_env: RelEnv, rel_record: ScenarioRecord) -> None:
    env = rel_lenient_env
    env.add_node("rel-odd", ODD_NODE)
    controller = await env.start_controller()
    view = SimView(env.sim)
    stats: Counter[str] = Counter()
    checks = 0
    loop = asyncio.get_running_loop()

    async with KubeClient(
        config=ClientConfig.for_server(env.sim.url),
        metrics=Metrics(),
        user_agent="rel-hostile/1.0",
        clock=RealClock(),
    ) as client:
        history: list[dict[str, Any]] = []

        async def one(resource: str, doc: dict[str, Any]) -> None:
            # The cluster carries state from one example to the next (a grid may replace an
            # earlier one), so a failure shows the grids sent before it too.
            history.append(json.loads(json.dumps(doc)))
            try:
                await check_one(resource, doc)
            except AssertionError as err:
                recent = "\n".join(json.dumps(d, ensure_ascii=False) for d in history[-6:])
                raise AssertionError(
                    f"{err}\nthe last grids sent, oldest first:\n{recent}"
                ) from None

        async def check_one(resource: str, doc: dict[str, Any]) -> None:
            nonlocal checks
            name = doc["metadata"]["name"]
            ref = REFS[resource]
            stats["examples"] += 1
            try:
                try:
                    await client.create(ref, doc, namespace=NS)
                except ApiError as err:
                    if err.reason != "AlreadyExists":
                        raise
                    current = await client.get(ref, name, namespace=NS)
                    doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    await client.replace(ref, doc, namespace=NS)
                    stats["replaced an earlier grid"] += 1
            except ApiError as err:
                assert 400 <= err.status < 500, f"the API server failed on {doc}: {err}"
                assert err.message, err
                stats["refused by the API server"] += 1
                return
            stats["accepted"] += 1
            obj = await wait_until(
                lambda: processed(got := env.get(resource, name)) and got,
                timeout=30,
                what=f"{resource} {name!r} processed by the controller",
            )
            assert controller.alive()
            oracle(env, resource, obj, stats)
            result = await converge(
                view, Expectations(allow_rejected=True), deadline=20, interval=0.05
            )
            checks += result.verdict.checks

        @settings(
            max_examples=SCALE.hostile_examples,
            deadline=None,
            database=None,
            derandomize=not FULL,
            suppress_health_check=list(HealthCheck),
            # No shrinking: every attempt replays against a live cluster that remembers the
            # earlier examples; the failure report lists the grids sent before it instead.
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
        )
        @given(hostile_grid())
        def examples(example: tuple[str, dict[str, Any]]) -> None:
            asyncio.run_coroutine_threadsafe(one(*example), loop).result(timeout=120)

        await asyncio.to_thread(examples)

    # Every accepted grid is still there: none may keep the controller busy. Failing applies
    # are retried with backoff (their rate falls), rejected ones after minutes: at rest the
    # reconcile rate is near zero, where a hot loop would run hundreds per second.
    await env.settled(quiet=2.0, timeout=60)
    before = reconciles(controller)
    await asyncio.sleep(3.0)  # a window to measure the rate over, not a wait for state
    rate = (reconciles(controller) - before) / 3.0
    assert rate <= 5.0, f"{rate:.1f} reconciles per second at rest"
    final = await converge(
        view, Expectations(allow_rejected=True), deadline=SCALE.converge_deadline
    )
    assert controller.alive()
    assert stats["accepted"] > 0 and stats["refused by the API server"] > 0, stats
    assert stats["InvalidSpec"] > 0, stats
    rel_record.notes.append(f"{rate:.2f} reconciles per second at rest afterwards")

    rel_record.add_faults(
        [
            ("hostile grids generated", stats["examples"]),
            ("refused by the API server", stats["refused by the API server"]),
            ("accepted", stats["accepted"]),
        ]
    )
    rel_record.churn = dict(sorted(stats.items()))
    rel_record.invariant_checks += checks + final.verdict.checks
    rel_record.invariant_passes += stats["accepted"] + 1
    rel_record.reconverge_seconds.append(final.seconds)
    rel_record.write()
