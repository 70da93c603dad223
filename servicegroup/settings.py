"""Every tunable of every command, as frozen pydantic models (one per command).

This module owns the *meaning* of each setting: its type, default, validation and help text.
It does no I/O and knows nothing about argparse or the environment; `servicegroup.cli` builds
flags from these models (a field `lease_duration` becomes `--lease-duration` and
`SERVICEGROUP_LEASE_DURATION`; `CliFlag` metadata adjusts that when needed).

Invariants:
- Models are frozen and reject unknown fields; collections are tuples, so a settings object
  can be shared by every component without anyone mutating it.
- Durations are stored as float seconds and accept numbers or Go duration strings
  ("500ms", "30s", "1h30m"); they are never negative.
- Bind addresses are stored as the user wrote them ("host:port", ":port" or "0" to disable)
  after validation; `parse_bind_address` turns one into a `BindAddress` (or None = disabled).
- Leader election timings obey client-go's rules: lease_duration > renew_deadline >
  1.2 * retry_period > 0.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# client-go leaderelection.JitterFactor: renew_deadline must exceed it times retry_period.
LEADER_ELECTION_JITTER_FACTOR = 1.2

LogFormat = Literal["json", "console"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
OutputFormat = Literal["yaml", "json"]


@dataclass(frozen=True)
class CliFlag:
    """How a settings field appears on the command line (attached via `Annotated`).

    `name`: the flag name without dashes when it differs from the field name (also names
    the environment variable). `repeat`: the flag may be given several times (each value
    one item; the environment variable separates items with `separator`). `positional`:
    a positional argument instead of a flag (no environment variable).
    """

    name: str | None = None
    repeat: bool = False
    separator: str = ","
    positional: bool = False
    metavar: str | None = None


# --------------------------------------------------------------------------- durations

_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both the micro sign and the Greek mu
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_duration(value: object) -> float:
    """Seconds from a number, a numeric string (seconds) or a Go duration ("1h30m", "500ms").

    Raises ValueError with a readable message for anything else, negatives included.
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a Go duration like 30s")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value.strip())
    else:
        raise ValueError(f"a duration must be a string or a number, got {type(value).__name__}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError("a duration must be finite")
    if seconds < 0:
        raise ValueError(f"a duration must not be negative, got {value!r}")
    return seconds


def _parse_duration_text(text: str) -> float:
    if not text:
        raise ValueError("empty duration")
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    sign = 1.0
    body = text
    if body[0] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _GO_TERM.match(body, pos)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: use a number of seconds or a Go duration "
                'such as "500ms", "30s", "5m", "1h30m"'
            )
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def format_duration(seconds: float) -> str:
    """A short Go-style rendering for help texts and logs: 15s, 1m30s, 500ms, 0s."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole_minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(whole_minutes), 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if rest or not out:
        out += f"{rest:g}s"
    return out


Duration = Annotated[float, BeforeValidator(parse_duration)]


# ----------------------------------------------------------------------- bind addresses


class BindAddress(NamedTuple):
    """A listening address; `host` "" means every interface."""

    host: str
    port: int


def parse_bind_address(value: str) -> BindAddress | None:
    """ "host:port", ":port", "[v6]:port" -> BindAddress; "0" -> None (disabled).

    Raises ValueError with the accepted forms when `value` is none of them.
    """
    text = value.strip()
    if text == "0":
        return None
    hint = f"bind address must be host:port, :port or 0 to disable, got {value!r}"
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(hint)
        host, port_text = text[1:end], text[end + 2 :]
        if not host:
            raise ValueError(hint)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host or any(c.isspace() for c in host):
            raise ValueError(hint)
    if not port_text.isdigit():
        raise ValueError(hint)
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} out of range 0..65535 in bind address {value!r}")
    return BindAddress(host, port)


def _check_bind_address(value: object) -> object:
    if isinstance(value, str):
        parse_bind_address(value)
        return value.strip()
    return value


BindAddressText = Annotated[str, BeforeValidator(_check_bind_address)]


def _check_enabled_bind_address(value: object) -> object:
    checked = _check_bind_address(value)
    if isinstance(checked, str) and parse_bind_address(checked) is None:
        raise ValueError("this address cannot be disabled; give host:port")
    return checked


EnabledBindAddressText = Annotated[str, BeforeValidator(_check_enabled_bind_address)]


# ------------------------------------------------------------------- names and lists

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")


def _check_dns_label(value: str, what: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid DNS-1123 label "
            "(lower case alphanumerics and '-', at most 63 characters)"
        )
    return value


def _check_dns_subdomain(value: str, what: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid DNS-1123 subdomain "
            "(lower case alphanumerics, '-' and '.', at most 253 characters)"
        )
    return value


def check_label_key(key: str) -> str:
    """Validate a Kubernetes label key (optional DNS-subdomain prefix, then a name part)."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        _check_dns_subdomain(prefix, "label key prefix")
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"label key {key!r} is invalid (name part: alphanumerics, '-', '_', '.', "
            "at most 63 characters, starting and ending with an alphanumeric)"
        )
    return key


def check_label_value(value: str) -> str:
    """Validate a Kubernetes label value (may be empty)."""
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"label value {value!r} is invalid (alphanumerics, '-', '_', '.', at most 63 "
            "characters, starting and ending with an alphanumeric)"
        )
    return value


def _split_list(value: object, separator: str = ",") -> object:
    """A separated string (flag or environment) -> tuple of non-empty stripped items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(separator) if item.strip())
    return value


def _namespaces(value: object) -> object:
    items = _split_list(value)
    if not isinstance(items, list | tuple):
        return items
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError("namespaces must be strings")
        seen[_check_dns_label(item.strip(), "namespace")] = None
    return tuple(seen)


Namespaces = Annotated[tuple[str, ...], BeforeValidator(_namespaces)]


class NodeSpec(NamedTuple):
    """A simulated node: its name and labels, from "NAME:KEY=VALUE,KEY=VALUE"."""

    name: str
    labels: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> NodeSpec:
        """Parse "NAME" or "NAME:KEY=VALUE,KEY=VALUE"; ValueError says what is wrong."""
        name, _, label_text = text.strip().partition(":")
        name = _check_dns_subdomain(name.strip(), "node name")
        labels: dict[str, str] = {}
        for pair in label_text.split(","):
            if not pair.strip():
                continue
            key, eq, val = pair.partition("=")
            key, val = key.strip(), val.strip()
            if not eq:
                raise ValueError(f"node {name}: label {pair.strip()!r} must be KEY=VALUE")
            check_label_key(key)
            check_label_value(val)
            if key in labels:
                raise ValueError(f"node {name}: label {key!r} given twice")
            labels[key] = val
        return cls(name, labels)

    def format(self) -> str:
        """The inverse of `parse`."""
        if not self.labels:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.labels.items())


def _node_specs(value: object) -> object:
    # Several nodes in one string (environment variable) are separated by ';' because
    # ',' already separates labels.
    items = _split_list(value, ";")
    if not isinstance(items, list | tuple):
        return items
    specs: list[NodeSpec] = []
    for item in items:
        spec = NodeSpec.parse(item) if isinstance(item, str) else item
        if not isinstance(spec, NodeSpec):
            raise ValueError('a node is written "NAME:KEY=VALUE,KEY=VALUE"')
        specs.append(spec)
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"node names given more than once: {', '.join(duplicates)}")
    return tuple(specs)


NodeSpecs = Annotated[tuple[NodeSpec, ...], BeforeValidator(_node_specs)]


def _log_level(value: object) -> object:
    if isinstance(value, str):
        level = value.strip().lower()
        return "warning" if level == "warn" else level
    return value


def _optional_path(value: object) -> object:
    # An empty environment variable means "not set", as kubectl treats KUBECONFIG="".
    if isinstance(value, str) and not value.strip():
        return None
    return value


OptionalPath = Annotated[str | None, BeforeValidator(_optional_path)]


def default_log_format() -> LogFormat:
    """Console output for a person at a terminal, JSON for log collectors."""
    try:
        return "console" if sys.stderr.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


# ------------------------------------------------------------------------------ models


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class LogSettings(_Settings):
    """Logging flags, shared by every long-running command."""

    log_format: Annotated[
        LogFormat,
        Field(
            default_factory=default_log_format,
            description="log output: json or console (default: console on a TTY, else json)",
        ),
    ]
    log_level: Annotated[
        LogLevel,
        BeforeValidator(_log_level),
        Field(description="minimum level logged: debug, info, warning, error, critical"),
    ] = "info"


class CommonSettings(LogSettings):
    """Flags of every command that talks to an API server and serves probes/metrics."""

    kubeconfig: Annotated[
        OptionalPath,
        Field(
            description="path to a kubeconfig file. Precedence: this flag, then the "
            "KUBECONFIG environment variable, then the in-cluster service account, "
            "then ~/.kube/config"
        ),
    ] = None
    metrics_bind_address: Annotated[
        BindAddressText,
        Field(description='address serving /metrics: "host:port", ":port", or "0" to disable'),
    ] = ":8080"
    health_probe_bind_address: Annotated[
        BindAddressText,
        Field(
            description='address serving /healthz and /readyz: "host:port", ":port", '
            'or "0" to disable'
        ),
    ] = ":8081"


class ControllerSettings(CommonSettings):
    """`servicegroup controller`."""

    namespaces: Annotated[
        Namespaces,
        CliFlag(name="namespace", repeat=True, separator=",", metavar="NS"),
        Field(description="a namespace to watch (repeatable; default: all namespaces)"),
    ] = ()
    workers: Annotated[
        int, Field(ge=1, le=1000, description="concurrent reconciles per controller")
    ] = 4
    leader_elect: Annotated[
        bool, Field(description="elect a leader with a coordination.k8s.io/v1 Lease")
    ] = False
    leader_elect_namespace: Annotated[
        str, Field(description="namespace of the leader election Lease")
    ] = "servicegroup-system"
    leader_elect_id: Annotated[str, Field(description="name of the leader election Lease")] = (
        "servicegroup-controller"
    )
    lease_duration: Annotated[
        Duration,
        Field(description="how long a non-leader waits before taking over an unrenewed lease"),
    ] = 15.0
    renew_deadline: Annotated[
        Duration, Field(description="how long the leader retries renewing before giving up")
    ] = 10.0
    retry_period: Annotated[
        Duration, Field(description="interval between leader election attempts")
    ] = 2.0
    nodeunit_grace_period: Annotated[
        Duration,
        Field(
            description="how long a vanished NodeUnit keeps its children before they are "
            "deleted (0 deletes at once, like upstream)"
        ),
    ] = 0.0
    sync_period: Annotated[
        Duration,
        Field(
            gt=0,
            description="how often every grid is reconciled even without a change "
            "(a safety net; a settled controller writes nothing)",
        ),
    ] = 36000.0
    enable_federation: Annotated[
        bool, Field(description="distribute grids to Clusternet member clusters")
    ] = False

    @model_validator(mode="after")
    def _check(self) -> ControllerSettings:
        _check_dns_label(self.leader_elect_namespace, "leader election namespace")
        _check_dns_subdomain(self.leader_elect_id, "leader election lease name")
        if self.lease_duration < 1:
            raise ValueError(
                "lease duration must be at least 1s (a Lease counts whole seconds), "
                f"got {format_duration(self.lease_duration)}"
            )
        if self.retry_period <= 0:
            raise ValueError("retry period must be greater than zero")
        if self.renew_deadline >= self.lease_duration:
            raise ValueError(
                f"renew deadline ({format_duration(self.renew_deadline)}) must be shorter "
                f"than the lease duration ({format_duration(self.lease_duration)})"
            )
        if self.renew_deadline <= LEADER_ELECTION_JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"renew deadline ({format_duration(self.renew_deadline)}) must be greater "
                f"than {LEADER_ELECTION_JITTER_FACTOR} x retry period "
                f"({format_duration(self.retry_period)})"
            )
        if math.ceil(self.lease_duration) <= self.renew_deadline + self.retry_period:
            raise ValueError(
                f"lease duration ({format_duration(self.lease_duration)}) must exceed renew "
                "deadline + retry period "
                f"({format_duration(self.renew_deadline + self.retry_period)}), or a "
                "partitioned leader could still lead when another takes over"
            )
        return self


class WrapperSettings(CommonSettings):
    """`servicegroup wrapper`."""

    node_name: Annotated[
        str,
        Field(description="name of the node this wrapper serves (usually from the downward API)"),
    ]
    bind_address: Annotated[
        EnabledBindAddressText,
        Field(description="address kube-proxy connects to (plain HTTP)"),
    ] = "127.0.0.1:51006"

    @model_validator(mode="after")
    def _check(self) -> WrapperSettings:
        _check_dns_subdomain(self.node_name, "node name")
        return self


class DnsSettings(CommonSettings):
    """`servicegroup dns`."""

    node_name: Annotated[
        str, Field(description="name of the node whose NodeUnit's names this daemon resolves")
    ]
    hosts_file: Annotated[
        str, Field(min_length=1, description="hosts file read by the node's CoreDNS hosts plugin")
    ] = "/data/edge/hosts"
    cluster_domain: Annotated[str, Field(description="cluster DNS domain")] = "cluster.local"
    publish_not_ready: Annotated[
        bool, Field(description="also publish pods that are not Ready")
    ] = False

    @model_validator(mode="after")
    def _check(self) -> DnsSettings:
        _check_dns_subdomain(self.node_name, "node name")
        _check_dns_subdomain(self.cluster_domain, "cluster domain")
        return self


class SimSettings(LogSettings):
    """`servicegroup sim`."""

    port: Annotated[
        int, Field(ge=0, le=65535, description="port of the simulated API server (0 = any free)")
    ] = 0
    kubeconfig_out: Annotated[
        OptionalPath, Field(description="write a kubeconfig for the simulated cluster here")
    ] = None
    nodes: Annotated[
        NodeSpecs,
        CliFlag(name="node", repeat=True, separator=";", metavar="NAME:KEY=VALUE,..."),
        Field(description="a simulated node with its labels (repeatable)"),
    ] = ()
    workloads: Annotated[
        bool,
        Field(
            description="simulate pods and workload statuses (scheduler, kubelet, Deployment, "
            "StatefulSet and EndpointSlice controllers); false = API-only mode"
        ),
    ] = True
    pod_start_delay: Annotated[
        Duration,
        Field(ge=0, description="how long a scheduled pod takes to become Running and Ready"),
    ] = 0.05


class DemoSettings(LogSettings):
    """`servicegroup demo`."""

    keep_running: Annotated[
        bool, Field(description="keep the demo cluster running after the walkthrough")
    ] = False


class CrdsSettings(_Settings):
    """`servicegroup crds`."""

    output: Annotated[OutputFormat, Field(description="manifest format: yaml or json")] = "yaml"


class RenderSettings(_Settings):
    """`servicegroup render`."""

    file: Annotated[
        str,
        CliFlag(positional=True, metavar="FILE"),
        Field(min_length=1, description='grid manifest to render ("-" reads stdin)'),
    ]
    nodes: Annotated[
        NodeSpecs,
        CliFlag(name="node", repeat=True, separator=";", metavar="NAME:KEY=VALUE,..."),
        Field(description="a node with its labels, defining the NodeUnits (repeatable)"),
    ] = ()
    nodes_file: Annotated[
        OptionalPath,
        CliFlag(name="nodes", metavar="FILE"),
        Field(
            description="YAML of Node objects (`kubectl get nodes -o yaml`) defining the NodeUnits"
        ),
    ] = None
    kubeconfig: Annotated[
        OptionalPath,
        Field(description="read the NodeUnits from this cluster's Nodes (read-only list requests)"),
    ] = None
    output: Annotated[OutputFormat, Field(description="output format: yaml or json")] = "yaml"


class VersionSettings(_Settings):
    """`servicegroup version` (no settings)."""


def model_field_flag(metadata: list[Any]) -> CliFlag:
    """The `CliFlag` among a field's metadata, or the default one."""
    for item in metadata:
        if isinstance(item, CliFlag):
            return item
    return CliFlag()
