"""Request accounting: how many requests of each verb, resource and client kubesim served.

Owns: `RequestCounter` - counts per (verb, resource, subresource, user-agent product,
user-agent component) in kube's audit verb terms (get, list, watch, create, update, patch,
delete, deletecollection), a JSON form for `GET /kubesim/requests`, `reset()` for
`DELETE /kubesim/requests`, and query helpers for tests and benchmarks.

Invariants:
- `resource` is `plural.group` (`deployments.apps`) or the plural alone for the core group;
  non-resource requests (discovery, OpenAPI, /version) are counted with verb `get` and
  resource "" so they never count as writes.
- `user_agent` is the product token: the User-Agent up to the first "/" (`kubectl`,
  `servicegroup`, `OpenAPI-Generator`).
- `user_agent_component` is the first word of the User-Agent's first parenthesized comment:
  `servicegroup/0.1.0 (controller)` -> `controller`, `(wrapper)`, `(dns)`; kubectl's
  `kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07` -> `linux/amd64`; "" when there is none.
  Every query takes either dimension (None matches anything), so the processes of one product
  are told apart without losing the per-product totals.
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
    user_agent_component: str = ""


@dataclass(frozen=True)
class RequestCount:
    verb: str
    resource: str
    subresource: str
    user_agent: str
    count: int
    user_agent_component: str = ""


def user_agent_product(user_agent: str) -> str:
    return user_agent.split("/", 1)[0].strip()


def user_agent_component(user_agent: str) -> str:
    """The first word of the first `(comment)` of a User-Agent, or ""."""
    start = user_agent.find("(")
    if start < 0:
        return ""
    end = user_agent.find(")", start + 1)
    comment = user_agent[start + 1 : end if end >= 0 else len(user_agent)]
    words = comment.replace(";", " ").split()
    return words[0] if words else ""


class RequestCounter:
    def __init__(self) -> None:
        self._counts: Counter[RequestKey] = Counter()
        self._parsed: dict[str, tuple[str, str]] = {}

    def record(
        self, *, verb: str, resource: str, subresource: str = "", user_agent: str = ""
    ) -> None:
        parsed = self._parsed.get(user_agent)
        if parsed is None:
            if len(self._parsed) > 1024:  # bounded: clients send a handful of agents
                self._parsed.clear()
            parsed = (user_agent_product(user_agent), user_agent_component(user_agent))
            self._parsed[user_agent] = parsed
        self._counts[RequestKey(verb, resource, subresource, *parsed)] += 1

    def reset(self) -> None:
        self._counts.clear()

    def snapshot(self) -> list[RequestCount]:
        return [
            RequestCount(
                key.verb,
                key.resource,
                key.subresource,
                key.user_agent,
                count,
                key.user_agent_component,
            )
            for key, count in sorted(self._counts.items())
        ]

    @staticmethod
    def _agent_matches(key: RequestKey, product: str | None, component: str | None) -> bool:
        return (product is None or key.user_agent == product) and (
            component is None or key.user_agent_component == component
        )

    def count(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        user_agent_product: str | None = None,
        user_agent_component: str | None = None,
    ) -> int:
        """Requests matching every given criterion (None matches anything)."""
        return sum(
            count
            for key, count in self._counts.items()
            if (verb is None or key.verb == verb)
            and (resource is None or key.resource == resource)
            and (subresource is None or key.subresource == subresource)
            and self._agent_matches(key, user_agent_product, user_agent_component)
        )

    def writes(
        self,
        *,
        user_agent_product: str | None = None,
        resource: str | None = None,
        user_agent_component: str | None = None,
    ) -> int:
        """Create/update/patch/delete/deletecollection requests."""
        return sum(
            count
            for key, count in self._counts.items()
            if key.verb in WRITE_VERBS
            and self._agent_matches(key, user_agent_product, user_agent_component)
            and (resource is None or key.resource == resource)
        )

    def to_json(self) -> dict[str, Any]:
        items = [asdict(entry) for entry in self.snapshot()]
        for item in items:
            item["userAgent"] = item.pop("user_agent")
            item["userAgentComponent"] = item.pop("user_agent_component")
        return {"requests": items, "total": sum(self._counts.values())}
