"""The `servicegroup` command line: flags and environment -> Settings -> a command's run().

This module owns the command table, flag parsing, exit codes, logging setup and signal
handling. It imports no command implementation up front: each command names its
implementation as "module:function" (an `async def run(settings) -> int`, or a plain
`def run(settings) -> int` for the short-lived crds/render), imported only when that command
runs. A module or function that does not exist yet makes the command "not available yet".

Flags are generated from the command's settings model (servicegroup.settings): field
`lease_duration` is `--lease-duration` and `SERVICEGROUP_LEASE_DURATION`. A value given as a
flag beats the environment, which beats the model's default. Validation is the model's.

Exit codes: 0 success or a requested shutdown (SIGTERM/SIGINT cancel the command's task and
let it stop in order); 1 a runtime failure, a lost leader lease included (logged, plus one
clean line on stderr); 2 a usage or configuration error, or a command not available yet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import os
import platform
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, TextIO, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from servicegroup import __version__
from servicegroup.log import configure_logging, get_logger
from servicegroup.settings import (
    ControllerSettings,
    CrdsSettings,
    DemoSettings,
    DnsSettings,
    LogSettings,
    RenderSettings,
    SimSettings,
    VersionSettings,
    WrapperSettings,
    default_log_format,
    format_duration,
    model_field_flag,
    parse_duration,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
ENV_PREFIX = "SERVICEGROUP_"


class Command(NamedTuple):
    """One sub-command: its help line, its settings model, and where its code lives."""

    name: str
    summary: str
    settings: type[BaseModel]
    # "module:function"; None for commands this module implements itself.
    target: str | None


# To plug a command in, define the named function; nothing here needs to change. The
# targets respect the import layers (tests/unit/test_layers.py): wiring the controller needs
# the reconcilers and the manager, so it lives in the top layer (manager.py); kubesim may
# not import servicegroup.settings, so its run() reads the SimSettings fields it is given.
COMMANDS: tuple[Command, ...] = (
    Command(
        "controller",
        "reconcile grids into per-NodeUnit children (leader-elected Deployment)",
        ControllerSettings,
        "servicegroup.controller_command:run",
    ),
    Command(
        "wrapper",
        "node-local API endpoint serving kube-proxy NodeUnit-filtered endpoints",
        WrapperSettings,
        "servicegroup.wrapper.app:run",
    ),
    Command(
        "dns",
        "keep the node's hosts file of StatefulSetGrid headless names",
        DnsSettings,
        "servicegroup.dns.app:run",
    ),
    Command(
        "sim",
        "run kubesim, an in-memory Kubernetes API server with simulated nodes",
        SimSettings,
        "servicegroup.kubesim.cli:run",
    ),
    Command(
        "demo",
        "walk through the upstream examples on a simulated cluster",
        DemoSettings,
        "servicegroup.demo:run",
    ),
    Command(
        "crds",
        "print the CustomResourceDefinition manifests",
        CrdsSettings,
        "servicegroup.api.crds:run",
    ),
    Command(
        "render",
        "preview the children a grid manifest would produce",
        RenderSettings,
        "servicegroup.render:run",
    ),
    Command("version", "print the servicegroup and Python versions", VersionSettings, None),
)


class _UsageError(Exception):
    """A configuration problem to report on stderr (one line per message), exit 2."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


class _Flag(NamedTuple):
    field: str
    option: str  # "--lease-duration", or the metavar of a positional
    env: str | None
    positional: bool


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `servicegroup` console script and `python -m servicegroup`."""
    return run_cli(sys.argv[1:] if argv is None else argv)


def run_cli(
    argv: Sequence[str],
    *,
    commands: Sequence[Command] = COMMANDS,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`main` with its surroundings injectable (command table, environment, streams)."""
    env = os.environ if environ is None else environ
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    table = {command.name: command for command in commands}
    parser, flags = _build_parser(commands)

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parsed = parser.parse_args(list(argv))
        except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
            if exc.code is None:
                return EXIT_OK
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    name = getattr(parsed, "command", None)
    if name is None:
        parser.print_help(err)
        return EXIT_USAGE
    command = table[name]
    given = {k: v for k, v in vars(parsed).items() if k != "command"}
    try:
        settings = _settings(command, flags[name], given, env)
    except _UsageError as exc:
        for line in exc.lines:
            print(f"servicegroup {name}: {line}", file=err)
        return EXIT_USAGE

    if command.target is None:
        return _version(out)
    try:
        implementation = _resolve(command.target)
    except Exception as exc:  # the module exists but is broken: a bug, not a usage error
        print(f"servicegroup {name}: error: cannot load {command.target}: {exc}", file=err)
        return EXIT_FAILURE
    if implementation is None:
        print(f"servicegroup {name}: not available yet", file=err)
        return EXIT_USAGE
    return _execute(command, implementation, settings, err)


# ----------------------------------------------------------------------------- parsing


def _build_parser(
    commands: Sequence[Command],
) -> tuple[argparse.ArgumentParser, dict[str, list[_Flag]]]:
    parser = argparse.ArgumentParser(
        prog="servicegroup",
        description="SuperEdge ServiceGroup for Kubernetes edge clusters: "
        "DeploymentGrid, StatefulSetGrid, ServiceGrid.",
        epilog=f"Every flag can also be set with {ENV_PREFIX}<FLAG_NAME> (upper case, dashes "
        "as underscores). A flag beats the environment, which beats the default.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"servicegroup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    flags: dict[str, list[_Flag]] = {}
    for command in commands:
        command_parser = sub.add_parser(
            command.name,
            help=command.summary,
            description=command.summary,
            allow_abbrev=False,
        )
        flags[command.name] = [
            _add_field(command_parser, name, info)
            for name, info in command.settings.model_fields.items()
        ]
    return parser, flags


def _add_field(parser: argparse.ArgumentParser, name: str, info: FieldInfo) -> _Flag:
    flag = model_field_flag(info.metadata)
    flag_name = flag.name or name.replace("_", "-")
    help_text = info.description or ""
    if flag.positional:
        metavar = flag.metavar or flag_name.upper()
        parser.add_argument(name, metavar=metavar, help=help_text)
        return _Flag(name, metavar, None, True)
    env = ENV_PREFIX + flag_name.upper().replace("-", "_")
    notes = [f"env {env}"]
    default = _describe_default(info)
    if default is not None:
        notes.append(f"default {default}")
    full_help = f"{help_text} [{'; '.join(notes)}]".replace("%", "%%")
    option = f"--{flag_name}"
    if info.annotation is bool:
        parser.add_argument(
            option,
            dest=name,
            nargs="?",
            const="true",
            default=argparse.SUPPRESS,
            metavar="BOOL",
            help=full_help,
        )
    else:
        choices = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
        parser.add_argument(
            option,
            dest=name,
            action="append" if flag.repeat else "store",
            default=argparse.SUPPRESS,
            metavar=flag.metavar or ("|".join(choices) if choices else name.upper()),
            help=full_help,
        )
    return _Flag(name, option, env, False)


def _describe_default(info: FieldInfo) -> str | None:
    if info.default_factory is not None:
        return None  # described in the help text
    default = info.default
    if default is PydanticUndefined:
        return "none, required"
    if default is None or default == ():
        return None
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and _is_duration(info):
        return format_duration(default)
    return str(default)


def _is_duration(info: FieldInfo) -> bool:
    return any(getattr(item, "func", None) is parse_duration for item in info.metadata)


def _settings(
    command: Command, flags: list[_Flag], given: dict[str, Any], env: Mapping[str, str]
) -> BaseModel:
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for flag in flags:
        if flag.field in given:
            data[flag.field] = given[flag.field]
            sources[flag.field] = flag.option
        elif flag.env is not None and flag.env in env:
            data[flag.field] = env[flag.env]
            sources[flag.field] = flag.env
    try:
        return command.settings.model_validate(data)
    except ValidationError as exc:
        by_field = {flag.field: flag for flag in flags}
        raise _UsageError(_explain(exc, by_field, sources)) from None


def _explain(
    exc: ValidationError, flags: Mapping[str, _Flag], sources: Mapping[str, str]
) -> list[str]:
    lines: list[str] = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = error["loc"]
        flag = flags.get(str(loc[0])) if loc else None
        if flag is None:
            lines.append(message)
        elif error["type"] == "missing":
            hint = f" (or set {flag.env})" if flag.env else ""
            what = flag.option if not flag.positional else f"argument {flag.option}"
            lines.append(f"{what} is required{hint}")
        else:
            if error["type"] == "bool_parsing":
                message = "expected true, false, 1, 0, yes or no"
            value = error.get("input")
            if isinstance(value, str) and repr(value) not in message:
                message += f" (got {value!r})"
            source = sources.get(flag.field, flag.option)
            where = flag.option if source == flag.option else f"{flag.option} (from {source})"
            lines.append(f"invalid {where}: {message}")
    return lines or [str(exc)]


# ----------------------------------------------------------------------------- running


def _version(out: TextIO) -> int:
    print(f"servicegroup {__version__}", file=out)
    print(f"Python {platform.python_version()} ({platform.python_implementation()})", file=out)
    return EXIT_OK


def _resolve(target: str) -> Callable[..., Any] | None:
    """Import "module:function"; None when either does not exist (yet)."""
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            return None
        raise
    function = getattr(module, function_name, None)
    return function if callable(function) else None


def _execute(
    command: Command, implementation: Callable[..., Any], settings: BaseModel, err: TextIO
) -> int:
    if isinstance(settings, LogSettings):
        configure_logging(fmt=settings.log_format, level=settings.log_level, stream=err)
    else:
        # Short commands print results on stdout; keep any log line off it.
        configure_logging(fmt=default_log_format(), level="warning", stream=err)
    logger = get_logger("cli", command=command.name)
    try:
        if inspect.iscoroutinefunction(implementation):
            result = asyncio.run(_run_until_signalled(command, implementation, settings))
        else:
            result = implementation(settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logger.error("command failed", exc_info=exc)
        print(f"servicegroup {command.name}: error: {_one_line(exc)}", file=err)
        return EXIT_FAILURE
    return EXIT_OK if result is None else int(result)


async def _run_until_signalled(
    command: Command, implementation: Callable[..., Any], settings: BaseModel
) -> Any:
    """Run the command as a task; SIGTERM/SIGINT cancel it, which counts as success."""
    loop = asyncio.get_running_loop()
    logger = get_logger("cli", command=command.name)
    task: asyncio.Task[Any] = asyncio.create_task(
        implementation(settings), name=f"servicegroup-{command.name}"
    )
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)
        if len(signals_seen) == 1:
            logger.info("shutting down", signal=signal.Signals(signum).name)
        else:
            # A second signal interrupts even the draining of in-flight work.
            logger.warning("second signal, stopping at once", signal=signal.Signals(signum).name)
        task.cancel()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without signal support
    try:
        return await task
    except asyncio.CancelledError:
        if signals_seen and task.cancelled():
            return EXIT_OK
        raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _one_line(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
