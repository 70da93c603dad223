"""The Dockerfile, checked statically (no container engine here): pinned slim Python base in
every stage, multi-stage, dependencies from the project metadata, non-root user, and an
ENTRYPOINT that is the package's console script."""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# python:3.11.12-slim-bookworm, optionally @sha256:<64 hex>
PINNED_BASE = re.compile(
    r"python:(?P<version>3\.(?P<minor>\d+)\.\d+)-slim-(?P<suite>[a-z]+)(@sha256:[0-9a-f]{64})?"
)


class Instruction(NamedTuple):
    keyword: str
    value: str


def instructions() -> list[Instruction]:
    """Dockerfile instructions, continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, value = text.partition(" ")
        result.append(Instruction(keyword.upper(), value.strip()))
    assert not pending, "a continuation line ends the file"
    return result


def stages() -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for item in instructions():
        if item.keyword == "FROM":
            out.append([])
        assert out, f"{item.keyword} before the first FROM"
        out[-1].append(item)
    return out


def base_of(stage: list[Instruction]) -> str:
    return stage[0].value.split()[0]


def test_multi_stage_with_a_pinned_slim_python_base() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = int(re.fullmatch(r">=3\.(\d+)", requires).group(1))  # type: ignore[union-attr]
    bases = set()
    for stage in all_stages:
        image = base_of(stage)
        if image in {s[0].value.split()[-1] for s in all_stages[:-1] if " AS " in s[0].value}:
            continue  # FROM an earlier stage
        match = PINNED_BASE.fullmatch(image)
        assert match, f"{image}: use python:<exact version>-slim-<suite>"
        assert "latest" not in image
        assert int(match.group("minor")) >= minimum
        bases.add(image)
    assert len(bases) == 1, f"all stages should use the same base, got {bases}"


def test_dependencies_come_from_the_project_metadata() -> None:
    build = stages()[0]
    copied = [i.value for i in build if i.keyword == "COPY"]
    assert any("pyproject.toml" in c for c in copied)
    runs = " ".join(i.value for i in build if i.keyword == "RUN")
    assert re.search(r"pip install [^&]*\s\.(\s|$)", runs), (
        "install the project itself: pip install ."
    )
    assert "requirements" not in runs
    # The runtime stage gets the built environment, not the sources or pip's build inputs.
    final = stages()[-1]
    assert any(i.keyword == "COPY" and i.value.startswith("--from=") for i in final)
    assert not any(i.keyword == "COPY" and not i.value.startswith("--from=") for i in final)


def ignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_copied_sources_exist_and_are_not_ignored() -> None:
    patterns = ignore_patterns()
    assert ".venv" in patterns and ".git" in patterns
    for stage in stages():
        for item in stage:
            if item.keyword != "COPY" or item.value.startswith("--from="):
                continue
            *sources, _ = item.value.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not any(fnmatch.fnmatch(source, p) for p in patterns), f"{source} ignored"


def test_runs_as_a_non_root_user() -> None:
    final = stages()[-1]
    users = [i.value for i in final if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    if user.isdigit():
        assert int(user) >= 1000
    # Nothing after USER switches back.
    after = final[[i.keyword for i in final].index("USER") :]
    assert all(i.keyword != "USER" or i.value.split(":")[0] not in ("root", "0") for i in after)


def test_entrypoint_is_the_console_script() -> None:
    final = stages()[-1]
    (entrypoint,) = [i.value for i in final if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["servicegroup"]  # exec form: signals reach the process
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module_name, _, function = scripts["servicegroup"].partition(":")
    assert callable(getattr(importlib.import_module(module_name), function))
    env = " ".join(i.value for i in final if i.keyword == "ENV")
    assert "/opt/servicegroup/bin" in env  # the venv holding the console script is on PATH


def test_dockerignore_keeps_the_build_context_small() -> None:
    patterns = ignore_patterns()
    for heavy in (".venv", ".git", "tests"):
        assert heavy in patterns
    # README.md is the package's readme (pyproject) and must stay in the context.
    assert "README.md" not in patterns and "*.md" not in patterns
