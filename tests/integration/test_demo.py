"""`./hack/demo` end to end: a new user's first command, run exactly as README says.

The first test runs the script as a subprocess and reads its output as a user would: every
step converged, every object the upstream examples promise is named, each NodeUnit's wrapper
serves only its own pods, each NodeUnit's hosts file names only its own pods, the canary
children carry their templates, and no component log line reaches the terminal. The second
runs the walkthrough in-process with the controller's writes failing, and expects a clear
failure naming the step that did not converge.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from servicegroup.demo.cluster import DemoCluster
from servicegroup.demo.command import demo

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("zone-0", "zone-1", "zone-2", "zone-3")
SSG = "statefulsetgrid-demo"
SVC = "servicegrid-demo-svc"
FQDN = "{ssg}-{i}.{svc}.default.svc.cluster.local"


def run_demo(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEGROUP_")}
    env["TMPDIR"] = str(tmp_path)  # the demo's work directory goes under the test's
    return subprocess.run(
        [str(ROOT / "hack" / "demo")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def section(output: str, start: str, end: str) -> str:
    """The output between the line containing `start` and the next containing `end`."""
    begin = output.index(start)
    return output[begin : output.index(end, begin + len(start))]


def endpoint_rows(block: str) -> dict[str, set[str]]:
    """NODEUNIT -> endpoint IPs of the 'ENDPOINTS SERVED' table in `block` ('(all)' too)."""
    rows: dict[str, set[str]] = {}
    for line in block.splitlines():
        match = re.match(r"^(zone-\d|\(all\))\s+.*?\s{3,}(\d[\d.:, ]*)$", line)
        if match:
            rows[match.group(1)] = {e.split(":")[0] for e in match.group(2).split(", ")}
    return rows


@pytest.mark.timeout(300)
def test_hack_demo_walks_through_every_upstream_example(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr}"
    for number in range(1, 8):
        assert f"[{number}/7] " in out
        assert f"step {number} converged in " in out
    assert re.search(r"Done: all 7 steps converged in \d+\.\ds", out)
    assert "FAILED" not in out
    # Component logs went to the file the demo names, not to the terminal.
    log_path = Path(re.search(r"logs \(.*\): (\S+)", out).group(1))  # type: ignore[union-attr]
    assert log_path.is_file()
    assert log_path.is_relative_to(tmp_path)
    for stream in (out, result.stderr):
        assert not [line for line in stream.splitlines() if line.startswith("{")]

    # The stateless example: one Deployment per NodeUnit, and the ServiceGrid's Service.
    assert "$ kubectl get dg" in out
    assert re.search(r"^NAME\s+KEY\s+UNITS\s+READY\s+AGE$", out, re.M)
    assert re.search(r"^deploymentgrid-demo\s+zone\s+3\s+3\s+\S+$", out, re.M)
    assert re.search(r"^deploymentgrid-demo\s+zone\s+4\s+4\s+\S+$", out, re.M)
    for unit in UNITS:
        assert re.search(rf"^deploymentgrid-demo-{unit}\s+2/2\s+2\s+2\s", out, re.M), unit
    assert re.search(rf"^{SVC}\s+ClusterIP\s+\d+\.\d+\.\d+\.\d+\s+<none>\s+80/TCP\s", out, re.M)
    assert re.search(r"^servicegrid-demo\s+zone\s+True\s+\S+$", out, re.M)
    assert f"{SVC} annotations: topologyKeys: '[\"zone\"]'" in out

    # What each NodeUnit's wrapper serves: its own pods only, all of them together.
    traffic = section(out, "[4/7]", "[5/7]")
    rows = endpoint_rows(traffic)
    assert set(rows) == {"zone-0", "zone-1", "zone-2", "(all)"}
    per_unit = [rows[u] for u in UNITS[:3]]
    assert all(len(ips) == 2 for ips in per_unit)
    assert set().union(*per_unit) == rows["(all)"] and len(rows["(all)"]) == 6

    # The new NodeUnit: its nodes, its Deployment, its wrapper's own pods.
    joined = section(out, "[5/7]", "[6/7]")
    for node in ("node-3a", "node-3b", "node-3c"):
        assert re.search(rf"^{node}\s+Ready\s.*\szone-3$", joined, re.M)
    rows = endpoint_rows(joined)
    assert set(rows) == {*UNITS, "(all)"}
    assert all(len(rows[u]) == 2 for u in UNITS)
    assert set().union(*(rows[u] for u in UNITS)) == rows["(all)"]

    # The stateful example: a StatefulSet per NodeUnit, its pods, the per-unit names.
    stateful = section(out, "[6/7]", "[7/7]")
    assert re.search(rf"^{SSG}\s+zone\s+4\s+4\s+\S+$", stateful, re.M)
    pod_ips: dict[str, str] = {}
    for unit in UNITS:
        assert re.search(rf"^{SSG}-{unit}\s+3/3\s", stateful, re.M), unit
        for i in range(3):
            pod = f"{SSG}-{unit}-{i}"
            match = re.search(rf"^{pod}\s+1/1\s+Running\s+\d+\s+\S+\s+(\S+)\s", stateful, re.M)
            assert match, pod
            pod_ips[pod] = match.group(1)
    for unit in UNITS:
        hosts = section(stateful, f"\n{unit}: ", "\n\n" if unit != UNITS[-1] else "step 6")
        for i in range(3):
            pod = f"{SSG}-{unit}-{i}"
            name = FQDN.format(ssg=SSG, i=i, svc=SVC)
            assert re.search(rf"^  {re.escape(pod_ips[pod])} {name}\s+<- {pod}$", hosts, re.M)

    # The canary example: which template each NodeUnit got, and the images that run.
    canary = section(out, "[7/7]", "Done:")
    assert "`template: ......` placeholder" in canary
    assert "zone1 -> zone-1, zone2 -> zone-2" in canary
    expected = {
        "zone-0": ("test1 (defaultTemplateName)", "2/2", "superedge/echoserver:2.2"),
        "zone-1": ("test1 (templates)", "2/2", "superedge/echoserver:2.2"),
        "zone-2": ("test2 (templates)", "3/3", "superedge/echoserver:2.3"),
        "zone-3": ("test1 (defaultTemplateName)", "2/2", "superedge/echoserver:2.2"),
    }
    for unit, (template, ready, image) in expected.items():
        child = f"deploymentgrid-demo-{unit}"
        pattern = rf"^{unit}\s+{re.escape(template)}\s+{child}\s+{ready}\s+{image}$"
        assert re.search(pattern, canary, re.M), unit
        assert re.search(rf"^{child}\s+{ready}\s+\d+\s+\d+\s+\S+\s+echo\s+{image}\s", canary, re.M)


async def test_demo_reports_the_step_that_does_not_converge(tmp_path: Path) -> None:
    def break_the_controllers_writes(cluster: DemoCluster) -> None:
        # Every apply of a Deployment fails: step 2 can never converge.
        cluster.sim.faults.fail(code=500, verbs=["patch"], resources=["deployments"], fraction=1)

    out = io.StringIO()
    code = await demo(
        out=out,
        workdir=tmp_path,
        log_path=tmp_path / "demo.log",
        step_timeout=3,
        on_ready=break_the_controllers_writes,
        log_level="critical",
    )
    text = out.getvalue()
    assert code == 1, text
    assert "[1/7] " in text and "step 1 converged" in text
    assert (
        "FAILED: step 2/7 (DeploymentGrid: one Deployment per NodeUnit) did not converge "
        "within 3s" in text
    )
    assert "still waiting for: Deployment deploymentgrid-demo-zone-" in text
    # What the controller reports about it, from the grid's status.
    assert "the grids' conditions say:" in text
    assert "    DeploymentGrid deploymentgrid-demo: Ready=False" in text
    assert "[3/7]" not in text
    assert f"logs: {tmp_path / 'demo.log'}" in text


def test_demo_command_is_registered() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "servicegroup", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--keep-running" in result.stdout
