"""`kubectl apply --dry-run=server` of manifests/ against kubesim.

Order, as on a real cluster: the CRDs and the namespace are applied for real first (a dry run
creates nothing, so objects in a namespace that does not exist yet would be refused), then the
whole kustomization is dry-run. manifests/monitoring/ needs the Prometheus Operator's kinds:
stand-in CRDs for ServiceMonitor and PrometheusRule (schema-less) are installed first, which
checks our objects' shape only as far as kubectl's and the server's generic checks go. The
optional federation component is built through an overlay (as a user includes it) and its
objects are dry-run too, in an existing `clusternet-system` namespace.

Nothing is skipped: kubesim serves every kind the manifests use (DaemonSets, ServiceAccounts
and the RBAC kinds included), so every object must pass, and a kind it stops serving fails
the test by name.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicegroup.kubesim.app import KubeSim, NodeSpec

pytestmark = [pytest.mark.kubectl]

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"

# Minimal stand-ins for the Prometheus Operator's CRDs (group, kind, plural).
MONITORING_KINDS = (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules"))


def _stand_in_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Cluster:
    sim: KubeSim
    kubeconfig: Path
    cache_dir: Path

    async def kubectl(self, *args: str, stdin: str | None = None) -> Result:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        process = await asyncio.create_subprocess_exec(
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None), 60
            )
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
        return Result(process.returncode or 0, out.decode(), err.decode())

    async def served_kinds(self) -> set[tuple[str, str]]:
        """(group, kind) of every resource the server lists in discovery."""
        result = await self.kubectl("api-resources", "--no-headers", "-o", "wide")
        assert result.code == 0, result.stderr
        kinds = set()
        for line in result.stdout.splitlines():
            parts = line.split()
            # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...: find NAMESPACED.
            index = next(i for i, p in enumerate(parts) if p in ("true", "false"))
            api_version, kind = parts[index - 1], parts[index + 1]
            kinds.add((api_version.rpartition("/")[0] if "/" in api_version else "", kind))
        return kinds


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def group_of(doc: dict[str, Any]) -> str:
    api_version = str(doc["apiVersion"])
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def federation_objects() -> list[dict[str, Any]]:
    """What the optional federation component adds or changes (through a user's overlay)."""
    with tempfile.TemporaryDirectory() as overlay:
        relative = os.path.relpath(MANIFESTS, overlay)
        (Path(overlay) / "kustomization.yaml").write_text(
            yaml.safe_dump({"resources": [relative], "components": [f"{relative}/federation"]})
        )
        docs = kustomize(Path(overlay))
    plain = kustomize(MANIFESTS)
    return [d for d in docs if d not in plain]


def objects() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        return []  # the fixture skips, saying why
    return kustomize(MANIFESTS) + kustomize(MANIFESTS / "monitoring") + federation_objects()


def _id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    async with KubeSim(nodes=[NodeSpec("edge-1", {"zone": "zone1"})]) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        state = Cluster(sim, kubeconfig, tmp_path / "kube-cache")
        # Prerequisites, for real: our CRDs, the namespace, the monitoring stand-ins.
        result = await state.kubectl("apply", "-k", str(MANIFESTS / "crds"))
        assert result.code == 0, result.stderr
        result = await state.kubectl("apply", "-f", str(MANIFESTS / "namespace.yaml"))
        assert result.code == 0, result.stderr
        # Clusternet's namespace, where the federation component's Role lives.
        namespace = {"apiVersion": "v1", "kind": "Namespace"}
        namespace["metadata"] = {"name": "clusternet-system"}
        result = await state.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(namespace))
        assert result.code == 0, result.stderr
        stand_ins = [_stand_in_crd(kind, plural) for kind, plural in MONITORING_KINDS]
        result = await state.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(stand_ins))
        assert result.code == 0, result.stderr
        for name in ("deploymentgrids", "statefulsetgrids", "servicegrids"):
            result = await state.kubectl(
                "wait", "--for=condition=Established", f"crd/{name}.superedge.io", "--timeout=20s"
            )
            assert result.code == 0, result.stderr
        yield state


async def unserved(cluster: Cluster, docs: list[dict[str, Any]]) -> list[str]:
    """`group/Kind` of the documents whose kind kubesim does not serve."""
    served = {f"{g or 'core'}/{k}" for g, k in await cluster.served_kinds()}
    return sorted({f"{group_of(d) or 'core'}/{d['kind']}" for d in docs} - served)


async def test_each_object_passes_a_server_dry_run(cluster: Cluster) -> None:
    docs = objects()
    assert docs
    assert await unserved(cluster, docs) == []
    failures = []
    for doc in docs:
        result = await cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(doc)
        )
        if result.code != 0 or "(server dry run)" not in result.stdout:
            failures.append(f"{_id(doc)}: {result.stderr.strip() or result.stdout.strip()}")
    assert failures == []
    assert len(docs) >= 10


async def test_the_whole_kustomization_passes_a_server_dry_run(cluster: Cluster) -> None:
    assert await unserved(cluster, objects()) == []
    for directory in (MANIFESTS, MANIFESTS / "monitoring"):
        result = await cluster.kubectl("apply", "--dry-run=server", "-k", str(directory))
        assert result.code == 0, result.stderr
    # Dry run means nothing was created.
    result = await cluster.kubectl("get", "deployments,services", "-n", "servicegroup-system")
    assert result.code == 0, result.stderr
    assert "servicegroup-controller" not in result.stdout
    # The prerequisites were applied for real.
    result = await cluster.kubectl("get", "crd", "-o", "name")
    for name in ("deploymentgrids", "statefulsetgrids", "servicegrids"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}.superedge.io" in result.stdout
