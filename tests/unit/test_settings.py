"""Settings models: durations, bind addresses, validation messages, defaults."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from servicegroup.settings import (
    BindAddress,
    ControllerSettings,
    DemoSettings,
    DnsSettings,
    NodeSpec,
    SimSettings,
    WrapperSettings,
    default_log_format,
    format_duration,
    parse_bind_address,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2h3m4.5s", 7384.5),
        ("1m30s500ms", 90.5),
        ("0", 0.0),
        ("0s", 0.0),
        ("10", 10.0),
        ("2.5", 2.5),
        (".5s", 0.5),
        ("+5s", 5.0),
        ("1500us", 0.0015),
        ("1µs", 1e-6),
        ("100ns", 1e-7),
        (" 15s ", 15.0),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "invalid duration 'abc'"),
        ("1d", "invalid duration '1d'"),
        ("5 s", "invalid duration"),
        ("s", "invalid duration"),
        ("-1s", "must not be negative"),
        (-3, "must not be negative"),
        ("", "empty duration"),
        (True, "a duration must be"),
        (None, "a duration must be a string or a number"),
        (float("inf"), "finite"),
        ("nan", "invalid duration"),
    ],
)
def test_parse_duration_rejects(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@given(st.integers(min_value=0, max_value=10**7))
def test_format_then_parse_round_trips_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=999),
)
def test_go_duration_components_add_up(h: int, m: int, s: int, ms: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s{ms}ms") == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)


def test_format_duration_examples() -> None:
    assert [format_duration(x) for x in (0, 0.5, 15, 90, 3600, 5400.0)] == [
        "0s",
        "500ms",
        "15s",
        "1m30s",
        "1h",
        "1h30m",
    ]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0", None),
        (":8080", BindAddress("", 8080)),
        ("127.0.0.1:51006", BindAddress("127.0.0.1", 51006)),
        ("localhost:0", BindAddress("localhost", 0)),
        ("[::1]:9090", BindAddress("::1", 9090)),
        ("[::]:80", BindAddress("::", 80)),
    ],
)
def test_parse_bind_address(text: str, parsed: BindAddress | None) -> None:
    assert parse_bind_address(text) == parsed


@pytest.mark.parametrize(
    "text", ["8080", "host", ":", "host:", "host:http", "::1:80", "[::1]80", "[]:80", "a b:80"]
)
def test_bad_bind_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="bind address must be host:port, :port or 0"):
        parse_bind_address(text)


def test_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_bind_address(":70000")


def _error(model: type[Any], **data: Any) -> str:
    with pytest.raises(ValidationError) as info:
        model(**data)
    return str(info.value)


def test_controller_defaults() -> None:
    settings = ControllerSettings(log_format="json")
    assert settings.namespaces == ()
    assert settings.workers == 4
    assert settings.leader_elect is False
    assert settings.leader_elect_namespace == "servicegroup-system"
    assert settings.leader_elect_id == "servicegroup-controller"
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (
        15.0,
        10.0,
        2.0,
    )
    assert settings.nodeunit_grace_period == 0.0
    assert settings.enable_federation is False
    assert settings.metrics_bind_address == ":8080"
    assert settings.health_probe_bind_address == ":8081"
    assert settings.kubeconfig is None
    assert settings.log_level == "info"


def test_controller_durations_accept_go_syntax() -> None:
    settings = ControllerSettings(
        lease_duration="1m", renew_deadline="45s", retry_period="5s", nodeunit_grace_period="5m"
    )
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (
        60.0,
        45.0,
        5.0,
    )
    assert settings.nodeunit_grace_period == 300.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"renew_deadline": "15s"}, "renew deadline (15s) must be shorter than the lease"),
        ({"renew_deadline": "20s"}, "must be shorter than the lease duration (15s)"),
        ({"retry_period": "9s"}, "must be greater than 1.2 x retry period (9s)"),
        ({"retry_period": 0}, "retry period must be greater than zero"),
        (
            {"lease_duration": "12s", "renew_deadline": "10s", "retry_period": "2s"},
            "must exceed renew deadline + retry period (12s)",
        ),
        (
            {"lease_duration": "900ms", "renew_deadline": "500ms", "retry_period": "100ms"},
            "lease duration must be at least 1s",
        ),
        ({"nodeunit_grace_period": "soon"}, "invalid duration 'soon'"),
        ({"workers": 0}, "greater than or equal to 1"),
        ({"namespaces": "default,Kube_System"}, "'Kube_System' is not a valid DNS-1123 label"),
        ({"leader_elect_namespace": "Bad"}, "leader election namespace 'Bad'"),
        ({"leader_elect_id": "bad_name"}, "leader election lease name 'bad_name'"),
        ({"metrics_bind_address": "8080"}, "bind address must be host:port"),
        ({"health_probe_bind_address": "x:y"}, "bind address must be host:port"),
        ({"log_level": "verbose"}, "log_level"),
        ({"log_format": "xml"}, "'json' or 'console'"),
        ({"no_such_setting": 1}, "Extra inputs are not permitted"),
    ],
)
def test_controller_validation_messages(data: dict[str, Any], message: str) -> None:
    assert message in _error(ControllerSettings, **data)


def test_namespaces_split_trim_and_dedupe() -> None:
    settings = ControllerSettings(namespaces=" a, b ,,a ")
    assert settings.namespaces == ("a", "b")
    assert ControllerSettings(namespaces=["x", "y"]).namespaces == ("x", "y")


def test_log_level_is_normalized() -> None:
    assert ControllerSettings(log_level="WARN").log_level == "warning"
    assert ControllerSettings(log_level="Debug").log_level == "debug"


def test_log_format_default_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert default_log_format() == "console"
    assert ControllerSettings().log_format == "console"
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert default_log_format() == "json"
    assert ControllerSettings().log_format == "json"


def test_settings_are_frozen() -> None:
    settings = ControllerSettings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.workers = 8  # type: ignore[misc]


def test_empty_kubeconfig_means_unset() -> None:
    assert ControllerSettings(kubeconfig="").kubeconfig is None
    assert ControllerSettings(kubeconfig="/tmp/k").kubeconfig == "/tmp/k"


def test_wrapper_settings() -> None:
    assert "node_name" in _error(WrapperSettings)
    settings = WrapperSettings(node_name="edge-1")
    assert settings.bind_address == "127.0.0.1:51006"
    assert "cannot be disabled" in _error(WrapperSettings, node_name="n", bind_address="0")
    assert "node name 'Edge_1'" in _error(WrapperSettings, node_name="Edge_1")


def test_dns_settings() -> None:
    settings = DnsSettings(node_name="edge-1")
    assert settings.cluster_domain == "cluster.local"
    assert settings.publish_not_ready is False
    assert settings.hosts_file
    assert "cluster domain" in _error(DnsSettings, node_name="n", cluster_domain="Bad Domain")


def test_sim_nodes_parse_into_records() -> None:
    settings = SimSettings(nodes=["edge-1:zone=a,rack=r1", "edge-2:zone=b", "plain"])
    assert settings.port == 0 and settings.workloads is True and settings.kubeconfig_out is None
    assert settings.nodes == (
        NodeSpec("edge-1", {"zone": "a", "rack": "r1"}),
        NodeSpec("edge-2", {"zone": "b"}),
        NodeSpec("plain", {}),
    )
    from_env = SimSettings(nodes="edge-1:zone=a; edge-2:zone=b,superedge.io/x=")
    assert [n.name for n in from_env.nodes] == ["edge-1", "edge-2"]
    assert from_env.nodes[1].labels == {"zone": "b", "superedge.io/x": ""}


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (["a:zone=x", "a:zone=y"], "node names given more than once: a"),
        (["a:zone"], "label 'zone' must be KEY=VALUE"),
        (["a:zone=x,zone=y"], "label 'zone' given twice"),
        (["a:bad key=x"], "label key 'bad key' is invalid"),
        (["a:zone=-x"], "label value '-x' is invalid"),
        (["Bad_Node:zone=x"], "node name 'Bad_Node'"),
        ([":zone=x"], "node name ''"),
    ],
)
def test_sim_node_errors(nodes: list[str], message: str) -> None:
    assert message in _error(SimSettings, nodes=nodes)


label_part = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    label_part,
    st.dictionaries(label_part, st.one_of(st.just(""), label_part), max_size=4),
)
def test_node_spec_round_trip(name: str, labels: dict[str, str]) -> None:
    spec = NodeSpec(name, labels)
    assert NodeSpec.parse(spec.format()) == spec


def test_demo_settings() -> None:
    assert DemoSettings().keep_running is False
    assert DemoSettings(keep_running="yes").keep_running is True
