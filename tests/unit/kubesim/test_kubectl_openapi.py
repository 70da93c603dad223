"""kubectl v1.32 against a tiny stub server that serves kubesim's OpenAPI documents and Tables.

The stub only knows discovery, `/openapi/*`, echoing writes and rendering lists as Tables:
what is under test is that kubectl accepts our documents (no download or validation error),
asks for server-side field validation because our PATCH operations declare
`fieldValidation`, and prints the columns our Tables carry.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from servicegroup.kubesim import tables
from servicegroup.kubesim.openapi import OpenAPIBuilder

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl")
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "deploymentgrids.superedge.io"},
    "spec": {
        "group": "superedge.io",
        "scope": "Namespaced",
        "names": {
            "kind": "DeploymentGrid",
            "plural": "deploymentgrids",
            "singular": "deploymentgrid",
            "shortNames": ["dg"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Key", "type": "string", "jsonPath": ".spec.gridUniqKey"},
                    {"name": "Units", "type": "integer", "jsonPath": ".status.units"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "DeploymentGrid runs a Deployment per NodeUnit.",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "gridUniqKey": {
                                        "type": "string",
                                        "description": "Node label key that defines NodeUnits.",
                                    },
                                    "template": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"units": {"type": "integer"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}

BUILTINS = [
    ("", "v1", "Namespace", "namespaces", False),
    ("", "v1", "Pod", "pods", True),
    ("", "v1", "Service", "services", True),
    ("apps", "v1", "Deployment", "deployments", True),
]


def _resource(plural: str, kind: str, namespaced: bool, short: list[str] | None = None) -> dict:
    return {
        "name": plural,
        "singularName": kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortNames": short or [],
    }


DISCOVERY: dict[str, dict[str, Any]] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": f"{group}/v1", "version": "v1"},
            }
            for group in ("apps", "superedge.io")
        ],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            _resource("namespaces", "Namespace", False, ["ns"]),
            _resource("pods", "Pod", True, ["po"]),
            _resource("services", "Service", True, ["svc"]),
        ],
    },
    "/apis/apps/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "apps/v1",
        "resources": [_resource("deployments", "Deployment", True, ["deploy"])],
    },
    "/apis/superedge.io/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "superedge.io/v1",
        "resources": [_resource("deploymentgrids", "DeploymentGrid", True, ["dg"])],
    },
}

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
        },
        "strategy": {},
    },
}


@dataclass
class Stub:
    """The stub server's state: the documents it serves and every request it saw."""

    openapi: OpenAPIBuilder
    lists: dict[str, tuple[str, str, list[dict[str, Any]], list[dict[str, Any]] | None]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    patches: list[str] = field(default_factory=list)
    url: str = ""

    def seen(self, method: str, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"].startswith(prefix)]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _app(stub: Stub) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        stub.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "accept": request.headers.get("Accept", ""),
                "content_type": request.headers.get("Content-Type", ""),
            }
        )
        path = request.path
        if path == "/version":
            return _json({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if path in DISCOVERY:
            return _json(DISCOVERY[path])
        if path == "/openapi/v3":
            return _json(stub.openapi.v3_index())
        if path.startswith("/openapi/v3/"):
            document = stub.openapi.v3_group_version(path.removeprefix("/openapi/v3/"))
            return _json(document) if document else _json({}, 404)
        if path == "/openapi/v2":
            if "json" not in request.headers.get("Accept", "json"):
                return web.Response(status=406)
            return _json(stub.openapi.v2())
        if request.method == "PATCH" and path in stub.objects:
            stub.patches.append(await request.text())
            return _json(stub.objects[path])
        if request.method == "GET" and path in stub.objects:
            return _json(stub.objects[path])
        if request.method in ("POST", "PUT", "PATCH"):
            body = yaml.safe_load(await request.text()) or {}
            body.setdefault("metadata", {})["uid"] = "0d5b4c1e-0000-4000-8000-000000000001"
            body["metadata"]["creationTimestamp"] = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
            return _json(body, 201 if request.method == "POST" else 200)
        if request.method == "GET" and path in stub.lists:
            group, kind, items, columns = stub.lists[path]
            if "as=Table" in request.headers.get("Accept", ""):
                table = tables.to_table(
                    group=group,
                    kind=kind,
                    objects=items,
                    list_meta={"resourceVersion": "42"},
                    columns=columns,
                    include_object=request.query.get("includeObject", "Metadata"),
                    now=NOW,
                )
                return _json(table)
            return _json({"kind": f"{kind}List", "metadata": {}, "items": items})
        return _json(
            {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}, 404
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    builder = OpenAPIBuilder()
    for entry in BUILTINS:
        builder.add_builtin(*entry)
    builder.add_crd(CRD)
    created = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    deployment = json.loads(json.dumps(DEPLOYMENT))
    deployment["metadata"]["creationTimestamp"] = created
    deployment["status"] = {
        "replicas": 2,
        "readyReplicas": 1,
        "updatedReplicas": 2,
        "availableReplicas": 1,
    }
    grid = {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "demo", "namespace": "default", "creationTimestamp": created},
        "spec": {"gridUniqKey": "zone"},
        "status": {"units": 3},
    }
    columns = CRD["spec"]["versions"][0]["additionalPrinterColumns"]
    state = Stub(
        openapi=builder,
        lists={
            "/apis/apps/v1/namespaces/default/deployments": (
                "apps",
                "Deployment",
                [deployment],
                None,
            ),
            "/apis/superedge.io/v1/namespaces/default/deploymentgrids": (
                "superedge.io",
                "DeploymentGrid",
                [grid],
                columns,
            ),
        },
    )
    runner = web.AppRunner(_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def kubectl(
    stub: Stub, tmp_path: Path, *args: str, stdin: str | None = None
) -> tuple[int, str, str]:
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stub", "cluster": {"server": stub.url}}],
                "users": [{"name": "stub", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": "stub",
                        "context": {"cluster": "stub", "user": "stub", "namespace": "default"},
                    }
                ],
                "current-context": "stub",
            }
        )
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "KUBECACHEDIR": str(tmp_path / "cache"),
    }
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(config),
        "--cache-dir",
        str(tmp_path / "cache"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_create_dry_run_server_uses_server_side_field_validation(
    stub: Stub, tmp_path: Path
) -> None:
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(yaml.safe_dump(DEPLOYMENT))
    code, out, err = await kubectl(
        stub, tmp_path, "create", "--dry-run=server", "-f", str(manifest), "-o", "name"
    )
    assert code == 0, err
    assert out.strip() == "deployment.apps/web"
    assert "openapi" not in err.lower()
    # kubectl read the apps/v1 document (by its hashed URL) to decide on field validation.
    assert stub.seen("GET", "/openapi/v3/apis/apps/v1")
    posts = stub.seen("POST", "/apis/apps/v1/namespaces/default/deployments")
    assert len(posts) == 1
    assert posts[0]["query"].get("fieldValidation") == "Strict"
    assert posts[0]["query"].get("dryRun") == "All"


async def test_apply_server_side_sends_apply_patch_with_strict_validation(
    stub: Stub, tmp_path: Path
) -> None:
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(yaml.safe_dump(DEPLOYMENT))
    code, out, err = await kubectl(
        stub, tmp_path, "apply", "--server-side", "--dry-run=server", "-f", str(manifest)
    )
    assert code == 0, err
    assert "deployment.apps/web serverside-applied" in out
    patches = stub.seen("PATCH", "/apis/apps/v1/namespaces/default/deployments/web")
    assert len(patches) == 1
    assert patches[0]["content_type"].startswith("application/apply-patch+yaml")
    assert patches[0]["query"]["fieldValidation"] == "Strict"
    assert patches[0]["query"]["fieldManager"] == "kubectl"


async def test_create_custom_resource_with_field_validation(stub: Stub, tmp_path: Path) -> None:
    grid = {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": "demo"},
        "spec": {"gridUniqKey": "zone", "template": {"replicas": 1}},
    }
    manifest = tmp_path / "grid.yaml"
    manifest.write_text(yaml.safe_dump(grid))
    code, out, err = await kubectl(
        stub, tmp_path, "create", "--dry-run=server", "-f", str(manifest), "-o", "name"
    )
    assert code == 0, err
    assert out.strip() == "deploymentgrid.superedge.io/demo"
    assert stub.seen("GET", "/openapi/v3/apis/superedge.io/v1")
    posts = stub.seen("POST", "/apis/superedge.io/v1/namespaces/default/deploymentgrids")
    assert posts[0]["query"].get("fieldValidation") == "Strict"


async def test_explain_reads_builtin_and_crd_schemas(stub: Stub, tmp_path: Path) -> None:
    code, out, err = await kubectl(stub, tmp_path, "explain", "deployment.spec.replicas")
    assert code == 0, err
    assert "GROUP:      apps" in out
    assert "FIELD: replicas <integer>" in out
    assert "Number of desired pods" in out
    code, out, err = await kubectl(stub, tmp_path, "explain", "deploymentgrids.spec")
    assert code == 0, err
    assert "gridUniqKey\t<string>" in out
    assert "Node label key that defines NodeUnits." in out
    code, out, err = await kubectl(stub, tmp_path, "explain", "pods.spec.containers")
    assert code == 0, err
    assert "FIELD: containers <[]Container>" in out


async def test_get_deployments_prints_server_side_table(stub: Stub, tmp_path: Path) -> None:
    code, out, err = await kubectl(stub, tmp_path, "get", "deployments")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split() == ["web", "1/2", "2", "1", "5m"]
    request = stub.seen("GET", "/apis/apps/v1/namespaces/default/deployments")[-1]
    assert "as=Table;v=v1;g=meta.k8s.io" in request["accept"]
    code, out, err = await kubectl(stub, tmp_path, "get", "deployments", "-o", "wide")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert out.splitlines()[1].split()[-3:] == ["nginx", "nginx:1.25", "app=web"]


async def test_get_custom_resources_prints_printer_columns(stub: Stub, tmp_path: Path) -> None:
    code, out, err = await kubectl(stub, tmp_path, "get", "dg")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KEY", "UNITS", "AGE"]
    assert lines[1].split() == ["demo", "zone", "3", "5m"]


async def test_client_side_apply_uses_patch_merge_keys(stub: Stub, tmp_path: Path) -> None:
    live = json.loads(json.dumps(DEPLOYMENT))
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(DEPLOYMENT)
    }
    live["metadata"]["uid"] = "0d5b4c1e-0000-4000-8000-000000000002"
    stub.objects["/apis/apps/v1/namespaces/default/deployments/web"] = live
    desired = json.loads(json.dumps(DEPLOYMENT))
    desired["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(yaml.safe_dump(desired))
    code, out, err = await kubectl(stub, tmp_path, "apply", "-f", str(manifest))
    assert code == 0, err
    assert "deployment.apps/web configured" in out
    patch = stub.seen("PATCH", "/apis/apps/v1/namespaces/default/deployments/web")[0]
    assert patch["content_type"].startswith("application/strategic-merge-patch+json")
    body = json.loads(stub.patches[0])
    containers = body["spec"]["template"]["spec"]
    # Only a client that knows `containers` merges by `name` emits this directive.
    assert containers["$setElementOrder/containers"] == [{"name": "nginx"}, {"name": "log"}]
    assert containers["containers"] == [{"image": "busybox", "name": "log"}]
    assert not stub.seen("GET", "/openapi/v2")
