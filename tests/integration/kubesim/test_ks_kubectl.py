"""kubectl against the cluster: discovery, get, create, apply --server-side, label, delete, -w."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml
from ks_support import Cluster, wait_for

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.kubectl,
    pytest.mark.usefixtures("kubectl_available"),
]

GROUP = "kubectl.kubesim.example.com"
CRD_YAML = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: sprockets.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: sprockets, singular: sprocket, kind: Sprocket, shortNames: [spk]}}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {{name: Teeth, type: integer, jsonPath: .spec.teeth}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              teeth: {{type: integer}}
"""


def _deployment_yaml(namespace: str, *, replicas: int = 1) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "kweb", "namespace": namespace, "labels": {"app": "kweb"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "kweb"}},
                "template": {
                    "metadata": {"labels": {"app": "kweb"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
    )


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_kubectl_api_resources_and_get(cluster: Cluster) -> None:
    result = await cluster.kubectl("api-resources")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "SHORTNAMES"]
    assert any(line.split()[:2] == ["deployments", "deploy"] for line in lines)
    assert any(line.startswith("customresourcedefinitions") for line in lines)
    result = await cluster.kubectl("get", "ns")
    assert result.code == 0, result.stderr
    assert cluster.namespace in result.stdout
    assert "default" in result.stdout


async def test_kubectl_create_get_label_delete(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.namespace
    manifest = _write(tmp_path, "deploy.yaml", _deployment_yaml(ns))
    result = await cluster.kubectl("create", "-f", manifest)
    assert result.code == 0, result.stderr
    assert "deployment.apps/kweb created" in result.stdout
    result = await cluster.kubectl("get", "deploy", "-A")
    assert result.code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0][:2] == ["NAMESPACE", "NAME"]
    assert [ns, "kweb"] in [row[:2] for row in rows]
    result = await cluster.kubectl("label", "-n", ns, "deploy", "kweb", "tier=front")
    assert result.code == 0, result.stderr
    result = await cluster.kubectl("get", "-n", ns, "deploy", "kweb", "-o", "yaml")
    assert result.code == 0, result.stderr
    obj = yaml.safe_load(result.stdout)
    assert obj["metadata"]["labels"] == {"app": "kweb", "tier": "front"}
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted
    assert obj["metadata"]["uid"]
    result = await cluster.kubectl("create", "-f", manifest)
    assert result.code != 0
    assert "AlreadyExists" in result.stderr or "already exists" in result.stderr
    result = await cluster.kubectl("delete", "-n", ns, "deploy", "kweb")
    assert result.code == 0, result.stderr
    assert 'deployment.apps "kweb" deleted' in result.stdout
    result = await cluster.kubectl("get", "-n", ns, "deploy", "kweb")
    assert result.code != 0
    assert "NotFound" in result.stderr


async def test_kubectl_apply_server_side(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.namespace
    manifest = _write(tmp_path, "deploy.yaml", _deployment_yaml(ns, replicas=2))
    result = await cluster.kubectl("apply", "--server-side", "-f", manifest)
    assert result.code == 0, result.stderr
    assert "serverside-applied" in result.stdout
    live = await cluster.apps.read_namespaced_deployment("kweb", ns)
    assert live.spec.replicas == 2
    assert any(
        entry.manager == "kubectl" and entry.operation == "Apply"
        for entry in live.metadata.managed_fields
    )
    manifest = _write(tmp_path, "deploy.yaml", _deployment_yaml(ns, replicas=3))
    result = await cluster.kubectl("apply", "--server-side", "-f", manifest)
    assert result.code == 0, result.stderr
    live = await cluster.apps.read_namespaced_deployment("kweb", ns)
    assert live.spec.replicas == 3


async def test_kubectl_crd_printer_columns(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.namespace
    result = await cluster.kubectl(
        "apply", "--server-side", "-f", _write(tmp_path, "crd.yaml", CRD_YAML)
    )
    assert result.code == 0, result.stderr

    async def served() -> bool:
        status, _, _ = await cluster.raw("GET", f"/apis/{GROUP}/v1/namespaces/{ns}/sprockets")
        return status == 200

    await wait_for(served)
    sprocket = yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Sprocket",
            "metadata": {"name": "s1", "namespace": ns},
            "spec": {"teeth": 12},
        }
    )
    result = await cluster.kubectl("create", "-f", _write(tmp_path, "s1.yaml", sprocket))
    assert result.code == 0, result.stderr
    result = await cluster.kubectl("get", "-n", ns, "spk")
    assert result.code == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "TEETH"]
    assert row.split() == ["s1", "12"]
    result = await cluster.kubectl("delete", "crd", f"sprockets.{GROUP}")
    assert result.code == 0, result.stderr


async def test_kubectl_get_watch(cluster: Cluster) -> None:
    ns = cluster.namespace
    env = {**os.environ, "KUBECACHEDIR": str(cluster.cache_dir)}
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--cache-dir={cluster.cache_dir}",
        "get",
        "-n",
        ns,
        "configmaps",
        "-w",
        "--request-timeout=20s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "first"}})

        async def read_until(name: str) -> None:
            while not any(line.split()[:1] == [name] for line in lines):
                line = await process.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"kubectl get -w ended early: {lines}")
                lines.append(line.decode())

        async with asyncio.timeout(20):
            await read_until("first")
            await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "second"}})
            await read_until("second")
    finally:
        process.kill()
        await process.communicate()
    assert lines[0].split()[:2] == ["NAME", "DATA"]
