"""`servicegroup render`: previews equal what the reconcilers would apply; errors and exit codes."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.api.models import parse_grid
from servicegroup.cli import run_cli
from servicegroup.grid.render import render_service, render_units
from servicegroup.render import (
    EXIT_INPUT,
    EXIT_INVALID,
    EXIT_OK,
    load_documents,
    merge_nodes,
    nodes_from_specs,
    preview,
    render_command,
)
from servicegroup.settings import NodeSpec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"


def _spec(image: str, replicas: int) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": {"appGrid": "echo"}},
        "strategy": {},
        "template": {
            "metadata": {"creationTimestamp": None, "labels": {"appGrid": "echo"}},
            "spec": {
                "containers": [{"name": "echo", "image": image}],
                "nodeSelector": {"disk": "ssd"},
            },
        },
    }


def canary(**spec: Any) -> dict[str, Any]:
    body = {
        "gridUniqKey": "zone",
        "template": _spec("echo:2.1", 1),
        "templatePool": {"test1": _spec("echo:2.2", 2), "test2": _spec("echo:2.3", 3)},
        "templates": {"zone1": "test1", "zone2": "test2"},
        "defaultTemplateName": "default",
    }
    body.update(spec)
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "canary", "namespace": "edge", "uid": "u-1", "labels": {"a": "b"}},
        "spec": body,
    }


SERVICE_GRID = {
    "apiVersion": "superedge.io/v1",
    "kind": "ServiceGrid",
    "metadata": {"name": "web", "namespace": "edge", "uid": "u-2"},
    "spec": {
        "gridUniqKey": "zone",
        "template": {"selector": {"appGrid": "echo"}, "ports": [{"port": 80}]},
    },
}

NODES = nodes_from_specs(
    [
        NodeSpec("n1", {"zone": "zone1"}),
        NodeSpec("n2", {"zone": "zone2"}),
        NodeSpec("n3", {"zone": "zone3"}),
        NodeSpec("n4", {"zone": "zone3"}),
        NodeSpec("n5", {"zone": ""}),
        NodeSpec("n6", {}),
    ]
)


def run(
    docs: list[dict[str, Any]] | str,
    tmp_path: Path,
    *,
    nodes: list[NodeSpec] | None = None,
    output: str = "yaml",
    **kwargs: Any,
) -> tuple[int, str, str]:
    text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    specs = [
        NodeSpec("n1", {"zone": "zone1"}),
        NodeSpec("n2", {"zone": "zone2"}),
        NodeSpec("n3", {"zone": "zone3"}),
    ]
    code = render_command(
        file=str(path),
        node_specs=specs if nodes is None else nodes,
        output=output,  # type: ignore[arg-type]
        stdout=out,
        stderr=err,
        **kwargs,
    )
    return code, out.getvalue(), err.getvalue()


def objects(stream: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(stream) if d is not None]


# ------------------------------------------------------------------ what is rendered


def test_canary_children_are_exactly_what_the_reconciler_renders() -> None:
    result = preview([canary()], nodes=NODES)
    (grid,) = result.grids
    assert not result.failed and grid.errors == ()
    assert [u.unit for u in grid.units] == ["zone1", "zone2", "zone3"]
    expected = render_units(parse_grid(canary()), ["zone1", "zone2", "zone3"])  # type: ignore[arg-type]
    for unit in grid.units:
        assert unit.child == expected.children[unit.unit].obj
    chosen = {u.unit: (u.template, u.template_field) for u in grid.units}
    assert chosen == {
        "zone1": ("test1", "spec.templatePool[test1]"),
        "zone2": ("test2", "spec.templatePool[test2]"),
        "zone3": ("default", "spec.template"),
    }
    zone2 = grid.units[1].child
    assert zone2 is not None
    assert zone2["metadata"]["name"] == "canary-zone2"
    assert zone2["spec"]["replicas"] == 3
    assert zone2["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd", "zone": "zone2"}
    assert zone2["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    # A live grid (uid set) in its own namespace: no notes needed.
    assert grid.notes == ()


def test_yaml_output_is_a_kubectl_readable_stream_with_the_choice_per_unit(tmp_path: Path) -> None:
    code, out, err = run([canary()], tmp_path)
    assert code == EXIT_OK, err
    assert err == ""
    children = objects(out)
    assert [(c["kind"], c["metadata"]["name"]) for c in children] == [
        ("Deployment", "canary-zone1"),
        ("Deployment", "canary-zone2"),
        ("Deployment", "canary-zone3"),
    ]
    assert "# DeploymentGrid edge/canary (gridUniqKey: zone)" in out
    assert "# NodeUnits: 3 (zone1, zone2, zone3)" in out
    assert (
        "# NodeUnit zone1: template test1 (spec.templatePool[test1]) -> Deployment canary-zone1"
        in out
    )
    assert "# NodeUnit zone3: template default (spec.template) -> Deployment canary-zone3" in out


def test_a_missing_pool_entry_fails_only_its_unit(tmp_path: Path) -> None:
    grid = canary(templates={"zone1": "test1", "zone2": "nope"})
    code, out, err = run([grid], tmp_path)
    assert code == EXIT_INVALID
    names = [c["metadata"]["name"] for c in objects(out)]
    assert names == ["canary-zone1", "canary-zone3"]
    assert '# error: spec.templates[zone2]: Not found: "nope": no such templatePool entry' in out
    assert "# NodeUnit zone2: NO CHILD (MissingTemplate)" in out
    assert "chosen by spec.templates[zone2]" in out
    lines = err.splitlines()
    assert any("DeploymentGrid edge/canary: NodeUnit zone2: MissingTemplate" in ln for ln in lines)
    assert any('spec.templates[zone2]: Not found: "nope"' in ln for ln in lines)


def test_a_terminal_error_renders_nothing(tmp_path: Path) -> None:
    grid = canary(gridUniqKey="-bad key")
    code, out, err = run([grid], tmp_path)
    assert code == EXIT_INVALID
    assert objects(out) == []
    assert "# error: spec.gridUniqKey: Invalid value" in out
    assert "servicegroup render: DeploymentGrid edge/canary: spec.gridUniqKey" in err


def test_every_validation_error_is_listed(tmp_path: Path) -> None:
    grid = canary(gridUniqKey="", defaultTemplateName="missing", replicas=1)
    grid["apiVersion"] = "superedge.io/v2"
    grid["spec"]["templates"] = "not a map"
    code, out, _ = run([grid], tmp_path)
    assert code == EXIT_INVALID
    errors = [ln for ln in out.splitlines() if ln.startswith("# error: ")]
    assert any(ln.startswith("# error: apiVersion: Unsupported value") for ln in errors)
    assert any(ln.startswith("# error: spec.templates: Invalid value") for ln in errors)
    assert len(errors) >= 2


def test_service_grid_renders_its_service(tmp_path: Path) -> None:
    code, out, err = run([SERVICE_GRID], tmp_path)
    assert code == EXIT_OK, err
    (service,) = objects(out)
    assert service == render_service(parse_grid(SERVICE_GRID))  # type: ignore[arg-type]
    assert service["metadata"]["name"] == "web-svc"
    assert service["metadata"]["annotations"]["topologyKeys"] == '["zone"]'


def test_upstream_examples_render(tmp_path: Path) -> None:
    text = "\n---\n".join(
        (FIXTURES / name).read_text()
        for name in (
            "deploymentgrid-demo.yaml",
            "statefulsetgrid-demo.yaml",
            "servicegrid-demo.yaml",
        )
    )
    code, out, err = run(text, tmp_path)
    assert code == EXIT_OK, err
    kinds = sorted((c["kind"], c["metadata"]["name"]) for c in objects(out))
    assert kinds == [
        ("Deployment", "deploymentgrid-demo-zone1"),
        ("Deployment", "deploymentgrid-demo-zone2"),
        ("Deployment", "deploymentgrid-demo-zone3"),
        ("Service", "servicegrid-demo-svc"),
        ("StatefulSet", "statefulsetgrid-demo-zone1"),
        ("StatefulSet", "statefulsetgrid-demo-zone2"),
        ("StatefulSet", "statefulsetgrid-demo-zone3"),
    ]
    # Not live objects: the preview says the uid (and so the hash) will differ.
    assert "note: metadata.uid is not set" in out


def test_unit_values_that_are_not_names_get_sanitized_children(tmp_path: Path) -> None:
    code, out, _ = run([canary(templates={})], tmp_path, nodes=[NodeSpec("n", {"zone": "Zone_A"})])
    assert code == EXIT_OK
    (child,) = objects(out)
    assert child["metadata"]["name"].startswith("canary-zone-a-")
    assert child["metadata"]["labels"]["superedge.io/nodeunit"] == "Zone_A"
    assert child["spec"]["template"]["spec"]["nodeSelector"]["zone"] == "Zone_A"


def test_no_nodes_means_no_children_and_a_note(tmp_path: Path) -> None:
    code, out, _ = run([canary()], tmp_path, nodes=[])
    assert code == EXIT_OK
    assert objects(out) == []
    assert "# NodeUnits: 0 (none)" in out
    assert "no node carries a non-empty label zone" in out


def test_namespace_defaults_and_auto_delete_notes(tmp_path: Path) -> None:
    grid = canary(templates={"zone1": "test1"}, autoDeleteUnusedTemplate=True)
    del grid["metadata"]["namespace"]
    code, out, _ = run([grid], tmp_path)
    assert code == EXIT_OK
    assert {c["metadata"]["namespace"] for c in objects(out)} == {"default"}
    assert "note: metadata.namespace is not set: shown in namespace default" in out
    assert "autoDeleteUnusedTemplate: the controller would remove templatePool entries test2" in out


def test_json_output(tmp_path: Path) -> None:
    grid = canary(templates={"zone1": "test1", "zone2": "nope"})
    code, out, _ = run([grid, SERVICE_GRID], tmp_path, output="json")
    assert code == EXIT_INVALID
    body = orjson.loads(out)
    dg, sg = body["grids"]
    assert body["skipped"] == []
    assert (dg["kind"], dg["namespace"], dg["name"], dg["gridUniqKey"]) == (
        "DeploymentGrid",
        "edge",
        "canary",
        "zone",
    )
    assert dg["errors"] == ['spec.templates[zone2]: Not found: "nope": no such templatePool entry']
    units = {u["unit"]: u for u in dg["units"]}
    assert units["zone1"]["template"] == "test1"
    assert units["zone1"]["child"]["metadata"]["name"] == "canary-zone1"
    assert units["zone2"]["reason"] == "MissingTemplate"
    assert "child" not in units["zone2"]
    assert sg["service"]["metadata"]["name"] == "web-svc"


# ------------------------------------------------------------------------- input


def test_other_documents_are_skipped_and_lists_flattened(tmp_path: Path) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edge"}},
        {"apiVersion": "v1", "kind": "List", "items": [SERVICE_GRID]},
    ]
    code, out, _ = run(docs, tmp_path)
    assert code == EXIT_OK
    assert [c["kind"] for c in objects(out)] == ["Service"]
    assert "# skipped Namespace edge: not a grid" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1", "not valid YAML"),
        ("- 1\n- 2\n", "document 1 is not an object"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no DeploymentGrid"),
        ("", "no DeploymentGrid"),
    ],
)
def test_unreadable_input_exits_2(tmp_path: Path, text: str, message: str) -> None:
    code, out, err = run(text, tmp_path)
    assert code == EXIT_INPUT
    assert out == ""
    assert err.startswith("servicegroup render: error: ") and message in err


def test_missing_file_exits_2(tmp_path: Path) -> None:
    err = io.StringIO()
    code = render_command(file=str(tmp_path / "nope.yaml"), stdout=io.StringIO(), stderr=err)
    assert code == EXIT_INPUT
    assert "cannot read" in err.getvalue()


def test_stdin(tmp_path: Path) -> None:
    out = io.StringIO()
    code = render_command(
        file="-",
        stdin=io.StringIO(yaml.safe_dump(SERVICE_GRID)),
        stdout=out,
        stderr=io.StringIO(),
    )
    assert code == EXIT_OK
    assert objects(out.getvalue())[0]["metadata"]["name"] == "web-svc"


def test_nodes_file_and_flags_merge_by_name(tmp_path: Path) -> None:
    node_list = {
        "apiVersion": "v1",
        "kind": "NodeList",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "a", "labels": {"zone": "zone1"}},
            },
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "b", "labels": {"zone": "zone2"}},
            },
        ],
    }
    nodes_path = tmp_path / "nodes.yaml"
    nodes_path.write_text(yaml.safe_dump(node_list))
    # Flags win over the file for a node of the same name: b moves to zone9.
    code, out, _ = run(
        [canary(templates={})],
        tmp_path,
        nodes=[NodeSpec("b", {"zone": "zone9"})],
        nodes_file=str(nodes_path),
    )
    assert code == EXIT_OK
    assert [c["metadata"]["name"] for c in objects(out)] == ["canary-zone1", "canary-zone9"]


def test_nodes_file_must_hold_nodes(tmp_path: Path) -> None:
    bad = tmp_path / "nodes.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    code, _, err = run([canary()], tmp_path, nodes_file=str(bad))
    assert code == EXIT_INPUT
    assert "expected Node objects" in err


def test_merge_nodes_later_sources_win() -> None:
    first = nodes_from_specs([NodeSpec("a", {"zone": "1"}), NodeSpec("b", {"zone": "2"})])
    second = nodes_from_specs([NodeSpec("b", {"zone": "3"})])
    merged = merge_nodes(first, second)
    assert [(n["metadata"]["name"], n["metadata"]["labels"]) for n in merged] == [
        ("a", {"zone": "1"}),
        ("b", {"zone": "3"}),
    ]


def test_load_documents_drops_empty_documents() -> None:
    assert load_documents("---\n# c\n---\na: 1\n---\n", source="x") == [{"a": 1}]


# ------------------------------------------------------------------------ the CLI


def test_cli_wiring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # run() writes to the process's stdout/stderr (the CLI injects streams only for parsing).
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(canary()))
    code = run_cli(["render", str(path), "--node", "n1:zone=zone1", "--output", "json"], environ={})
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    (grid,) = orjson.loads(captured.out)["grids"]
    assert [u["unit"] for u in grid["units"]] == ["zone1"]


def test_cli_returns_1_on_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(canary(templates={"zone1": "nope"})))
    code = run_cli(["render", str(path), "--node", "n1:zone=zone1"], environ={})
    assert code == EXIT_INVALID
    assert "MissingTemplate" in capsys.readouterr().err


# ------------------------------------------------------------- nodes from a cluster


async def test_nodes_from_a_cluster_with_one_read_only_request(tmp_path: Path) -> None:
    from servicegroup.kubesim.app import KubeSim
    from servicegroup.kubesim.app import NodeSpec as SimNode

    nodes = [SimNode("edge-1", {"zone": "zone1"}), SimNode("edge-2", {"zone": "zone2"})]
    async with KubeSim(nodes=nodes) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        sim.requests.reset()
        code, out, err = await asyncio.to_thread(
            run, [canary(templates={})], tmp_path, nodes=[], kubeconfig=str(kubeconfig)
        )
        snapshot = sim.requests.snapshot()
    assert code == EXIT_OK, err
    assert [c["metadata"]["name"] for c in objects(out)] == ["canary-zone1", "canary-zone2"]
    ours = [(r.verb, r.resource, r.count) for r in snapshot if r.user_agent == "servicegroup"]
    assert ours == [("list", "nodes", 1)]


def test_unreachable_cluster_exits_2(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    code, out, err = run([canary()], tmp_path, kubeconfig=str(kubeconfig))
    assert code == EXIT_INPUT
    assert out == ""
    assert "cannot list the cluster's nodes" in err


# ------------------------------------------------------------------- properties

unit_values = st.text(alphabet=st.sampled_from("abcXYZ019-_."), min_size=1, max_size=70).filter(
    lambda v: v[0].isalnum() and v[-1].isalnum()
)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(unit_values, min_size=0, max_size=8))
def test_every_unit_gets_exactly_one_entry(values: list[str]) -> None:
    nodes = nodes_from_specs(NodeSpec(f"n{i}", {"zone": v}) for i, v in enumerate(values))
    (grid,) = preview([canary(templates={})], nodes=nodes).grids
    assert [u.unit for u in grid.units] == sorted(set(values))
    names = [u.child["metadata"]["name"] for u in grid.units if u.child is not None]
    assert len(names) == len(set(names))
    for unit in grid.units:
        if unit.child is not None:
            assert unit.child["metadata"]["labels"]["superedge.io/nodeunit"] == unit.unit
            assert unit.child["spec"]["template"]["spec"]["nodeSelector"]["zone"] == unit.unit
        else:
            assert unit.error
