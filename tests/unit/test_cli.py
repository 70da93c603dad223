"""The command line: help, version, flag/env/default precedence, exit codes, signals."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from servicegroup import __version__
from servicegroup.cli import COMMANDS, Command, main, run_cli
from servicegroup.leaderelection import LeadershipLost
from servicegroup.settings import ControllerSettings, RenderSettings, WrapperSettings

FAKE = "fake_servicegroup_impl"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands configure process-wide logging; put it back for the next test."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**config)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


class Recorder:
    def __init__(self) -> None:
        self.settings: list[Any] = []
        self.events: list[str] = []
        self.signal_to_send = signal.SIGTERM


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A fake implementation module, importable as `fake_servicegroup_impl`."""
    rec = Recorder()
    module = types.ModuleType(FAKE)

    async def run(settings: Any) -> int:
        rec.settings.append(settings)
        return 0

    async def fail(settings: Any) -> int:
        raise RuntimeError("kaboom\nsecond line")

    async def lose(settings: Any) -> int:
        raise LeadershipLost("leader election lost for lease ns/name")

    async def exit_code(settings: Any) -> int:
        return 1

    async def wait_for_signal(settings: Any) -> int:
        rec.events.append("started")
        os.kill(os.getpid(), rec.signal_to_send)
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            rec.events.append("cancelled")
            await asyncio.sleep(0)  # an orderly stop may still await things
            rec.events.append("stopped")
            raise
        return 0

    def render(settings: Any) -> int:
        rec.settings.append(settings)
        return 0

    for function in (run, fail, lose, exit_code, wait_for_signal, render):
        setattr(module, function.__name__, function)
    monkeypatch.setitem(sys.modules, FAKE, module)
    return rec


def table(
    target: str, settings: type[Any] = ControllerSettings, name: str = "controller"
) -> list[Command]:
    return [Command(name, "a test command", settings, target)]


def cli(
    argv: list[str], *, commands: Any = COMMANDS, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_cli(argv, commands=commands, environ=env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- help and version


def test_help_lists_every_command_with_a_description() -> None:
    code, out, _ = cli(["--help"])
    assert code == 0
    flat = " ".join(out.split())
    names = ["controller", "wrapper", "dns", "sim", "demo", "crds", "render", "version"]
    assert [c.name for c in COMMANDS] == names
    for command in COMMANDS:
        assert f"{command.name} {command.summary}" in flat
    assert "SERVICEGROUP_<FLAG_NAME>" in flat


def test_command_help_documents_flags_env_and_kubeconfig_precedence() -> None:
    code, out, _ = cli(["controller", "--help"])
    assert code == 0
    flat = " ".join(out.split()).replace("- ", "-")
    for flag in ("--kubeconfig", "--metrics-bind-address", "--health-probe-bind-address",
                 "--log-format", "--log-level", "--leader-elect", "--lease-duration",
                 "--nodeunit-grace-period", "--namespace", "--sync-period",
                 "--workers"):  # fmt: skip
        assert flag in flat
    assert "SERVICEGROUP_LEASE_DURATION" in flat and "default 15s" in flat
    assert "this flag, then the KUBECONFIG environment variable, then the in-cluster" in flat


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"servicegroup {__version__}"
    assert lines[1].startswith(f"Python {sys.version_info.major}.{sys.version_info.minor}.")


def test_no_command_is_a_usage_error() -> None:
    code, _, err = cli([])
    assert code == 2 and "usage: servicegroup" in err


def test_real_table_targets_are_module_function_pairs() -> None:
    for command in COMMANDS:
        if command.target is None:
            assert command.name == "version"
            continue
        module, _, function = command.target.partition(":")
        assert module.startswith("servicegroup.") and function.isidentifier()


# ---------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, {"workers": 4, "leader_elect": False, "lease_duration": 15.0}),
        (
            [],
            {"SERVICEGROUP_WORKERS": "7", "SERVICEGROUP_LEADER_ELECT": "yes",
             "SERVICEGROUP_LEASE_DURATION": "1m", "SERVICEGROUP_RENEW_DEADLINE": "30s"},
            {"workers": 7, "leader_elect": True, "lease_duration": 60.0, "renew_deadline": 30.0},
        ),
        (
            ["--workers", "9", "--leader-elect=false", "--lease-duration=20s"],
            {"SERVICEGROUP_WORKERS": "7", "SERVICEGROUP_LEADER_ELECT": "1",
             "SERVICEGROUP_LEASE_DURATION": "1m"},
            {"workers": 9, "leader_elect": False, "lease_duration": 20.0},
        ),
        (["--leader-elect"], {"SERVICEGROUP_LEADER_ELECT": "0"}, {"leader_elect": True}),
        ([], {"SERVICEGROUP_LEADER_ELECT": "no"}, {"leader_elect": False}),
        (
            ["--namespace", "a", "--namespace", "b"],
            {"SERVICEGROUP_NAMESPACE": "c", "SERVICEGROUP_NODEUNIT_GRACE_PERIOD": "1h30m"},
            {"namespaces": ("a", "b"), "nodeunit_grace_period": 5400.0},
        ),
        (
            ["--metrics-bind-address", "0"],
            {"SERVICEGROUP_METRICS_BIND_ADDRESS": ":9090",
             "SERVICEGROUP_HEALTH_PROBE_BIND_ADDRESS": "127.0.0.1:9091",
             "SERVICEGROUP_LOG_LEVEL": "WARN", "SERVICEGROUP_LOG_FORMAT": "console"},
            {"metrics_bind_address": "0", "health_probe_bind_address": "127.0.0.1:9091",
             "log_level": "warning", "log_format": "console"},
        ),
    ],
)  # fmt: skip
def test_flag_beats_env_beats_default(
    fake: Recorder, argv: list[str], env: dict[str, str], expected: dict[str, Any]
) -> None:
    code, _, err = cli(["controller", *argv], commands=table(f"{FAKE}:run"), env=env)
    assert code == 0, err
    (settings,) = fake.settings
    assert isinstance(settings, ControllerSettings)
    for field, value in expected.items():
        assert getattr(settings, field) == value, field


def test_sync_command_with_positional_and_repeated_flags(fake: Recorder) -> None:
    commands = [Command("render", "render", RenderSettings, f"{FAKE}:render")]
    code, _, err = cli(
        ["render", "grid.yaml", "--node", "n1:zone=a", "--node", "n2:zone=b,rack=1"],
        commands=commands,
        env={"SERVICEGROUP_NODE": "ignored:zone=z", "SERVICEGROUP_OUTPUT": "json"},
    )
    assert code == 0, err
    (settings,) = fake.settings
    assert settings.file == "grid.yaml" and settings.output == "json"
    assert [(n.name, dict(n.labels)) for n in settings.nodes] == [
        ("n1", {"zone": "a"}),
        ("n2", {"zone": "b", "rack": "1"}),
    ]
    fake.settings.clear()
    code, _, _ = cli(
        ["render", "-"], commands=commands, env={"SERVICEGROUP_NODE": "x:zone=a;y:zone=b"}
    )
    assert code == 0
    assert [n.name for n in fake.settings[0].nodes] == ["x", "y"]


# ---------------------------------------------------------------- errors and exit codes


def test_not_available_command_exits_2_with_one_line() -> None:
    for target in ("servicegroup_no_such_module:run", "servicegroup.settings:no_such_function"):
        code, out, err = cli(["controller"], commands=table(target))
        assert code == 2
        assert err == "servicegroup controller: not available yet\n"
        assert out == ""


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--workers", "0"], {}, "invalid --workers: Input should be greater than or equal to 1"),
        (["--workers", "many"], {}, "invalid --workers: Input should be a valid integer"),
        (["--metrics-bind-address", "8080"], {},
         "invalid --metrics-bind-address: bind address must be host:port, :port or 0"),
        (["--lease-duration", "15x"], {}, "invalid --lease-duration: invalid duration '15x'"),
        ([], {"SERVICEGROUP_RETRY_PERIOD": "-2s"},
         "invalid --retry-period (from SERVICEGROUP_RETRY_PERIOD): a duration must not be neg"),
        (["--renew-deadline", "20s"], {}, "renew deadline (20s) must be shorter than the lease"),
        (["--leader-elect=maybe"], {},
         "invalid --leader-elect: expected true, false, 1, 0, yes or no (got 'maybe')"),
        (["--namespace", "Bad_NS"], {}, "not a valid DNS-1123 label"),
        (["--log-format", "xml"], {}, "invalid --log-format: Input should be 'json' or 'console'"),
    ],
)  # fmt: skip
def test_bad_values_exit_2_with_a_clear_message(
    fake: Recorder, argv: list[str], env: dict[str, str], message: str
) -> None:
    code, _, err = cli(["controller", *argv], commands=table(f"{FAKE}:run"), env=env)
    assert code == 2
    assert message in err
    assert err.startswith("servicegroup controller: ")
    assert "Traceback" not in err
    assert fake.settings == []  # never ran


def test_unknown_flag_is_a_usage_error(fake: Recorder) -> None:
    code, _, err = cli(["controller", "--no-such-flag"], commands=table(f"{FAKE}:run"))
    assert code == 2 and "unrecognized arguments: --no-such-flag" in err


def test_missing_required_setting_names_flag_and_env(fake: Recorder) -> None:
    commands = table(f"{FAKE}:run", WrapperSettings, "wrapper")
    code, _, err = cli(["wrapper"], commands=commands)
    assert code == 2
    assert err == (
        "servicegroup wrapper: --node-name is required (or set SERVICEGROUP_NODE_NAME)\n"
    )
    code, _, _ = cli(["wrapper"], commands=commands, env={"SERVICEGROUP_NODE_NAME": "edge-1"})
    assert code == 0 and fake.settings[0].node_name == "edge-1"


def test_runtime_failure_exits_1_with_a_clean_line(fake: Recorder) -> None:
    code, _, err = cli(["controller", "--log-format", "json"], commands=table(f"{FAKE}:fail"))
    assert code == 1
    lines = err.splitlines()
    assert lines[-1] == "servicegroup controller: error: kaboom second line"
    assert '"msg":"command failed"' in err  # and it was logged


def test_lost_lease_exits_1(fake: Recorder) -> None:
    code, _, err = cli(["controller", "--log-format=json"], commands=table(f"{FAKE}:lose"))
    assert code == 1
    assert err.splitlines()[-1] == (
        "servicegroup controller: error: leader election lost for lease ns/name"
    )


def test_exit_code_of_the_implementation_is_returned(fake: Recorder) -> None:
    code, _, _ = cli(["controller", "--log-format=json"], commands=table(f"{FAKE}:exit_code"))
    assert code == 1


def test_missing_submodule_of_existing_package_is_not_available() -> None:
    code, _, err = cli(["controller"], commands=table("json.no_such_submodule_xyz:run"))
    assert (code, err) == (2, "servicegroup controller: not available yet\n")


def test_broken_implementation_module_exits_1(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_servicegroup_broken.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = cli(["controller"], commands=table("fake_servicegroup_broken:run"))
    assert code == 1
    assert err.startswith("servicegroup controller: error: cannot load fake_servicegroup_broken")
    assert "no_such_dependency_xyz" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_cancels_the_command_and_exits_0(fake: Recorder, signum: signal.Signals) -> None:
    fake.signal_to_send = signum
    before = signal.getsignal(signum)
    code, _, err = cli(
        ["controller", "--log-format=json"], commands=table(f"{FAKE}:wait_for_signal")
    )
    assert code == 0, err
    assert fake.events == ["started", "cancelled", "stopped"]
    assert '"msg":"shutting down"' in err and signal.Signals(signum).name in err
    assert signal.getsignal(signum) == before  # handlers removed afterwards


def test_short_command_failure_keeps_stdout_clean(
    fake: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_render(settings: Any) -> int:
        raise ValueError("no such file: grid.yaml")

    monkeypatch.setattr(sys.modules[FAKE], "render", broken_render)
    commands = [Command("render", "render", RenderSettings, f"{FAKE}:render")]
    code, out, err = cli(["render", "grid.yaml"], commands=commands)
    assert code == 1
    assert out == ""
    assert err.splitlines()[-1] == "servicegroup render: error: no such file: grid.yaml"
