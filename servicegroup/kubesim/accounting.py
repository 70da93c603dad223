"""Request accounting: how many requests of each verb, resource and client kubesim served.

Owns: `RequestCounter` - counts per (verb, resource, subresource, user-agent product) in
kube's audit verb terms (get, list, watch, create, update, patch, delete,
deletecollection), a JSON form for `GET /kubesim/requests`, `reset()` for
`DELETE /kubesim/requests`, and query helpers for tests and benchmarks.

Invariants:
- `resource` is `plural.group` (`deployments.apps`) or the plural alone for the core group;
  non-resource requests (discovery, OpenAPI, /version) are counted with verb `get` and
  resource "" so they never count as writes.
- `user_agent` is the product token: the User-Agent up to the first "/" (`kubectl`,
  `servicegroup`, `OpenAPI-Generator`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class RequestKey(NamedTuple):
    verb: str
    resource: str
    subresource: str
    user_agent: str


@dataclass(frozen=True)
class RequestCount:
    verb: str
    resource: str
    subresource: str
    user_agent: str
    count: int


def user_agent_product(user_agent: str) -> str:
    return user_agent.split("/", 1)[0].strip()


class RequestCounter:
    def __init__(self) -> None:
        self._counts: Counter[RequestKey] = Counter()

    def record(
        self, *, verb: str, resource: str, subresource: str = "", user_agent: str = ""
    ) -> None:
        self._counts[RequestKey(verb, resource, subresource, user_agent_product(user_agent))] += 1

    def reset(self) -> None:
        self._counts.clear()

    def snapshot(self) -> list[RequestCount]:
        return [RequestCount(*key, count) for key, count in sorted(self._counts.items())]

    def count(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        user_agent_product: str | None = None,
    ) -> int:
        """Requests matching every given criterion (None matches anything)."""
        return sum(
            count
            for key, count in self._counts.items()
            if (verb is None or key.verb == verb)
            and (resource is None or key.resource == resource)
            and (subresource is None or key.subresource == subresource)
            and (user_agent_product is None or key.user_agent == user_agent_product)
        )

    def writes(self, *, user_agent_product: str | None = None, resource: str | None = None) -> int:
        """Create/update/patch/delete/deletecollection requests."""
        return sum(
            count
            for key, count in self._counts.items()
            if key.verb in WRITE_VERBS
            and (user_agent_product is None or key.user_agent == user_agent_product)
            and (resource is None or key.resource == resource)
        )

    def to_json(self) -> dict[str, Any]:
        items = [asdict(entry) for entry in self.snapshot()]
        for item in items:
            item["userAgent"] = item.pop("user_agent")
        return {"requests": items, "total": sum(self._counts.values())}
