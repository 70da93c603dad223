"""Command-line entry point (placeholder until the runtime issue lands the real one)."""

from __future__ import annotations

import sys

from servicegroup import __version__


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["version"]:
        print(f"servicegroup {__version__}")
        return 0
    print("servicegroup: commands are not available yet", file=sys.stderr)
    return 2
