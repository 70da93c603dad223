"""kubectl's text output: server-side Tables and plain rows laid out as `kubectl get` does.

Owns: `columns` (rows of cells -> aligned lines, with the spacing of kubectl's tabwriter:
cells padded by 3 spaces to the widest cell of their column, at least 6 wide, the last
column unpadded), `format_table` (a `meta.k8s.io/v1` Table -> kubectl's lines: upper-case
headers, only priority-0 columns unless `wide`, `-L` label columns appended, nil cells
empty), and `GetCommand` (a `kubectl get` invocation: its display text and the request it
makes).

Invariants: pure functions, no I/O; cells are rendered as Go's fmt prints them (true/false,
integers without a decimal point); only the first line of a multi-line cell is shown, with
"..." appended, as kubectl truncates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# kubectl's printers.GetNewTabWriter: minwidth 6, padding 3.
_MIN_WIDTH = 6
_PADDING = 3

TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


@dataclass(frozen=True)
class Kind:
    """How `kubectl get SHORT` reaches a resource."""

    short: str
    api: str  # "v1" or "group/version"
    plural: str
    namespaced: bool = True

    def path(self, namespace: str) -> str:
        base = "/api/v1" if self.api == "v1" else f"/apis/{self.api}"
        if self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


KINDS: Mapping[str, Kind] = {
    kind.short: kind
    for kind in (
        Kind("nodes", "v1", "nodes", namespaced=False),
        Kind("pods", "v1", "pods"),
        Kind("svc", "v1", "services"),
        Kind("deploy", "apps/v1", "deployments"),
        Kind("sts", "apps/v1", "statefulsets"),
        Kind("dg", "superedge.io/v1", "deploymentgrids"),
        Kind("ssg", "superedge.io/v1", "statefulsetgrids"),
        Kind("sg", "superedge.io/v1", "servicegrids"),
    )
}


@dataclass(frozen=True)
class GetCommand:
    """`kubectl get SHORT [-o wide] [-l SELECTOR] [-L LABEL...]` in the default namespace."""

    short: str
    wide: bool = False
    selector: str = ""
    label_columns: tuple[str, ...] = ()

    @property
    def kind(self) -> Kind:
        return KINDS[self.short]

    def text(self) -> str:
        parts = ["kubectl", "get", self.short]
        if self.wide:
            parts += ["-o", "wide"]
        if self.selector:
            parts += ["-l", self.selector]
        for label in self.label_columns:
            parts += ["-L", label]
        return " ".join(parts)

    def request(self, namespace: str = "default") -> tuple[str, dict[str, str]]:
        """The path and query parameters kubectl sends."""
        params = {"limit": "500"}
        if self.selector:
            params["labelSelector"] = self.selector
        return self.kind.path(namespace), params


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Lay `rows` out like kubectl's tabwriter (the first row is usually the header)."""
    if not rows:
        return []
    count = max(len(row) for row in rows)
    widths = [0] * count
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths[index], len(cell) + _PADDING, _MIN_WIDTH)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[index]) for index, cell in enumerate(row[:-1])]
        cells.append(row[-1] if row else "")
        lines.append("".join(cells).rstrip())
    return lines


def cell_text(value: Any) -> str:
    """A Table cell as kubectl prints it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    for stop in ("\n", "\r", "\f"):
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut] + "..."
    return text


def format_table(
    table: Mapping[str, Any],
    *,
    wide: bool = False,
    label_columns: Sequence[str] = (),
    namespace: str | None = "default",
) -> list[str]:
    """The lines `kubectl get` prints for a server-side Table."""
    definitions = list(table.get("columnDefinitions") or ())
    shown = [
        index
        for index, column in enumerate(definitions)
        if wide or int(column.get("priority") or 0) == 0
    ]
    rows = list(table.get("rows") or ())
    if not rows:
        where = f" in {namespace} namespace" if namespace else ""
        return [f"No resources found{where}."]
    header = [str(definitions[index].get("name", "")).upper() for index in shown]
    header += [label.rsplit("/", 1)[-1].upper() for label in label_columns]
    out = [header]
    for row in rows:
        cells = list(row.get("cells") or ())
        line = [cell_text(cells[index]) if index < len(cells) else "" for index in shown]
        labels = ((row.get("object") or {}).get("metadata") or {}).get("labels") or {}
        line += [str(labels.get(label, "")) for label in label_columns]
        out.append(line)
    return columns(out)
