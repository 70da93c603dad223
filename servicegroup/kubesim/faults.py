"""Fault injection: make chosen requests fail or slow down, on purpose and reproducibly.

Owns: `FaultInjector` - failure rules ({verbs, resources, code, count | fraction,
retryAfter}) and latency rules ({verbs, resources, seconds}), configured in process or via
`POST /kubesim/faults` (`apply_json`), and consulted by the server for every resource
request (`decide`). Closing watches and expiring history are actions on the store, which the
server performs when the JSON asks for them.

Invariants:
- Randomness is a seeded `random.Random`, so a fraction rule fails the same requests in
  the same order on every run.
- A `count` rule fails exactly its next N matching requests and then disappears.
- Empty `verbs`/`resources` match every verb/resource; resources match by plural or by
  `plural.group`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class FaultError(ValueError):
    """The fault specification is malformed."""


@dataclass
class FailRule:
    verbs: frozenset[str]
    resources: frozenset[str]
    code: int
    count: int | None = None
    fraction: float | None = None
    retry_after: int | None = None

    def matches(self, verb: str, resource: str) -> bool:
        return _matches(self.verbs, self.resources, verb, resource)


@dataclass(frozen=True)
class LatencyRule:
    verbs: frozenset[str]
    resources: frozenset[str]
    seconds: float

    def matches(self, verb: str, resource: str) -> bool:
        return _matches(self.verbs, self.resources, verb, resource)


def _matches(verbs: frozenset[str], resources: frozenset[str], verb: str, resource: str) -> bool:
    if verbs and verb not in verbs:
        return False
    return not resources or resource in resources or resource.split(".", 1)[0] in resources


class Decision(NamedTuple):
    """What to do with one request: wait `delay` seconds, then fail with `code` if set."""

    delay: float
    code: int | None
    retry_after: int | None


@dataclass
class FaultInjector:
    seed: int = 0
    failures: list[FailRule] = field(default_factory=list)
    latencies: list[LatencyRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def fail(
        self,
        *,
        code: int,
        verbs: Iterable[str] = (),
        resources: Iterable[str] = (),
        count: int | None = None,
        fraction: float | None = None,
        retry_after: int | None = None,
    ) -> None:
        if count is None and fraction is None:
            count = 1
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise FaultError("fraction must be between 0 and 1")
        if count is not None and count < 0:
            raise FaultError("count must not be negative")
        if not 400 <= code <= 599:
            raise FaultError("code must be an HTTP error status (400-599)")
        self.failures.append(
            FailRule(frozenset(verbs), frozenset(resources), code, count, fraction, retry_after)
        )

    def add_latency(
        self, *, seconds: float, verbs: Iterable[str] = (), resources: Iterable[str] = ()
    ) -> None:
        if seconds < 0:
            raise FaultError("seconds must not be negative")
        self.latencies.append(LatencyRule(frozenset(verbs), frozenset(resources), seconds))

    def clear(self) -> None:
        self.failures.clear()
        self.latencies.clear()
        self._random = random.Random(self.seed)

    def decide(self, verb: str, resource: str) -> Decision:
        delay = sum(rule.seconds for rule in self.latencies if rule.matches(verb, resource))
        for rule in list(self.failures):
            if not rule.matches(verb, resource):
                continue
            if rule.count is not None:
                if rule.count <= 0:
                    self.failures.remove(rule)
                    continue
                rule.count -= 1
                if rule.count == 0:
                    self.failures.remove(rule)
                return Decision(delay, rule.code, rule.retry_after)
            if rule.fraction is not None and self._random.random() < rule.fraction:
                return Decision(delay, rule.code, rule.retry_after)
        return Decision(delay, None, None)

    def apply_json(self, spec: Mapping[str, Any]) -> dict[str, bool]:
        """Configure from the JSON body of POST /kubesim/faults.

        Returns the store actions requested: {"closeWatches": bool, "expireHistory": bool}.
        """
        if not isinstance(spec, Mapping):
            raise FaultError("the body must be a JSON object")
        known = {"closeWatches", "expireHistory", "fail", "latency", "clear"}
        unknown = set(spec) - known
        if unknown:
            raise FaultError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        if spec.get("clear"):
            self.clear()
        fail = spec.get("fail")
        if fail is not None:
            if not isinstance(fail, Mapping) or "code" not in fail:
                raise FaultError('"fail" needs an object with a "code"')
            try:
                self.fail(
                    code=int(fail["code"]),
                    verbs=_strings(fail.get("verbs")),
                    resources=_strings(fail.get("resources")),
                    count=int(fail["count"]) if fail.get("count") is not None else None,
                    fraction=float(fail["fraction"]) if fail.get("fraction") is not None else None,
                    retry_after=(
                        int(fail["retryAfter"]) if fail.get("retryAfter") is not None else None
                    ),
                )
            except (TypeError, ValueError) as err:
                raise FaultError(str(err)) from None
        latency = spec.get("latency")
        if latency is not None:
            if not isinstance(latency, Mapping) or "seconds" not in latency:
                raise FaultError('"latency" needs an object with "seconds"')
            try:
                self.add_latency(
                    seconds=float(latency["seconds"]),
                    verbs=_strings(latency.get("verbs")),
                    resources=_strings(latency.get("resources")),
                )
            except (TypeError, ValueError) as err:
                raise FaultError(str(err)) from None
        return {
            "closeWatches": bool(spec.get("closeWatches")),
            "expireHistory": bool(spec.get("expireHistory")),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "fail": [
                {
                    "verbs": sorted(rule.verbs),
                    "resources": sorted(rule.resources),
                    "code": rule.code,
                    "count": rule.count,
                    "fraction": rule.fraction,
                    "retryAfter": rule.retry_after,
                }
                for rule in self.failures
            ],
            "latency": [
                {"verbs": sorted(r.verbs), "resources": sorted(r.resources), "seconds": r.seconds}
                for r in self.latencies
            ],
        }


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FaultError("verbs and resources must be lists of strings")
    return list(value)
