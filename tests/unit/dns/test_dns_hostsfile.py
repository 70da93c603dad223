"""Our block in a shared hosts file, and the atomic write (hostsfile.py)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.dns import hostsfile
from servicegroup.dns.hostsfile import (
    BEGIN_MARKER,
    END_MARKER,
    ConcurrentModification,
    HostsFile,
    error_reason,
    merge,
    our_block,
    render_block,
)
from servicegroup.dns.records import HostRecord

R = HostRecord


def block(*records: HostRecord) -> str:
    return render_block(records)


def record_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_block_is_sorted_naturally_and_stable() -> None:
    records = [
        R("web-10.s.ns.svc.cluster.local", "10.0.0.10"),
        R("web-2.s.ns.svc.cluster.local", "fd00::2"),
        R("web-2.s.ns.svc.cluster.local", "10.0.0.2"),
        R("api-0.s.ns.svc.cluster.local", "10.0.1.1"),
        R("web-2.s.ns.svc.cluster.local", "10.0.0.2"),
    ]
    text = render_block(records)
    assert text.startswith(BEGIN_MARKER + "\n")
    assert text.endswith(END_MARKER + "\n")
    assert record_lines(text) == [
        "10.0.1.1 api-0.s.ns.svc.cluster.local",
        "10.0.0.2 web-2.s.ns.svc.cluster.local",
        "fd00::2 web-2.s.ns.svc.cluster.local",
        "10.0.0.10 web-10.s.ns.svc.cluster.local",
    ]
    assert render_block(reversed(records)) == text


def test_empty_block_keeps_its_markers() -> None:
    text = render_block([])
    assert our_block(text) == text
    assert record_lines(text) == []


def test_merge_into_nothing_and_into_foreign_content() -> None:
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    assert merge(None, b) == b
    assert merge("", b) == b
    assert merge("127.0.0.1 localhost\n", b) == "127.0.0.1 localhost\n" + b
    # A last line without newline gets one, and stays otherwise untouched.
    assert merge("1.2.3.4 mine", b) == "1.2.3.4 mine\n" + b


def test_merge_replaces_the_block_in_place() -> None:
    old = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    new = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.9"))
    before = "# theirs\r\n1.1.1.1 one\n"
    after = "2.2.2.2 two # trailing comment\n\n3.3.3.3 three"
    assert merge(before + old + after, new) == before + new + after


def test_merge_removes_extra_blocks_and_stray_markers() -> None:
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    text = f"x 1\n{b}y 2\n{b}z 3\n  {END_MARKER}  \n"
    assert merge(text, b) == f"x 1\n{b}y 2\nz 3\n"


def test_unterminated_block_runs_to_the_end() -> None:
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    text = f"keep 1\n{BEGIN_MARKER}\n10.0.0.7 stale.s.ns.svc.cluster.local\n"
    assert merge(text, b) == "keep 1\n" + b


foreign_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30
).filter(lambda line: line.strip() not in (BEGIN_MARKER, END_MARKER))


@given(st.lists(foreign_line, max_size=8), st.integers(min_value=0, max_value=8), st.booleans())
def test_merge_preserves_every_foreign_line(lines: list[str], at: int, final_newline: bool) -> None:
    old = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    new = block(R("b-0.s.ns.svc.cluster.local", "10.0.0.2"))
    at = min(at, len(lines))
    foreign = "".join(line + "\n" for line in lines)
    with_block = "".join(line + "\n" for line in lines[:at]) + old
    with_block += "".join(line + "\n" for line in lines[at:])
    if not final_newline and with_block.endswith("\n") and lines[at:]:
        with_block = with_block[:-1]
    merged = merge(with_block, new)
    assert our_block(merged) == new
    assert merged.replace(new, "") == with_block.replace(old, "")
    assert merge(merged, new) == merged  # idempotent
    appended = merge(foreign, new)
    assert appended == foreign + new


# --------------------------------------------------------------------------- the file


def test_sync_creates_the_file_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    assert HostsFile(path=path).sync(b) is True
    assert path.read_text() == b
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # no temp file left


def test_sync_writes_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    file = HostsFile(path=path)
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    assert file.sync(b) is True
    first = path.stat()
    assert file.sync(b) is False
    second = path.stat()
    assert (first.st_ino, first.st_mtime_ns) == (second.st_ino, second.st_mtime_ns)
    assert path.read_text() == "127.0.0.1 localhost\n" + b


def test_sync_replaces_by_rename_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("1.1.1.1 one\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    reader = path.open()  # a reader holding the old file keeps seeing a complete old file
    try:
        assert HostsFile(path=path).sync(block(R("a-0.x.ns.svc.cluster.local", "10.0.0.1")))
        assert reader.read() == "1.1.1.1 one\n"
    finally:
        reader.close()
    assert path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_sync_preserves_undecodable_bytes_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    foreign = b"1.1.1.1 caf\xe9\r\n\xff\xfe junk\n"
    path.write_bytes(foreign)
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    HostsFile(path=path).sync(b)
    assert path.read_bytes() == foreign + b.encode()


def test_sync_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real" / "hosts"
    real.parent.mkdir()
    real.write_text("1.1.1.1 one\n")
    link = tmp_path / "hosts"
    link.symlink_to(real)
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    assert HostsFile(path=link).sync(b) is True
    assert link.is_symlink()
    assert real.read_text() == "1.1.1.1 one\n" + b


def test_unwritable_paths_raise_classified_errors(tmp_path: Path) -> None:
    b = block()
    with pytest.raises(OSError) as missing:
        HostsFile(path=tmp_path / "no-such-dir" / "hosts").sync(b)
    assert error_reason(missing.value) == "missing_directory"
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError) as directory:
        HostsFile(path=tmp_path / "dir").sync(b)
    assert error_reason(directory.value) == "is_directory"


def test_a_directory_that_refuses_new_files_is_a_permission_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores directory modes, so the kernel's refusal is simulated where the temp file
    # is created: the write must fail cleanly, classified, with the target left untouched.
    target = tmp_path / "hosts"
    target.write_text("1.1.1.1 one\n")

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(hostsfile.tempfile, "mkstemp", refuse)
    with pytest.raises(OSError) as denied:
        HostsFile(path=target).sync(block())
    assert error_reason(denied.value) == "permission"
    assert target.read_text() == "1.1.1.1 one\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hosts"]


def test_error_reasons_are_bounded() -> None:
    assert error_reason(PermissionError(errno.EACCES, "x")) == "permission"
    assert error_reason(OSError(errno.EROFS, "x")) == "read_only"
    assert error_reason(OSError(errno.ENOSPC, "x")) == "no_space"
    assert error_reason(OSError(errno.EIO, "x")) == "other"
    assert error_reason(ValueError("bug")) == "other"
    assert error_reason(ConcurrentModification(errno.EAGAIN, "x")) == "conflict"
    assert set(hostsfile.ERROR_REASONS) >= {"permission", "conflict", "other"}


def test_a_concurrent_writer_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    path.write_text("1.1.1.1 one\n")
    real_identity = hostsfile._current_identity
    raced: list[int] = []

    def racing_identity(target: Path) -> tuple[int, int, int, int] | None:
        # Another writer appends a line between our read and our rename, once.
        if not raced:
            raced.append(1)
            with target.open("a") as handle:
                handle.write("2.2.2.2 two\n")
        return real_identity(target)

    monkeypatch.setattr(hostsfile, "_current_identity", racing_identity)
    b = block(R("a-0.s.ns.svc.cluster.local", "10.0.0.1"))
    assert HostsFile(path=path).sync(b) is True
    assert path.read_text() == "1.1.1.1 one\n2.2.2.2 two\n" + b
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


def test_endless_races_give_up_with_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    path.write_text("1.1.1.1 one\n")
    monkeypatch.setattr(hostsfile, "_current_identity", lambda target: (0, 0, 0, 0))
    with pytest.raises(ConcurrentModification) as lost:
        HostsFile(path=path).sync(block())
    assert error_reason(lost.value) == "conflict"
    assert path.read_text() == "1.1.1.1 one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


def test_same_size_rewrite_within_one_clock_tick_still_changes_mtime(tmp_path: Path) -> None:
    # Kernel file times are coarse: a rewrite of equal length in the same tick would look
    # unchanged to a reader comparing (mtime, size), which is how CoreDNS decides to reload.
    old, new = tmp_path / "hosts", tmp_path / "new"
    old.write_text("10.0.0.1 a\n")
    new.write_text("10.0.0.2 a\n")
    stamp = new.stat()
    os.utime(old, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    snapshot = hostsfile._read(old)
    hostsfile._differ_in_stamp(new, snapshot)
    assert new.stat().st_mtime_ns != old.stat().st_mtime_ns
    other = tmp_path / "longer"
    other.write_text("10.0.0.22 a\n")  # a different size already tells: left alone
    before = other.stat().st_mtime_ns
    os.utime(old, ns=(stamp.st_atime_ns, before))
    hostsfile._differ_in_stamp(other, hostsfile._read(old))
    assert other.stat().st_mtime_ns == before
