"""Errors of the API client and their classification (apimachinery `api/errors` in Python).

Owns: `ApiError` (an HTTP answer that is not a success, built from a Kubernetes `Status` body
when the server sent one), `TransportError` (no HTTP answer at all: connection refused, reset,
TLS failure, timeout) and the predicates callers branch on.

Invariants:
- `status` is the HTTP status code, or 0 for a `TransportError`.
- `reason` is never empty: the Status body's `reason` when present, otherwise the reason
  apimachinery associates with the status code (404 -> NotFound, 409 -> Conflict, ...), or
  `Unknown`.
- Predicates accept any exception and answer False for non-API errors, so callers can write
  `except Exception as err: if is_not_found(err): ...`.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

# apimachinery's StatusReason for a bare status code (reasonForError / NewGenericServerResponse).
_REASON_BY_CODE: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

# Reasons apimachinery knows; a status code only decides a predicate when the reason is not one.
_KNOWN_REASONS = frozenset(
    {
        *_REASON_BY_CODE.values(),
        "AlreadyExists",
        "Expired",
        "ServerTimeout",
        "NotAcceptable",
        "UnsupportedMediaType",
        "RequestEntityTooLarge",
    }
)


class Cause(NamedTuple):
    """One entry of a Status's `details.causes` (which field, and what is wrong with it)."""

    reason: str
    message: str
    field: str


class ApiError(Exception):
    """A request the API server answered with a non-success status."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        body: Any = None,
        retry_after: float | None = None,
        *,
        causes: tuple[Cause, ...] = (),
    ) -> None:
        super().__init__(status, reason, message)
        self.status = status
        self.reason = reason or _REASON_BY_CODE.get(status, "Unknown")
        self.message = message
        self.body = body
        self.retry_after = retry_after
        self.causes = causes

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.reason!r}, {self.message!r})"

    @classmethod
    def from_response(
        cls, status: int, data: bytes, *, headers: Mapping[str, str] | None = None
    ) -> ApiError:
        """Build the error from an HTTP answer: Status body if there is one, else the raw text."""
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        try:
            body: Any = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            error = cls.from_status(body, default_status=status)
            error.status = status  # the HTTP code is authoritative over the body's `code`
            if retry_after is not None:
                error.retry_after = retry_after
            return error
        text = data.decode("utf-8", "replace").strip()
        message = text[:1024] if text else f"the server answered HTTP {status} with no body"
        return cls(
            status,
            _REASON_BY_CODE.get(status, "Unknown"),
            message,
            body=body if body is not None else text,
            retry_after=retry_after,
        )

    @classmethod
    def from_status(cls, status_obj: Mapping[str, Any], *, default_status: int = 500) -> ApiError:
        """Build the error from a `Status` object (an HTTP body or a watch ERROR event)."""
        code = status_obj.get("code")
        status = code if isinstance(code, int) and code > 0 else default_status
        details = status_obj.get("details")
        causes: tuple[Cause, ...] = ()
        retry_after: float | None = None
        if isinstance(details, Mapping):
            raw_causes = details.get("causes")
            if isinstance(raw_causes, list):
                causes = tuple(
                    Cause(
                        str(c.get("reason", "")), str(c.get("message", "")), str(c.get("field", ""))
                    )
                    for c in raw_causes
                    if isinstance(c, Mapping)
                )
            seconds = details.get("retryAfterSeconds")
            if isinstance(seconds, int | float) and seconds > 0:
                retry_after = float(seconds)
        return cls(
            status,
            str(status_obj.get("reason") or _REASON_BY_CODE.get(status, "Unknown")),
            str(status_obj.get("message") or ""),
            body=dict(status_obj),
            retry_after=retry_after,
            causes=causes,
        )


class TransportError(ApiError):
    """No HTTP answer: the connection failed, broke, or timed out. Always retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "Transport", message)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: an integer, or an HTTP date (seconds until it)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds)


def _reason_and_status(err: BaseException) -> tuple[str, int] | None:
    if isinstance(err, ApiError):
        return err.reason, err.status
    return None


def _matches(err: BaseException, reason: str, status: int) -> bool:
    found = _reason_and_status(err)
    if found is None:
        return False
    err_reason, err_status = found
    if err_reason == reason:
        return True
    # As apimachinery: the code decides only when the reason says nothing we recognise.
    return err_reason not in _KNOWN_REASONS and err_status == status


def is_not_found(err: BaseException) -> bool:
    """404 NotFound."""
    return _matches(err, "NotFound", 404)


def is_conflict(err: BaseException) -> bool:
    """409 Conflict (a stale resourceVersion or a failed precondition), not AlreadyExists."""
    return _matches(err, "Conflict", 409)


def is_already_exists(err: BaseException) -> bool:
    """409 AlreadyExists (create of a name that is taken)."""
    found = _reason_and_status(err)
    return found is not None and found[0] == "AlreadyExists"


def is_invalid(err: BaseException) -> bool:
    """422 Invalid (the object failed validation); see `ApiError.causes`."""
    return _matches(err, "Invalid", 422)


def is_gone(err: BaseException) -> bool:
    """410: Gone or Expired (a resourceVersion or continue token too old): relist."""
    found = _reason_and_status(err)
    if found is None:
        return False
    reason, status = found
    return reason in ("Gone", "Expired") or status == 410


def is_too_many_requests(err: BaseException) -> bool:
    """429 TooManyRequests (API priority and fairness, or a rate limit): back off."""
    return _matches(err, "TooManyRequests", 429)


def is_unauthorized(err: BaseException) -> bool:
    """401 Unauthorized."""
    return _matches(err, "Unauthorized", 401)


def is_forbidden(err: BaseException) -> bool:
    """403 Forbidden (RBAC)."""
    return _matches(err, "Forbidden", 403)


def is_retryable(err: BaseException) -> bool:
    """Worth retrying unchanged after a delay: transport failures, 429 and every 5xx."""
    if isinstance(err, TransportError):
        return True
    found = _reason_and_status(err)
    if found is None:
        return False
    reason, status = found
    return status == 429 or status >= 500 or reason in ("ServerTimeout", "TooManyRequests")


def is_retryable_write(err: BaseException) -> bool:
    """A failed write worth trying again after a delay (and a fresh read of the cache).

    Everything `is_retryable` covers, plus 409 Conflict and AlreadyExists: the object changed
    under us, or the API server gave up its own retries (server-side apply under contention
    answers 409 too). Nothing about such a write is wrong; only its timing was. Callers that
    know a 409 means something more specific (a uid precondition naming a replaced object)
    still gain nothing by giving up: the next attempt reads the cache again and sees why.
    """
    return is_retryable(err) or is_conflict(err) or is_already_exists(err)
