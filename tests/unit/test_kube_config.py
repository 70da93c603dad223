"""load_config / ClientConfig: kubeconfig parsing, precedence, TLS, refreshing credentials."""

from __future__ import annotations

import base64
import os
import ssl
import stat
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from servicegroup.clock import FakeClock
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import (
    BasicAuth,
    ClientConfig,
    ConfigError,
    ExecCredentials,
    FileToken,
    NoCredentials,
    StaticToken,
    load_config,
)
from servicegroup.kube.resources import NODES
from servicegroup.metrics import Metrics

# A throwaway CA, a server certificate for 127.0.0.1 / kubernetes.test and a client
# certificate (CN=alice, O=devs), valid 2000-2100. Test material only.
CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBcTCCARegAwIBAgIBATAKBggqhkjOPQQDAjAfMR0wGwYDVQQDDBRzZXJ2aWNl
Z3JvdXAtdGVzdC1jYTAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFow
HzEdMBsGA1UEAwwUc2VydmljZWdyb3VwLXRlc3QtY2EwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAAQ6XWmq2xiJU2sf/75ug33o9K2XqA0HPjdLiRiIKd7ut/swZ1QI
a2n+6MBqiSb3BEO4fbf72ePxEy34cvT/K20xo0IwQDAPBgNVHRMBAf8EBTADAQH/
MB0GA1UdDgQWBBRJPf099w4TEfvTasPlEQFommqQ5jAOBgNVHQ8BAf8EBAMCAQYw
CgYIKoZIzj0EAwIDSAAwRQIhAPEXUmBGX+vJlCr9+kfFgHYsHsKwY4ZwxyvMVv9I
jhhKAiAtfUx2IznLjtviHPducnfKknP+D5tPSH1oHTaJpjm1Kw==
-----END CERTIFICATE-----
"""
SERVER_CERT_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBqjCCAVCgAwIBAgIBAjAKBggqhkjOPQQDAjAfMR0wGwYDVQQDDBRzZXJ2aWNl
Z3JvdXAtdGVzdC1jYTAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFow
FDESMBAGA1UEAwwJMTI3LjAuMC4xMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
zkwCNAA5v7KVCOlwBt27q6DJ0ZdBk5rEiStqMPiX1dONdogzK8qGUHC+SiE7aOQy
ZfBLyM21Ti7rA//r0tBPdaOBhTCBgjAJBgNVHRMEAjAAMCAGA1UdEQQZMBeHBH8A
AAGCD2t1YmVybmV0ZXMudGVzdDATBgNVHSUEDDAKBggrBgEFBQcDATAdBgNVHQ4E
FgQUR+1zYTkBUQXoBo4ss148sMqNAW4wHwYDVR0jBBgwFoAUST39PfcOExH702rD
5REBaJpqkOYwCgYIKoZIzj0EAwIDSAAwRQIhAKToesqDKbpaY5CKr0R7YIfMQn3V
LhR09CJP0a0SDKk4AiAvQ5XSfiZWsHo9rWFG0Y/ANv2Ry0bmXqP2Tm8kyG5zZQ==
-----END CERTIFICATE-----
"""
SERVER_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfUs7mHRdfmNv9tuk
y3Zf2VYPdZ8CL23CPVJ206g8Am+hRANCAATOTAI0ADm/spUI6XAG3buroMnRl0GT
msSJK2ow+JfV0412iDMryoZQcL5KITto5DJl8EvIzbVOLusD/+vS0E91
-----END PRIVATE KEY-----
"""
CLIENT_CERT_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIBAzAKBggqhkjOPQQDAjAfMR0wGwYDVQQDDBRzZXJ2aWNl
Z3JvdXAtdGVzdC1jYTAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFow
HzEOMAwGA1UEAwwFYWxpY2UxDTALBgNVBAoMBGRldnMwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAARRM3zCFzYz2u6YGeAnRBMb/M780bR+J8MEEUh1G8CfTTHuXduB
qTNLR3yMwbgKVMV+iPb675CCwtO8fnduSA34o2IwYDAJBgNVHRMEAjAAMBMGA1Ud
JQQMMAoGCCsGAQUFBwMCMB0GA1UdDgQWBBSGN8a4q+Jz+51mBOIlOEEO2J2H+zAf
BgNVHSMEGDAWgBRJPf099w4TEfvTasPlEQFommqQ5jAKBggqhkjOPQQDAgNIADBF
AiB+Xn9QYakllAH9EFa6e+JlNnL5CAIC1fOBqwyA1kqXlAIhAPv5DwjDCec9ptqo
e5UoUzcxFMItT0aTEski4Km8jDPL
-----END CERTIFICATE-----
"""
CLIENT_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfW4XrTmI4LgM6nUl
APaIV17lygAY90gAmpnCPjJ5Yg6hRANCAARRM3zCFzYz2u6YGeAnRBMb/M780bR+
J8MEEUh1G8CfTTHuXduBqTNLR3yMwbgKVMV+iPb675CCwtO8fnduSA34
-----END PRIVATE KEY-----
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(
    *,
    server: str = "https://k8s.example:6443",
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    name: str = "main",
    namespace: str | None = None,
    current: str | None = "main",
) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace:
        context["namespace"] = namespace
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": name, "user": user or {}}],
        "contexts": [{"name": name, "context": context}],
    }
    if current is not None:
        doc["current-context"] = current
    return doc


def write(path: Path, doc: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


async def load(path: Path | None = None, **kwargs: Any) -> ClientConfig:
    kwargs.setdefault("environ", {})
    kwargs.setdefault("home", "/nonexistent-home")
    return await load_config(kubeconfig=str(path) if path else None, **kwargs)


# --- kubeconfig contents


async def test_token_and_namespace_from_kubeconfig(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", kubeconfig(user={"token": "abc"}, namespace="team-a"))
    config = await load(path)
    assert config.server == "https://k8s.example:6443"
    assert config.namespace == "team-a"
    assert isinstance(config.credentials, StaticToken)
    assert await config.headers() == {"Authorization": "Bearer abc"}
    assert config.ssl is True  # system trust store, verification on
    assert "context 'main'" in config.source


async def test_basic_auth(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", kubeconfig(user={"username": "u", "password": "p"}))
    config = await load(path)
    assert isinstance(config.credentials, BasicAuth)
    assert await config.headers() == {"Authorization": "Basic dTpw"}


async def test_context_override_and_unknown_context(tmp_path: Path) -> None:
    doc = kubeconfig(user={"token": "one"})
    doc["clusters"].append({"name": "other", "cluster": {"server": "https://other:443"}})
    doc["users"].append({"name": "other", "user": {"token": "two"}})
    doc["contexts"].append({"name": "other", "context": {"cluster": "other", "user": "other"}})
    path = write(tmp_path / "kc", doc)
    config = await load(path, context="other")
    assert config.server == "https://other:443"
    assert await config.headers() == {"Authorization": "Bearer two"}
    with pytest.raises(ConfigError, match=r"context 'nope' not found \(contexts: main, other\)"):
        await load(path, context="nope")


async def test_token_file_is_reread_when_it_changes(tmp_path: Path, clock: FakeClock) -> None:
    token = write(tmp_path / "secrets" / "token", "first\n")
    # A relative tokenFile is relative to the kubeconfig's directory.
    path = write(tmp_path / "kc", kubeconfig(user={"tokenFile": "secrets/token"}))
    config = await load(path, clock=clock)
    assert isinstance(config.credentials, FileToken)
    assert await config.headers() == {"Authorization": "Bearer first"}
    token.write_text("second-token\n")
    assert await config.headers() == {"Authorization": "Bearer second-token"}


async def test_ca_and_client_cert_data_make_a_working_mtls_connection(
    tmp_path: Path, metrics: Metrics
) -> None:
    (tmp_path / "server.crt").write_text(SERVER_CERT_PEM)
    (tmp_path / "server.key").write_text(SERVER_KEY_PEM)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server_ctx.load_verify_locations(cadata=CA_PEM)
    server_ctx.verify_mode = ssl.CERT_REQUIRED

    async def whoami(request: web.Request) -> web.Response:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peercert")
        subject = dict(item[0] for item in peer["subject"])
        return web.json_response(
            {"cn": subject["commonName"], "auth": request.headers.get("Authorization")}
        )

    app = web.Application()
    app.router.add_get("/api/v1/nodes/{name}", whoami)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_ctx)
    try:
        path = write(
            tmp_path / "kc",
            kubeconfig(
                server=f"https://127.0.0.1:{server.port}",
                cluster={"certificate-authority-data": b64(CA_PEM)},
                user={
                    "client-certificate-data": b64(CLIENT_CERT_PEM),
                    "client-key-data": b64(CLIENT_KEY_PEM),
                    "token": "tok",
                },
            ),
        )
        config = await load(path)
        assert isinstance(config.ssl, ssl.SSLContext)
        assert {c["serialNumber"] for c in config.ssl.get_ca_certs()} == {"01"}
        async with KubeClient(config=config, metrics=metrics, user_agent="t") as kube:
            assert await kube.get(NODES, "n") == {"cn": "alice", "auth": "Bearer tok"}

        # tls-server-name: verify the certificate against another name it carries.
        renamed = write(
            tmp_path / "kc2",
            kubeconfig(
                server=f"https://127.0.0.1:{server.port}",
                cluster={
                    "certificate-authority-data": b64(CA_PEM),
                    "tls-server-name": "kubernetes.test",
                },
                user={
                    "client-certificate-data": b64(CLIENT_CERT_PEM),
                    "client-key-data": b64(CLIENT_KEY_PEM),
                },
            ),
        )
        config = await load(renamed)
        assert config.tls_server_name == "kubernetes.test"
        async with KubeClient(config=config, metrics=metrics, user_agent="t") as kube:
            assert (await kube.get(NODES, "n"))["cn"] == "alice"
    finally:
        await server.close()


async def test_client_cert_files_relative_to_kubeconfig_and_no_temp_files_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_text(CA_PEM)
    (tmp_path / "pki" / "client.crt").write_text(CLIENT_CERT_PEM)
    (tmp_path / "pki" / "client.key").write_text(CLIENT_KEY_PEM)
    path = write(
        tmp_path / "kc",
        kubeconfig(
            cluster={"certificate-authority": "pki/ca.crt"},
            user={"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
        ),
    )
    config = await load(path)
    assert isinstance(config.ssl, ssl.SSLContext)
    assert isinstance(config.credentials, NoCredentials)

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    with_data = write(
        tmp_path / "kc-data",
        kubeconfig(
            user={
                "client-certificate-data": b64(CLIENT_CERT_PEM),
                "client-key-data": b64(CLIENT_KEY_PEM),
            }
        ),
    )
    assert isinstance((await load(with_data)).ssl, ssl.SSLContext)
    assert list(scratch.iterdir()) == []  # the key material was written and removed


async def test_insecure_skip_verify(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", kubeconfig(cluster={"insecure-skip-tls-verify": True}))
    assert (await load(path)).ssl is False
    both = write(
        tmp_path / "kc2",
        kubeconfig(
            cluster={"insecure-skip-tls-verify": True, "certificate-authority-data": b64(CA_PEM)}
        ),
    )
    with pytest.raises(ConfigError, match="mutually exclusive"):
        await load(both)


# --- exec plugins


def exec_plugin(tmp_path: Path, *, fail: bool = False) -> Path:
    script = tmp_path / "bin" / "cred-plugin"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, os, pathlib, sys
            if {fail!r}:
                print("no credentials for you", file=sys.stderr)
                sys.exit(3)
            counter = pathlib.Path(os.environ["COUNTER_FILE"])
            n = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(n))
            info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
            assert info["kind"] == "ExecCredential" and info["spec"]["interactive"] is False
            status = {{"token": f"{{os.environ['PREFIX']}}-{{n}}-{{sys.argv[1]}}"}}
            if os.environ.get("EXPIRES"):
                status["expirationTimestamp"] = os.environ["EXPIRES"]
            print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                              "status": status}}))
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.parametrize("api_version", ["v1", "v1beta1"])
async def test_exec_plugin_cached_until_expiry_and_rerun_on_invalidate(
    tmp_path: Path, clock: FakeClock, api_version: str
) -> None:
    exec_plugin(tmp_path)
    expires = (clock.now() + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    user = {
        "exec": {
            "apiVersion": f"client.authentication.k8s.io/{api_version}",
            "command": "./bin/cred-plugin",  # relative to the kubeconfig
            "args": ["arg"],
            "env": [
                {"name": "PREFIX", "value": "tok"},
                {"name": "COUNTER_FILE", "value": str(tmp_path / "count")},
                {"name": "EXPIRES", "value": expires},
            ],
            "interactiveMode": "Never",
        }
    }
    config = await load(write(tmp_path / "kc", kubeconfig(user=user)), clock=clock)
    assert isinstance(config.credentials, ExecCredentials)
    assert await config.headers() == {"Authorization": "Bearer tok-1-arg"}
    assert await config.headers() == {"Authorization": "Bearer tok-1-arg"}  # cached
    clock.advance(9 * 60)
    assert await config.headers() == {"Authorization": "Bearer tok-1-arg"}
    clock.advance(61)  # past expirationTimestamp
    assert await config.headers() == {"Authorization": "Bearer tok-2-arg"}
    assert config.invalidate() is True  # what the client does on a 401
    assert await config.headers() == {"Authorization": "Bearer tok-3-arg"}
    assert (tmp_path / "count").read_text() == "3"


async def test_exec_plugin_failure_is_a_clear_error(tmp_path: Path, clock: FakeClock) -> None:
    exec_plugin(tmp_path, fail=True)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(tmp_path / "bin" / "cred-plugin"),
            "installHint": "install cred-plugin from your admin",
        }
    }
    config = await load(write(tmp_path / "kc", kubeconfig(user=user)), clock=clock)
    with pytest.raises(ConfigError) as info:
        await config.headers()
    message = str(info.value)
    assert "exited with 3" in message
    assert "no credentials for you" in message
    assert "install cred-plugin from your admin" in message


async def test_exec_plugin_bad_api_version(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}
    with pytest.raises(ConfigError, match="v1alpha1' is not supported"):
        await load(write(tmp_path / "kc", kubeconfig(user=user)))


# --- in-cluster


def service_account(directory: Path, token: str = "sa-token-1") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_text(CA_PEM)
    (directory / "namespace").write_text("edge-system")
    return directory


IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


async def test_in_cluster_config(tmp_path: Path, clock: FakeClock) -> None:
    sa = service_account(tmp_path / "sa")
    config = await load(environ=IN_CLUSTER_ENV, in_cluster_dir=sa, clock=clock)
    assert config.server == "https://10.96.0.1:443"
    assert config.namespace == "edge-system"
    assert isinstance(config.ssl, ssl.SSLContext)
    assert await config.headers() == {"Authorization": "Bearer sa-token-1"}
    ipv6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert (await load(environ=ipv6, in_cluster_dir=sa, clock=clock)).server == (
        "https://[fd00::1]:443"
    )


async def test_in_cluster_token_rotation_is_picked_up(tmp_path: Path, clock: FakeClock) -> None:
    sa = service_account(tmp_path / "sa")
    config = await load(environ=IN_CLUSTER_ENV, in_cluster_dir=sa, clock=clock)
    assert await config.headers() == {"Authorization": "Bearer sa-token-1"}

    # kubelet's projected volume swaps in a new file: picked up at once.
    new = sa / "token.new"
    new.write_text("sa-token-2")
    os.replace(new, sa / "token")
    assert await config.headers() == {"Authorization": "Bearer sa-token-2"}

    # Even a rewrite that keeps inode, size and mtime is seen within a minute, and keeps
    # working long past the first hour.
    token = sa / "token"
    for hour in range(3, 6):
        before = token.stat()
        with token.open("r+") as handle:
            handle.write(f"sa-token-{hour}")
        os.utime(token, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert await config.headers() == {"Authorization": f"Bearer sa-token-{hour - 1}"}
        clock.advance(3600)
        assert await config.headers() == {"Authorization": f"Bearer sa-token-{hour}"}


async def test_in_cluster_without_token_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "sa"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"service-account token .* not found"):
        await load(environ=IN_CLUSTER_ENV, in_cluster_dir=empty)


# --- precedence


@pytest.fixture
async def places(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    home = tmp_path / "home"
    write(home / ".kube" / "config", kubeconfig(server="https://home:1", user={"token": "h"}))
    env_a = write(tmp_path / "a.yaml", kubeconfig(server="https://env-a:1", user={"token": "a"}))
    explicit = write(tmp_path / "x.yaml", kubeconfig(server="https://explicit:1"))
    sa = service_account(tmp_path / "sa")
    yield {"home": home, "env_a": env_a, "explicit": explicit, "sa": sa}


async def test_precedence_explicit_then_kubeconfig_env_then_in_cluster_then_home(
    places: dict[str, Any],
) -> None:
    env = {"KUBECONFIG": str(places["env_a"]), **IN_CLUSTER_ENV}
    common = {"home": places["home"], "in_cluster_dir": places["sa"]}
    assert (await load(places["explicit"], environ=env, **common)).server == "https://explicit:1"
    assert (await load(environ=env, **common)).server == "https://env-a:1"
    assert (await load(environ=IN_CLUSTER_ENV, **common)).server == "https://10.96.0.1:443"
    assert (await load(environ={}, **common)).server == "https://home:1"
    # $KUBECONFIG listing only missing files falls through to the next source.
    missing = {"KUBECONFIG": "/nope/a:/nope/b"}
    assert (await load(environ=missing, **common)).server == "https://home:1"


async def test_kubeconfig_env_merges_files_first_wins(tmp_path: Path) -> None:
    first = kubeconfig(server="https://first:1", user={"token": "first"}, current=None)
    second = kubeconfig(server="https://second:1", user={"token": "second"}, current="main")
    second["clusters"].append({"name": "extra", "cluster": {"server": "https://extra:1"}})
    second["contexts"].append({"name": "extra", "context": {"cluster": "extra", "user": "main"}})
    a = write(tmp_path / "a", first)
    b = write(tmp_path / "b", second)
    env = {"KUBECONFIG": f"{a}{os.pathsep}/missing{os.pathsep}{b}"}
    config = await load(environ=env)
    # current-context comes from b (a sets none); cluster/user "main" from a (first wins).
    assert config.server == "https://first:1"
    assert await config.headers() == {"Authorization": "Bearer first"}
    extra = await load(environ=env, context="extra")
    assert extra.server == "https://extra:1"
    assert await extra.headers() == {"Authorization": "Bearer first"}


# --- errors


async def test_nothing_found_lists_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        await load_config(environ={}, home=tmp_path)
    message = str(info.value)
    assert "no Kubernetes configuration found" in message
    assert "$KUBECONFIG (unset)" in message
    assert "in-cluster" in message
    assert str(tmp_path / ".kube" / "config") in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("clusters: [unclosed", "is not valid YAML"),
        ("- just\n- a list\n", "is not a mapping"),
        (kubeconfig(current=None), "no current-context is set"),
        (kubeconfig(server=""), "has no server"),
        (kubeconfig(server="k8s.example:6443"), "must be an http:// or https:// URL"),
        (kubeconfig(user={"token": "t", "username": "u"}), "more than one authentication"),
        (kubeconfig(cluster={"certificate-authority-data": "!!notbase64"}), "not valid base64"),
        (
            kubeconfig(cluster={"certificate-authority-data": b64("not a cert")}),
            "cannot load the certificate authority",
        ),
        (kubeconfig(user={"client-certificate-data": b64(CLIENT_CERT_PEM)}), "both a certif"),
        (kubeconfig(user={"auth-provider": {"name": "oidc"}}), "auth-provider 'oidc'"),
    ],
)
async def test_invalid_kubeconfig_messages(
    tmp_path: Path, content: dict[str, Any] | str, expected: str
) -> None:
    path = write(tmp_path / "broken-kubeconfig", content)
    with pytest.raises(ConfigError) as info:
        await load(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


async def test_missing_references_and_explicit_path(tmp_path: Path) -> None:
    doc = kubeconfig()
    doc["contexts"][0]["context"]["cluster"] = "ghost"
    path = write(tmp_path / "kc", doc)
    with pytest.raises(ConfigError, match="refers to cluster 'ghost', which is not defined"):
        await load(path)
    with pytest.raises(ConfigError, match="given explicitly"):
        await load(tmp_path / "does-not-exist")


async def test_for_server(tmp_path: Path) -> None:
    plain = ClientConfig.for_server("http://127.0.0.1:8443/", token="t")
    assert plain.server == "http://127.0.0.1:8443"
    assert await plain.headers() == {"Authorization": "Bearer t"}
    assert plain.ssl is True
    hub = ClientConfig.for_server("https://hub:443", ca_data=CA_PEM.encode())
    assert isinstance(hub.ssl, ssl.SSLContext)
    assert await hub.headers() == {}
    assert ClientConfig.for_server("https://x", insecure=True).ssl is False
