"""kubectl's text layout of server-side Tables, as the demo prints them."""

from __future__ import annotations

from typing import Any

from servicegroup.demo.tables import GetCommand, cell_text, columns, format_table


def column(name: str, priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": "string", "format": "", "description": "", "priority": priority}


def test_columns_pad_by_three_to_the_widest_cell_and_at_least_six() -> None:
    lines = columns([["NAME", "A", "AGE"], ["web-1", "x", "5s"], ["w", "yy", "10m"]])
    assert lines == [
        "NAME    A     AGE",
        "web-1   x     5s",
        "w       yy    10m",
    ]


def test_columns_leave_the_last_cell_unpadded_and_strip_trailing_blanks() -> None:
    assert columns([["a", ""], ["bb", "c"]]) == ["a", "bb    c"]
    assert columns([]) == []


def test_cells_print_as_go_prints_them() -> None:
    assert cell_text(None) == ""
    assert cell_text(True) == "true"
    assert cell_text(False) == "false"
    assert cell_text(3) == "3"
    assert cell_text(2.0) == "2"
    assert cell_text("first\nsecond") == "first..."


def test_format_table_shows_priority_zero_unless_wide_and_label_columns() -> None:
    table = {
        "columnDefinitions": [column("Name"), column("Ready"), column("Images", priority=1)],
        "rows": [
            {
                "cells": ["web", "1/1", "nginx"],
                "object": {"metadata": {"name": "web", "labels": {"topology/zone": "z1"}}},
            },
            {"cells": ["db", None, "pg"], "object": {"metadata": {"name": "db"}}},
        ],
    }
    assert format_table(table) == ["NAME   READY", "web    1/1", "db"]
    assert format_table(table, wide=True, label_columns=["topology/zone"]) == [
        "NAME   READY   IMAGES   ZONE",
        "web    1/1     nginx    z1",
        "db             pg",
    ]


def test_an_empty_table_says_no_resources_found() -> None:
    table = {"columnDefinitions": [column("Name")], "rows": []}
    assert format_table(table) == ["No resources found in default namespace."]
    assert format_table(table, namespace=None) == ["No resources found."]


def test_get_command_text_and_request() -> None:
    command = GetCommand("pods", wide=True, selector="app=web", label_columns=("zone",))
    assert command.text() == "kubectl get pods -o wide -l app=web -L zone"
    assert command.request("ns1") == (
        "/api/v1/namespaces/ns1/pods",
        {"limit": "500", "labelSelector": "app=web"},
    )
    assert GetCommand("nodes").request() == ("/api/v1/nodes", {"limit": "500"})
    assert GetCommand("dg").request()[0] == (
        "/apis/superedge.io/v1/namespaces/default/deploymentgrids"
    )
