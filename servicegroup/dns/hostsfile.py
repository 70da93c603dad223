"""The hosts file: our marked block in it, and replacing it atomically (SPEC B11).

Owns: the block markers, `render_block` (sorted records between the markers), `merge` (our
block into someone else's file), `HostsFile.sync` (read, merge, write only on change, by
temp file + rename in the same directory) and `error_reason` (an OSError -> a bounded metric
label).

File format (what CoreDNS's `hosts` plugin reads): one `IP FQDN` per line; `#` starts a
comment. Our lines live between `# BEGIN servicegroup` and `# END servicegroup`; every byte
outside that block belongs to other writers and is preserved exactly (line endings and
undecodable bytes included). Merge rules:
- the first block is replaced in place; further blocks (a copy pasted by hand) are removed;
- no block: ours is appended at the end (after a newline if the file lacks a final one);
- a BEGIN without an END (a truncated file) is our block up to the end of the file, since
  only we write that marker; a stray END is dropped.
Records are sorted by name (numbers in names compared as numbers, so `-2` sorts before
`-10`), then IPv4 before IPv6, so equal record sets always render to equal bytes.

Invariants of `HostsFile.sync`:
- the file is never written when the merged content equals what is there (CoreDNS re-reads
  on any change of mtime or size, and idle daemons should not touch disks);
- readers see the old file or the new one, never a partial one: the content goes to a
  temporary file in the target's directory (same filesystem), is fsynced, gets the old file's
  permissions (0644 for a new file, so a CoreDNS running as another user can read it), then
  `os.replace`s the target;
- a symlinked path is followed, and the file it points to is replaced, not the link;
- the new file's (mtime, size) always differs from the old one's, so a reader polling them
  (CoreDNS's reload) never misses a change;
- if the file changed between our read and our rename (another writer), we start over from
  the new content, a few times, then give up with reason `conflict`.
It is blocking code: the daemon runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from servicegroup.dns.records import HostRecord

BEGIN_MARKER = "# BEGIN servicegroup"
END_MARKER = "# END servicegroup"
NOTICE = "# Written by `servicegroup dns`: changes inside this block are overwritten."
NEW_FILE_MODE = 0o644
MAX_ATTEMPTS = 5

# Every value of the servicegroup_dns_errors_total{reason} label.
ERROR_REASONS = (
    "permission",
    "missing_directory",
    "read_only",
    "no_space",
    "is_directory",
    "conflict",
    "other",
)
_ERRNO_REASONS = {
    errno.EACCES: "permission",
    errno.EPERM: "permission",
    errno.ENOENT: "missing_directory",
    errno.ENOTDIR: "missing_directory",
    errno.EROFS: "read_only",
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "no_space",
    errno.EISDIR: "is_directory",
}
_DIGITS = re.compile(r"(\d+)")


class ConcurrentModification(OSError):
    """The file kept changing under us between read and rename."""


def error_reason(exc: BaseException) -> str:
    """The metric label for a failed sync (one of ERROR_REASONS)."""
    if isinstance(exc, ConcurrentModification):
        return "conflict"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERRNO_REASONS.get(exc.errno, "other")
    return "other"


# ------------------------------------------------------------------------------ rendering


def _record_key(record: HostRecord) -> tuple[tuple[tuple[int, str | int], ...], int, int]:
    parts = tuple(
        (1, int(part)) if i % 2 else (0, part) for i, part in enumerate(_DIGITS.split(record.fqdn))
    )
    address = ipaddress.ip_address(record.ip)
    return parts, address.version, int(address)


def sort_records(records: Iterable[HostRecord]) -> list[HostRecord]:
    """Unique records in rendering order (module docstring)."""
    return sorted(set(records), key=_record_key)


def render_block(records: Iterable[HostRecord]) -> str:
    """Our block, markers included, newline-terminated."""
    lines = [BEGIN_MARKER, NOTICE, *(record.line() for record in sort_records(records))]
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def _split_lines(text: str) -> list[str]:
    # Only "\n" ends a line (str.splitlines would also split on \v, \f, U+2028, ...).
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _is(line: str, marker: str) -> bool:
    return line.strip() == marker


def merge(existing: str | None, block: str) -> str:
    """`existing` with our block replaced by `block` (rules in the module docstring)."""
    lines = _split_lines(existing or "")
    out: list[str] = []
    placed = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if _is(line, BEGIN_MARKER):
            end = next(
                (j for j in range(index + 1, len(lines)) if _is(lines[j], END_MARKER)),
                len(lines) - 1,
            )
            if not placed:
                out.append(block)
                placed = True
            index = end + 1
            continue
        if not _is(line, END_MARKER):
            out.append(line)
        index += 1
    if not placed:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(block)
    return "".join(out)


def our_block(text: str) -> str | None:
    """The first block of `text`, markers included (None when there is none)."""
    lines = _split_lines(text)
    for index, line in enumerate(lines):
        if _is(line, BEGIN_MARKER):
            for end in range(index + 1, len(lines)):
                if _is(lines[end], END_MARKER):
                    return "".join(lines[index : end + 1])
            return "".join(lines[index:])
    return None


# ------------------------------------------------------------------------------ the file


class _Snapshot(NamedTuple):
    text: str | None  # None: the file does not exist
    identity: tuple[int, int, int, int] | None  # (device, inode, size, mtime_ns)
    mode: int
    owner: tuple[int, int] | None


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _read(path: Path) -> _Snapshot:
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return _Snapshot(None, None, NEW_FILE_MODE, None)
    return _Snapshot(
        data.decode("utf-8", errors="surrogateescape"),
        _identity(stat),
        stat.st_mode & 0o7777,
        (stat.st_uid, stat.st_gid),
    )


def _current_identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        return _identity(path.stat())
    except FileNotFoundError:
        return None


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable; not possible everywhere (some filesystems refuse), so best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _differ_in_stamp(temp: Path, snapshot: _Snapshot) -> None:
    """Make sure a reader that polls (mtime, size), as CoreDNS does, sees the new file.

    File times come from a coarse kernel clock (a few milliseconds), so two quick writes of the
    same length (one pod IP replaced by another) could share both; the new file is then given
    a later mtime than the old one.
    """
    if snapshot.identity is None:
        return
    old_size, old_mtime = snapshot.identity[2], snapshot.identity[3]
    stat = temp.stat()
    if stat.st_size == old_size and stat.st_mtime_ns <= old_mtime:
        os.utime(temp, ns=(stat.st_atime_ns, old_mtime + 1_000_000))


def _write_replace(path: Path, data: bytes, snapshot: _Snapshot) -> bool:
    """Write `data` over `path` atomically; False (nothing changed) if `path` moved meanwhile."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _differ_in_stamp(temp, snapshot)
        os.chmod(temp, snapshot.mode)
        if snapshot.owner is not None:
            # Keep the owner when we may (we usually run as root); otherwise the mode suffices.
            with contextlib.suppress(PermissionError):
                os.chown(temp, *snapshot.owner)
        if _current_identity(path) != snapshot.identity:
            temp.unlink()
            return False
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_directory(path.parent)
    return True


class HostsFile:
    """The hosts file at `path`, of which we own one block."""

    def __init__(self, *, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> str | None:
        """The whole file (None when it does not exist)."""
        return _read(Path(os.path.realpath(self.path))).text

    def sync(self, block: str) -> bool:
        """Make our block equal `block`; True when the file was written, False when it already
        was. Raises OSError (ConcurrentModification after MAX_ATTEMPTS lost races)."""
        for _ in range(MAX_ATTEMPTS):
            target = Path(os.path.realpath(self.path))
            snapshot = _read(target)
            merged = merge(snapshot.text, block)
            if merged == snapshot.text:
                return False
            if _write_replace(target, merged.encode("utf-8", errors="surrogateescape"), snapshot):
                return True
        raise ConcurrentModification(
            errno.EAGAIN, "the file kept changing while being updated", str(self.path)
        )
