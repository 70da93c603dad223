"""Names resolved from our file as CoreDNS's hosts plugin resolves them (tests/dnsresolve.py)."""

from __future__ import annotations

from pathlib import Path

from dnsresolve import Answer, HostsPlugin, resolve

from servicegroup.dns.hostsfile import HostsFile, render_block
from servicegroup.dns.records import HostRecord

NAME = "statefulsetgrid-demo-{}.servicegrid-demo-svc.default.svc.cluster.local"


def test_plugin_parsing_rules() -> None:
    text = (
        "# comment line\n"
        "10.0.0.1 A.Example.com alias # trailing comment\n"
        "10.0.0.2\tb.example.com\n"
        "not-an-ip c.example.com\n"
        "10.0.0.3\n"
        "fe80::1%eth0 d.example.com\n"
        "::ffff:10.0.0.4 e.example.com\n"
        "10.0.0.5 a.example.com.\n"
        "#10.0.0.6 commented.example.com\n"
    )
    plugin = HostsPlugin(zones=("example.com",))
    plugin.parse(text)
    assert plugin.query("a.example.com") == Answer("NOERROR", ("10.0.0.1", "10.0.0.5"))
    assert plugin.query("A.EXAMPLE.COM.") == Answer("NOERROR", ("10.0.0.1", "10.0.0.5"))
    assert plugin.query("b.example.com") == Answer("NOERROR", ("10.0.0.2",))
    assert plugin.query("d.example.com", "AAAA") == Answer("NOERROR", ("fe80::1",))
    assert plugin.query("d.example.com", "A") == Answer("NOERROR", ())  # NODATA
    assert plugin.query("e.example.com", "A") == Answer("NOERROR", ("10.0.0.4",))
    assert plugin.query("c.example.com") == Answer("SERVFAIL")
    assert plugin.query("commented.example.com") == Answer("SERVFAIL")
    assert plugin.query("alias") == Answer("NEXT")  # outside the plugin's zones
    with_fallthrough = HostsPlugin(zones=("example.com",), fallthrough=())
    with_fallthrough.parse(text)
    assert with_fallthrough.query("c.example.com") == Answer("NEXT")


def test_rendered_block_resolves_next_to_foreign_lines(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(
        "127.0.0.1 localhost\n10.9.9.9 statefulsetgrid-demo-0.servicegrid-demo-svc.other\n"
    )
    records = {HostRecord(NAME.format(i), f"10.244.2.{i + 10}") for i in range(3)}
    records.add(HostRecord(NAME.format(0), "fd00::10"))
    HostsFile(path=path).sync(render_block(records))
    text = path.read_text()
    for i in range(3):
        assert resolve(text, NAME.format(i)) == (f"10.244.2.{i + 10}",)
    assert resolve(text, NAME.format(0), "AAAA") == ("fd00::10",)
    assert resolve(text, "localhost") == ("127.0.0.1",)
    assert resolve(text, NAME.format(3)) == ()


def test_atomic_replacement_is_seen_by_a_reloading_plugin(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    file = HostsFile(path=path)
    plugin = HostsPlugin(zones=("cluster.local",), fallthrough=())
    file.sync(render_block({HostRecord(NAME.format(0), "10.0.0.1")}))
    assert plugin.reload(path)
    assert plugin.query(NAME.format(0)).addresses == ("10.0.0.1",)
    # Same length, new content: the plugin only compares (mtime, size) and must still notice.
    size = path.stat().st_size
    file.sync(render_block({HostRecord(NAME.format(0), "10.0.0.2")}))
    assert path.stat().st_size == size
    assert plugin.reload(path)
    assert plugin.query(NAME.format(0)).addresses == ("10.0.0.2",)
    assert not plugin.reload(path)
