"""Reverse proxy to the API server for every request the wrapper does not serve itself.

Owns: one aiohttp client session to the API server (the wrapper's own TLS settings and
credentials) and the translation of one incoming request into one upstream request whose
answer is streamed back as it arrives (watches of Nodes, logs and the like included).

Invariants:
- The client's own credentials never reach the API server: `Authorization`, `Cookie` and
  `Impersonate-*` headers are dropped and the wrapper's authentication headers are added, so
  a local client gets exactly the wrapper's (least-privilege) rights. Hop-by-hop headers are
  not forwarded in either direction.
- The User-Agent names the wrapper first, then the client it acts for
  (`servicegroup/<version> (wrapper) kube-proxy/v1.32.0 (linux/amd64) ...`): the request is
  made with the wrapper's credentials, so audit logs and request accounting attribute it to
  the wrapper, while still showing on whose behalf.
- Bodies are relayed byte for byte: the session never decompresses (`Content-Encoding` passes
  through) and never follows redirects.
- An unreachable API server is a 503 Status with `Retry-After: 1` (client-go retries it); a
  client that goes away cancels its upstream request.
- Protocol upgrades (exec, attach, port-forward) are not supported and answer 501.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp import web
from yarl import URL

from servicegroup.kube.config import ClientConfig

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_CLIENT_CREDENTIALS = frozenset({"authorization", "cookie"})


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A metav1.Status failure, as the API server writes it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def status_response(
    code: int, reason: str, message: str, *, headers: dict[str, str] | None = None, **details: Any
) -> web.Response:
    return web.Response(
        status=code,
        body=orjson.dumps(status_body(code, reason, message, **details)),
        content_type="application/json",
        headers=headers,
    )


class ReverseProxy:
    """Forwards requests to the API server with the wrapper's credentials."""

    def __init__(
        self,
        *,
        config: ClientConfig,
        user_agent: str,
        logger: structlog.typing.FilteringBoundLogger,
        connect_timeout: float = 10.0,
    ) -> None:
        self._config = config
        self._user_agent = user_agent
        self._log = logger
        self._connect_timeout = connect_timeout
        self._base = config.server.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._config.ssl, limit=0),
                # Watches and logs stream for as long as the client wants.
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _headers(self, request: web.Request) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            lower = name.lower()
            if (
                lower in HOP_BY_HOP
                or lower in _CLIENT_CREDENTIALS
                or lower.startswith("impersonate-")
                or lower in ("content-length", "user-agent")
            ):
                continue
            headers[name] = value
        client_agent = request.headers.get("User-Agent", "").strip()
        headers["User-Agent"] = f"{self._user_agent} {client_agent}".rstrip()
        headers.update(await self._config.headers())
        return headers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Relay `request` to the API server and stream the answer back."""
        if "upgrade" in request.headers.get("Connection", "").lower():
            return status_response(
                501, "NotImplemented", "the wrapper does not proxy protocol upgrades"
            )
        url = URL(self._base + request.raw_path, encoded=True)
        body = await request.read() if request.body_exists else None
        headers = await self._headers(request)
        try:
            upstream = await self._client().request(
                request.method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                server_hostname=self._config.tls_server_name,
            )
        except (aiohttp.ClientError, OSError) as err:
            self._log.warning(
                "API server unreachable", method=request.method, path=request.path, error=str(err)
            )
            return status_response(
                503,
                "ServiceUnavailable",
                f"the API server is unreachable from the wrapper: {err}",
                headers={"Retry-After": "1"},
            )
        try:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            if "Content-Length" not in response.headers:
                response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (aiohttp.ClientError, OSError) as err:
                # Either side went away after the headers were sent: just end the stream.
                self._log.debug("proxied stream ended early", path=request.path, error=str(err))
            return response
        finally:
            upstream.release()
