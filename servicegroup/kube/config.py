"""Where the API server is and how to authenticate: kubeconfig and in-cluster loading.

Owns: `ClientConfig` (server URL, TLS settings, a refreshing credential source),
`load_config()` and the credential sources (bearer token, token file, exec plugin, basic).

Invariants:
- Loading precedence is: the explicit `kubeconfig` path (must exist), then `$KUBECONFIG`
  (colon-separated; every listed file that exists is merged, as kubectl does: for each
  cluster/user/context name and for `current-context`, the first file that sets it wins;
  missing files are skipped), then in-cluster (`KUBERNETES_SERVICE_HOST`/`_PORT` and the
  service-account files), then `~/.kube/config`. Nothing found -> `ConfigError` naming
  everything that was tried.
- Relative paths in a kubeconfig file (certificate files, token files, exec commands that
  contain a `/`) are resolved against that file's directory, as client-go does.
- `*-data` fields never touch the disk except a client key/certificate pair, which the
  `ssl` module only loads from files: it goes to a private 0600 temp file that is deleted
  before `load_config` returns.
- Credentials refresh themselves: a token file is re-read when it changes and at least every
  `TOKEN_FILE_MAX_AGE` seconds (projected service-account tokens rotate hourly); an exec
  plugin's credential is cached until its `expirationTimestamp` and re-run after
  `invalidate()` (the client calls it on 401 and retries once when it returns True).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from ssl import SSLContext
from typing import Any, Protocol

import orjson
import yaml

from servicegroup.clock import Clock, RealClock

TOKEN_FILE_MAX_AGE = 60.0
IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_TIMEOUT = 60.0


class ConfigError(Exception):
    """The configuration is missing or unusable; the message says which file and why."""


class Credentials(Protocol):
    """A source of authentication headers, asked before every request."""

    async def headers(self) -> dict[str, str]:
        """Headers to send (e.g. `Authorization`), refreshed as the source requires."""
        ...

    def invalidate(self) -> bool:
        """Drop cached credentials after a 401; True when a retry may present new ones."""
        ...


class NoCredentials:
    """Anonymous, or authenticated by a client certificate only."""

    async def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> bool:
        return False


@dataclass(frozen=True)
class StaticToken:
    """A bearer token fixed for the life of the process (kubeconfig `token`)."""

    token: str

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def invalidate(self) -> bool:
        return False


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic authentication (kubeconfig `username` / `password`)."""

    username: str
    password: str

    async def headers(self) -> dict[str, str]:
        raw = f"{self.username}:{self.password}".encode()
        return {"Authorization": f"Basic {base64.b64encode(raw).decode('ascii')}"}

    def invalidate(self) -> bool:
        return False


class FileToken:
    """A bearer token read from a file, re-read when the file changes or gets old.

    The file is stat()ed on each call (cheap; catches the atomic symlink swap kubelet does
    for projected tokens) and re-read anyway every `max_age` seconds, in case a rewrite kept
    the same size and mtime. A read failure keeps the last good token, as client-go does.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock,
        max_age: float = TOKEN_FILE_MAX_AGE,
        fallback: str | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._max_age = max_age
        self._token = fallback
        self._signature: tuple[int, int, int] | None = None
        self._read_at: float | None = None

    def _stat_signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _reload(self) -> None:
        signature = self._stat_signature()
        try:
            token = self.path.read_text().strip()
        except OSError as err:
            if self._token is None:
                raise ConfigError(f"cannot read token file {self.path}: {err}") from err
            return
        if token:
            self._token = token
        self._signature = signature
        self._read_at = self._clock.monotonic()

    def current(self) -> str:
        """The token, re-read first when the file changed or the last read is too old."""
        stale = self._read_at is None or self._clock.monotonic() - self._read_at >= self._max_age
        if stale or self._stat_signature() != self._signature:
            self._reload()
        if not self._token:
            raise ConfigError(f"token file {self.path} is empty")
        return self._token

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.current()}"}

    def invalidate(self) -> bool:
        before = self._token
        self._read_at = None
        try:
            return self.current() != before
        except ConfigError:
            return False


@dataclass(frozen=True)
class ExecConfig:
    """The `exec` stanza of a kubeconfig user."""

    command: str
    api_version: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    install_hint: str = ""
    interactive_mode: str = "IfAvailable"
    provide_cluster_info: bool = False
    cluster: Mapping[str, Any] | None = None


class ExecCredentials:
    """A credential plugin (client.authentication.k8s.io ExecCredential, v1 or v1beta1).

    The plugin runs with the kubeconfig's env added to ours and `KUBERNETES_EXEC_INFO` set;
    its token is cached until `status.expirationTimestamp` (forever when absent) or until
    `invalidate()`. Concurrent callers share one run. Plugins that return client
    certificates instead of a token are refused: TLS settings are fixed per session.
    """

    def __init__(self, spec: ExecConfig, *, clock: Clock) -> None:
        self.spec = spec
        self._clock = clock
        self._token: str | None = None
        self._expires: datetime | None = None
        self._lock = asyncio.Lock()

    def _valid(self) -> bool:
        if self._token is None:
            return False
        return self._expires is None or self._clock.now() < self._expires

    async def headers(self) -> dict[str, str]:
        if not self._valid():
            async with self._lock:
                if not self._valid():
                    await self._run()
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        self._token = None
        self._expires = None
        return True

    async def _run(self) -> None:
        spec = self.spec
        if spec.interactive_mode == "Always":
            raise ConfigError(
                f"exec plugin {spec.command!r} requires an interactive terminal "
                "(interactiveMode: Always), which a controller never has"
            )
        info: dict[str, Any] = {
            "apiVersion": spec.api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
        if spec.provide_cluster_info and spec.cluster is not None:
            info["spec"]["cluster"] = dict(spec.cluster)
        env = dict(os.environ)
        env.update(dict(spec.env))
        env["KUBERNETES_EXEC_INFO"] = orjson.dumps(info).decode()
        hint = f" ({spec.install_hint.strip()})" if spec.install_hint else ""
        try:
            proc = await asyncio.create_subprocess_exec(
                spec.command,
                *spec.args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as err:
            raise ConfigError(f"cannot run exec plugin {spec.command!r}: {err}{hint}") from err
        try:
            async with asyncio.timeout(EXEC_TIMEOUT):
                stdout, stderr = await proc.communicate()
        except TimeoutError as err:
            proc.kill()
            await proc.wait()
            raise ConfigError(f"exec plugin {spec.command!r} timed out") from err
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip()[-500:]
            raise ConfigError(
                f"exec plugin {spec.command!r} exited with {proc.returncode}: {tail}{hint}"
            )
        self._token, self._expires = self._parse(stdout)

    def _parse(self, stdout: bytes) -> tuple[str, datetime | None]:
        command = self.spec.command
        try:
            cred = orjson.loads(stdout)
        except orjson.JSONDecodeError as err:
            raise ConfigError(f"exec plugin {command!r} printed invalid JSON: {err}") from err
        if not isinstance(cred, dict) or cred.get("kind") != "ExecCredential":
            raise ConfigError(f"exec plugin {command!r} did not print an ExecCredential")
        if cred.get("apiVersion") != self.spec.api_version:
            raise ConfigError(
                f"exec plugin {command!r} answered apiVersion {cred.get('apiVersion')!r}, "
                f"expected {self.spec.api_version!r}"
            )
        status = cred.get("status")
        if not isinstance(status, dict):
            raise ConfigError(f"exec plugin {command!r}: ExecCredential has no status")
        token = status.get("token")
        if not isinstance(token, str) or not token:
            if status.get("clientCertificateData"):
                raise ConfigError(
                    f"exec plugin {command!r} returned a client certificate; only token "
                    "credentials are supported"
                )
            raise ConfigError(f"exec plugin {command!r}: ExecCredential status has no token")
        expires: datetime | None = None
        raw_expiry = status.get("expirationTimestamp")
        if raw_expiry:
            try:
                expires = datetime.fromisoformat(str(raw_expiry).replace("Z", "+00:00"))
            except ValueError as err:
                raise ConfigError(
                    f"exec plugin {command!r}: bad expirationTimestamp {raw_expiry!r}"
                ) from err
            if expires.tzinfo is None:
                raise ConfigError(
                    f"exec plugin {command!r}: expirationTimestamp {raw_expiry!r} has no zone"
                )
        return token, expires


@dataclass(frozen=True)
class ClientConfig:
    """Everything the REST client needs to reach and authenticate to one API server."""

    server: str
    ssl: SSLContext | bool = True
    credentials: Credentials = field(default_factory=NoCredentials)
    tls_server_name: str | None = None
    namespace: str = "default"
    source: str = ""

    async def headers(self) -> dict[str, str]:
        """The authentication headers for the next request."""
        return await self.credentials.headers()

    def invalidate(self) -> bool:
        """Drop cached credentials after a 401; True when retrying may help."""
        return self.credentials.invalidate()

    @classmethod
    def for_server(
        cls,
        url: str,
        *,
        token: str | None = None,
        ca_data: str | bytes | None = None,
        insecure: bool = False,
        namespace: str = "default",
    ) -> ClientConfig:
        """A config for a known server: kubesim, or hub credentials read from a Secret.

        `ca_data` is the CA bundle itself (PEM text, or DER bytes), not base64 of it.
        """
        context = _ssl_context(
            ca_data=_ca_bytes(ca_data) if ca_data is not None else None,
            insecure=insecure,
            where=url,
        )
        credentials: Credentials = StaticToken(token) if token else NoCredentials()
        return cls(
            server=url.rstrip("/"),
            ssl=context,
            credentials=credentials,
            namespace=namespace,
            source=f"server {url}",
        )


def _ca_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _ssl_context(
    *,
    ca_data: bytes | None = None,
    ca_file: Path | None = None,
    cert_data: bytes | None = None,
    cert_file: Path | None = None,
    key_data: bytes | None = None,
    key_file: Path | None = None,
    insecure: bool = False,
    where: str,
) -> ssl.SSLContext | bool:
    has_ca = ca_data is not None or ca_file is not None
    has_cert = cert_data is not None or cert_file is not None
    has_key = key_data is not None or key_file is not None
    if insecure and has_ca:
        raise ConfigError(
            f"{where}: insecure-skip-tls-verify and a certificate authority are mutually exclusive"
        )
    if has_cert != has_key:
        raise ConfigError(f"{where}: a client certificate needs both a certificate and a key")
    if not has_ca and not has_cert:
        return not insecure
    try:
        if ca_data is not None:
            cadata: str | bytes = ca_data
            with contextlib.suppress(UnicodeDecodeError):
                cadata = ca_data.decode("ascii")  # PEM text; DER stays bytes
            context = ssl.create_default_context(cadata=cadata)
        elif ca_file is not None:
            context = ssl.create_default_context(cafile=str(ca_file))
        else:
            context = ssl.create_default_context()
    except (ssl.SSLError, OSError, ValueError) as err:
        raise ConfigError(f"{where}: cannot load the certificate authority: {err}") from err
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if has_cert:
        _load_client_cert(
            context,
            cert_data=cert_data,
            cert_file=cert_file,
            key_data=key_data,
            key_file=key_file,
            where=where,
        )
    return context


def _load_client_cert(
    context: ssl.SSLContext,
    *,
    cert_data: bytes | None,
    cert_file: Path | None,
    key_data: bytes | None,
    key_file: Path | None,
    where: str,
) -> None:
    # The ssl module loads key material only from files: data goes to a private 0600
    # directory for the duration of the call and is removed before returning.
    tmpdir = tempfile.mkdtemp(prefix="servicegroup-tls-")
    try:
        if cert_data is not None:
            cert_file = Path(tmpdir) / "client.crt"
            _write_private(cert_file, cert_data)
        if key_data is not None:
            key_file = Path(tmpdir) / "client.key"
            _write_private(key_file, key_data)
        assert cert_file is not None and key_file is not None
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(f"{where}: cannot load the client certificate/key: {err}") from err
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# --- kubeconfig parsing


@dataclass
class _Kubeconfig:
    """The merged named entries of one or more kubeconfig files, with each entry's file."""

    files: list[Path] = field(default_factory=list)
    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    contexts: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    current_context: str = ""

    def merge_file(self, path: Path) -> None:
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"cannot read kubeconfig {path}: {err}") from err
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"kubeconfig {path} is not valid YAML: {err}") from err
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path} is not a mapping")
        self.files.append(path)
        for section, inner, target in (
            ("clusters", "cluster", self.clusters),
            ("users", "user", self.users),
            ("contexts", "context", self.contexts),
        ):
            entries = doc.get(section) or []
            if not isinstance(entries, list):
                raise ConfigError(f"kubeconfig {path}: `{section}` must be a list")
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                    raise ConfigError(f"kubeconfig {path}: every `{section}` entry needs a name")
                body = entry.get(inner) or {}
                if not isinstance(body, dict):
                    raise ConfigError(
                        f"kubeconfig {path}: {section} entry {entry['name']!r}: "
                        f"`{inner}` must be a mapping"
                    )
                target.setdefault(entry["name"], (body, path))
        current = doc.get("current-context") or ""
        if not isinstance(current, str):
            raise ConfigError(f"kubeconfig {path}: `current-context` must be a string")
        if not self.current_context:
            self.current_context = current


def _b64(value: Any, *, where: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: `{name}` must be a base64 string")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError as err:
        raise ConfigError(f"{where}: `{name}` is not valid base64") from err


def _local_path(value: Any, *, base: Path, where: str, name: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: `{name}` must be a non-empty path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _config_from_kubeconfig(
    kc: _Kubeconfig, *, context: str | None, clock: Clock, description: str
) -> ClientConfig:
    name = context or kc.current_context
    if not name:
        raise ConfigError(
            f"{description}: no current-context is set and no context was given "
            f"(contexts: {', '.join(sorted(kc.contexts)) or 'none'})"
        )
    if name not in kc.contexts:
        raise ConfigError(
            f"{description}: context {name!r} not found "
            f"(contexts: {', '.join(sorted(kc.contexts)) or 'none'})"
        )
    ctx, ctx_file = kc.contexts[name]
    cluster_name = ctx.get("cluster")
    if not cluster_name or cluster_name not in kc.clusters:
        raise ConfigError(
            f"{ctx_file}: context {name!r} refers to cluster {cluster_name!r}, which is not defined"
        )
    cluster, cluster_file = kc.clusters[cluster_name]
    where = f"{cluster_file}: cluster {cluster_name!r}"
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise ConfigError(f"{where} has no server")
    if not server.startswith(("https://", "http://")):
        raise ConfigError(f"{where}: server {server!r} must be an http:// or https:// URL")

    user_name = ctx.get("user")
    user: dict[str, Any] = {}
    user_file = ctx_file
    if user_name:
        if user_name not in kc.users:
            raise ConfigError(
                f"{ctx_file}: context {name!r} refers to user {user_name!r}, which is not defined"
            )
        user, user_file = kc.users[user_name]
    user_where = f"{user_file}: user {user_name!r}"
    base_c, base_u = cluster_file.parent, user_file.parent

    tls = _ssl_context(
        ca_data=_b64(
            cluster["certificate-authority-data"], where=where, name="certificate-authority-data"
        )
        if cluster.get("certificate-authority-data")
        else None,
        ca_file=_local_path(
            cluster["certificate-authority"], base=base_c, where=where, name="certificate-authority"
        )
        if cluster.get("certificate-authority") and not cluster.get("certificate-authority-data")
        else None,
        cert_data=_b64(
            user["client-certificate-data"], where=user_where, name="client-certificate-data"
        )
        if user.get("client-certificate-data")
        else None,
        cert_file=_local_path(
            user["client-certificate"], base=base_u, where=user_where, name="client-certificate"
        )
        if user.get("client-certificate") and not user.get("client-certificate-data")
        else None,
        key_data=_b64(user["client-key-data"], where=user_where, name="client-key-data")
        if user.get("client-key-data")
        else None,
        key_file=_local_path(user["client-key"], base=base_u, where=user_where, name="client-key")
        if user.get("client-key") and not user.get("client-key-data")
        else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        where=where,
    )
    credentials = _credentials(
        user,
        base=base_u,
        where=user_where,
        clock=clock,
        cluster_info={
            "server": server,
            "certificate-authority-data": cluster.get("certificate-authority-data", ""),
            "insecure-skip-tls-verify": bool(cluster.get("insecure-skip-tls-verify", False)),
        },
    )
    tls_server_name = cluster.get("tls-server-name") or None
    namespace = ctx.get("namespace") or "default"
    return ClientConfig(
        server=server.rstrip("/"),
        ssl=tls,
        credentials=credentials,
        tls_server_name=str(tls_server_name) if tls_server_name else None,
        namespace=str(namespace),
        source=f"{description}, context {name!r}",
    )


def _credentials(
    user: Mapping[str, Any],
    *,
    base: Path,
    where: str,
    clock: Clock,
    cluster_info: Mapping[str, Any],
) -> Credentials:
    methods = [
        method
        for method, present in (
            ("token", bool(user.get("token") or user.get("tokenFile"))),
            ("basic", bool(user.get("username") or user.get("password"))),
            ("exec", bool(user.get("exec"))),
            ("auth-provider", bool(user.get("auth-provider"))),
        )
        if present
    ]
    if len(methods) > 1:
        raise ConfigError(
            f"{where}: more than one authentication method ({', '.join(methods)}); "
            "only one is allowed"
        )
    if user.get("tokenFile"):
        # client-go: the file wins over an inline token, which only serves as a fallback.
        fallback = user.get("token")
        return FileToken(
            _local_path(user["tokenFile"], base=base, where=where, name="tokenFile"),
            clock=clock,
            fallback=str(fallback) if fallback else None,
        )
    if user.get("token"):
        return StaticToken(str(user["token"]))
    if user.get("username") or user.get("password"):
        return BasicAuth(str(user.get("username") or ""), str(user.get("password") or ""))
    if user.get("exec"):
        return ExecCredentials(
            _exec_config(user["exec"], base=base, where=where, cluster_info=cluster_info),
            clock=clock,
        )
    if user.get("auth-provider"):
        provider = user["auth-provider"]
        provider_name = provider.get("name") if isinstance(provider, dict) else None
        raise ConfigError(
            f"{where}: auth-provider {provider_name!r} is not supported; use an exec "
            "credential plugin (e.g. kubelogin, gke-gcloud-auth-plugin)"
        )
    return NoCredentials()


def _exec_config(
    raw: Any, *, base: Path, where: str, cluster_info: Mapping[str, Any]
) -> ExecConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: `exec` must be a mapping")
    command = raw.get("command")
    if not isinstance(command, str) or not command:
        raise ConfigError(f"{where}: `exec.command` is required")
    api_version = raw.get("apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise ConfigError(
            f"{where}: exec apiVersion {api_version!r} is not supported "
            f"(use one of {', '.join(EXEC_API_VERSIONS)})"
        )
    # A command with a path separator is relative to the kubeconfig; a bare name uses $PATH.
    if os.sep in command and not os.path.isabs(command):
        command = str(base / command)
    args = raw.get("args") or []
    env_entries = raw.get("env") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: `exec.args` must be a list of strings")
    if not isinstance(env_entries, list):
        raise ConfigError(f"{where}: `exec.env` must be a list of name/value pairs")
    env: list[tuple[str, str]] = []
    for entry in env_entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{where}: every `exec.env` entry needs a name and a value")
        env.append((entry["name"], str(entry.get("value", ""))))
    return ExecConfig(
        command=command,
        api_version=api_version,
        args=tuple(args),
        env=tuple(env),
        install_hint=str(raw.get("installHint") or ""),
        interactive_mode=str(raw.get("interactiveMode") or "IfAvailable"),
        provide_cluster_info=bool(raw.get("provideClusterInfo", False)),
        cluster=cluster_info,
    )


def _in_cluster_config(environ: Mapping[str, str], directory: Path, clock: Clock) -> ClientConfig:
    host = environ["KUBERNETES_SERVICE_HOST"]
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not port:
        raise ConfigError("in-cluster: KUBERNETES_SERVICE_HOST is set but not _PORT")
    token_path, ca_path = directory / "token", directory / "ca.crt"
    if not token_path.is_file():
        raise ConfigError(f"in-cluster: service-account token {token_path} not found")
    host_part = f"[{host}]" if ":" in host else host
    ca = ca_path if ca_path.is_file() else None
    namespace = "default"
    with contextlib.suppress(OSError):
        namespace = (directory / "namespace").read_text().strip() or "default"
    credentials = FileToken(token_path, clock=clock)
    credentials.current()  # fail now, not at the first request, if it is unreadable
    return ClientConfig(
        server=f"https://{host_part}:{port}",
        ssl=_ssl_context(ca_file=ca, where="in-cluster"),
        credentials=credentials,
        namespace=namespace,
        source="in-cluster service account",
    )


def _load_files(paths: Sequence[Path], *, context: str | None, clock: Clock) -> ClientConfig:
    kc = _Kubeconfig()
    for path in paths:
        kc.merge_file(path)
    description = (
        f"kubeconfig {paths[0]}"
        if len(paths) == 1
        else f"kubeconfig {os.pathsep.join(str(p) for p in paths)}"
    )
    return _config_from_kubeconfig(kc, context=context, clock=clock, description=description)


async def load_config(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: str | Path | None = None,
    in_cluster_dir: str | Path = IN_CLUSTER_DIR,
    clock: Clock | None = None,
) -> ClientConfig:
    """Find and load the client configuration (precedence in the module docstring).

    `environ`, `home` and `in_cluster_dir` exist for tests; they default to the process's.
    """
    return await asyncio.to_thread(
        _load_config_sync,
        kubeconfig=kubeconfig,
        context=context,
        environ=os.environ if environ is None else environ,
        home=home,
        in_cluster_dir=Path(in_cluster_dir),
        clock=clock if clock is not None else RealClock(),
    )


def _load_config_sync(
    *,
    kubeconfig: str | None,
    context: str | None,
    environ: Mapping[str, str],
    home: str | Path | None,
    in_cluster_dir: Path,
    clock: Clock,
) -> ClientConfig:
    env, clk = environ, clock
    tried: list[str] = []

    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise ConfigError(f"kubeconfig {path} (given explicitly) does not exist")
        return _load_files([path], context=context, clock=clk)

    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        existing = [Path(p).expanduser() for p in listed if Path(p).expanduser().is_file()]
        if existing:
            return _load_files(existing, context=context, clock=clk)
        tried.append(f"$KUBECONFIG ({', '.join(listed)}: none exists)")
    else:
        tried.append("$KUBECONFIG (unset)")

    if env.get("KUBERNETES_SERVICE_HOST"):
        return _in_cluster_config(env, Path(in_cluster_dir), clk)
    tried.append("in-cluster (KUBERNETES_SERVICE_HOST unset)")

    home_dir = Path(home) if home is not None else Path(env.get("HOME") or Path.home())
    default = home_dir / ".kube" / "config"
    if default.is_file():
        return _load_files([default], context=context, clock=clk)
    tried.append(f"{default} (does not exist)")
    raise ConfigError("no Kubernetes configuration found; tried " + "; ".join(tried))
