"""API errors of kubesim, shaped exactly like kube-apiserver's `Status` bodies.

Owns: `ApiError` (an exception carrying the `Status` dict the server answers with, its HTTP
code and extra headers) and one constructor per apimachinery `api/errors` helper we need
(`NewNotFound`, `NewAlreadyExists`, `NewConflict`, `NewInvalid`, ...), with the same message
formats, reasons and `details`.

Invariants:
- `ApiError.status` is a complete `Status` object: kind `Status`, apiVersion `v1`, metadata
  `{}`, status `Failure`, message, reason, details (omitted when empty, as the apiserver
  omits it), code.
- `details.kind` is the *resource* (plural) for not-found/conflict/exists errors and the
  *Kind* for invalid errors, as apimachinery does ("Yes we set Kind field to resource").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol


class CauseLike(Protocol):
    """A field error: `validation.Cause` and friends."""

    @property
    def type(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def field(self) -> str: ...


class ApiError(Exception):
    """A request kubesim refuses; `status` is the `Status` body to answer with."""

    def __init__(self, status: dict[str, Any], *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def code(self) -> int:
        return int(self.status["code"])

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.status.get("message", ""))


def status_body(
    code: int,
    reason: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    continue_token: str | None = None,
) -> dict[str, Any]:
    """A failure `Status` dict in the apiserver's field order."""
    metadata: dict[str, Any] = {}
    if continue_token:
        metadata["continue"] = continue_token
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": metadata,
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = dict(details)
    body["code"] = code
    return body


def qualified(resource: str, group: str) -> str:
    """`deployments.apps`, or `pods` for the core group (schema.GroupResource.String)."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    return details


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        status_body(
            404,
            "NotFound",
            f'{qualified(resource, group)} "{name}" not found',
            details=_details(name, group, resource),
        )
    )


def resource_not_found() -> ApiError:
    """The answer for a path that names no served resource."""
    return ApiError(
        status_body(404, "NotFound", "the server could not find the requested resource", details={})
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        status_body(
            409,
            "AlreadyExists",
            f'{qualified(resource, group)} "{name}" already exists',
            details=_details(name, group, resource),
        )
    )


OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def conflict(group: str, resource: str, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE) -> ApiError:
    return ApiError(
        status_body(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
            details=_details(name, group, resource),
        )
    )


def invalid(group: str, kind: str, name: str, causes: Iterable[CauseLike]) -> ApiError:
    """apimachinery NewInvalid: `Kind.group "name" is invalid: <aggregate of field errors>`."""
    cause_list = list(causes)
    rendered = []
    seen: set[str] = set()
    for cause in cause_list:
        text = f"{cause.field}: {cause.message}" if cause.field else cause.message
        if text not in seen:  # the aggregate drops duplicate messages
            seen.add(text)
            rendered.append(text)
    qualified_kind = f"{kind}.{group}" if group else kind
    if not rendered:
        message = f'{qualified_kind} "{name}" is invalid'
    elif len(rendered) == 1:
        message = f'{qualified_kind} "{name}" is invalid: {rendered[0]}'
    else:
        message = f'{qualified_kind} "{name}" is invalid: [{", ".join(rendered)}]'
    details = _details(name, group, kind)
    details["causes"] = [
        {"reason": cause.type, "message": cause.message, "field": cause.field}
        for cause in cause_list
    ]
    return ApiError(status_body(422, "Invalid", message, details=details))


class FieldCause:
    """A field error built here (validation.Cause has the same three attributes)."""

    __slots__ = ("field", "message", "type")

    def __init__(self, type: str, message: str, field: str) -> None:
        self.type = type
        self.message = message
        self.field = field


def required(field: str, detail: str) -> FieldCause:
    return FieldCause("FieldValueRequired", f"Required value: {detail}", field)


def invalid_value(field: str, value_repr: str, detail: str) -> FieldCause:
    return FieldCause("FieldValueInvalid", f"Invalid value: {value_repr}: {detail}", field)


def forbidden_field(field: str, detail: str) -> FieldCause:
    return FieldCause("FieldValueForbidden", f"Forbidden: {detail}", field)


def bad_request(message: str) -> ApiError:
    return ApiError(status_body(400, "BadRequest", message))


def forbidden(
    group: str, resource: str, name: str, why: str, *, causes: Iterable[CauseLike] = ()
) -> ApiError:
    details = _details(name, group, resource)
    cause_list = [{"reason": c.type, "message": c.message, "field": c.field} for c in causes]
    if cause_list:
        details["causes"] = cause_list
    target = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    return ApiError(status_body(403, "Forbidden", f"{target} is forbidden: {why}", details=details))


def method_not_allowed() -> ApiError:
    return ApiError(
        status_body(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    )


def expired(message: str, *, continue_token: str | None = None) -> ApiError:
    return ApiError(status_body(410, "Expired", message, continue_token=continue_token))


def too_old_resource_version(requested: int, oldest: int) -> ApiError:
    return expired(f"too old resource version: {requested} ({oldest})")


def too_large_resource_version(requested: int, current: int) -> ApiError:
    return ApiError(
        status_body(
            504,
            "Timeout",
            f"Too large resource version: {requested}, current: {current}",
            details={
                "causes": [
                    {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                ],
                "retryAfterSeconds": 1,
            },
        )
    )


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        status_body(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            details={"retryAfterSeconds": retry_after},
        ),
        headers={"Retry-After": str(retry_after)},
    )


def internal(message: str) -> ApiError:
    return ApiError(
        status_body(
            500,
            "InternalError",
            f"Internal error occurred: {message}",
            details={"causes": [{"message": message}]},
        )
    )


def unsupported_media_type(content_type: str, accepted: Iterable[str]) -> ApiError:
    return ApiError(
        status_body(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(accepted)}",
        )
    )


def not_acceptable(accepted: Iterable[str]) -> ApiError:
    return ApiError(
        status_body(
            406,
            "NotAcceptable",
            f"only the following media types are accepted: {', '.join(accepted)}",
        )
    )


def from_code(code: int, message: str, *, retry_after: int | None = None) -> ApiError:
    """A generic error for a status code (fault injection): apimachinery's reason per code."""
    if code == 429:
        return too_many_requests(retry_after if retry_after is not None else 1)
    reasons = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        409: "Conflict",
        410: "Expired",
        413: "RequestEntityTooLarge",
        415: "UnsupportedMediaType",
        422: "Invalid",
        500: "InternalError",
        503: "ServiceUnavailable",
        504: "Timeout",
    }
    details: dict[str, Any] = {}
    if retry_after is not None:
        details["retryAfterSeconds"] = retry_after
    error = ApiError(
        status_body(code, reasons.get(code, "Unknown"), message, details=details or None)
    )
    if retry_after is not None:
        error.headers["Retry-After"] = str(retry_after)
    return error
