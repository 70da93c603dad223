"""`servicegroup render`: preview the children grids would produce, without writing anything.

Owns: reading grid manifests and Node lists, `preview_grid` (one grid -> its validation
errors, the template chosen per NodeUnit and the child each unit would get), the two output
formats, and the command's exit codes.

Where NodeUnits come from (later sources win for a node of the same name, so a cluster's nodes
can be amended with hypothetical ones): the Nodes of a cluster (`kubeconfig`, one paged list,
read-only), a YAML file of Node objects (`nodes_file`, e.g. `kubectl get nodes -o yaml`),
then `--node NAME:KEY=VALUE,...` flags.

Output:
- yaml (default): a YAML stream `kubectl` can read. Per grid, comment lines name the grid, its
  NodeUnits, every validation error and notes; then one document per child, preceded by a
  comment naming the NodeUnit and the template chosen for it (or why the unit has no child).
- json: one object `{"grids": [...], "skipped": [...]}`; each grid carries `kind`,
  `namespace`, `name`, `gridUniqKey`, `errors`, `notes`, `units` (`unit`, `template`,
  `templateField`, `child` or `error` + `reason`) and, for a ServiceGrid, `service`.
Errors are also written to stderr, one line each.

Exit codes: 0 every grid rendered without error; 1 a grid has validation errors or a unit
has no child (so CI can gate a canary on it); 2 the input cannot be read (missing file, YAML
syntax, a document that is not an object, no grid at all, unreachable cluster).

Invariants: the children are exactly what grid/render.py gives the reconcilers (same
functions, same inputs); nothing is written anywhere but stdout/stderr; with a grid fetched
from a cluster (`kubectl get dg NAME -o yaml`), which carries its uid, the preview equals what
the controller applies, `superedge.io/applied-hash` included.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import orjson
import yaml

from servicegroup import __version__
from servicegroup.api.models import API_VERSION, GRID_TYPES, GROUP, ServiceGrid
from servicegroup.grid.naming import ChildNameError
from servicegroup.grid.nodeunits import units_of
from servicegroup.grid.render import render_service, render_units
from servicegroup.grid.templates import template_name_for, unused_pool_entries
from servicegroup.grid.validation import validate_grid
from servicegroup.settings import NodeSpec, OutputFormat, RenderSettings

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_INPUT = 2
USER_AGENT = f"servicegroup/{__version__} (render)"
LIST_PAGE = 500
_LIST_KINDS = frozenset({"List", "NodeList"})


class InputError(Exception):
    """The input cannot be read or understood at all (exit 2)."""


class UnitPreview(NamedTuple):
    unit: str
    template: str | None  # template name ("default" = spec.template); None when none applies
    template_field: str | None  # e.g. "spec.templatePool[test1]"
    child: dict[str, Any] | None
    error: str | None = None
    reason: str | None = None


class GridPreview(NamedTuple):
    kind: str
    namespace: str
    name: str
    grid_uniq_key: str
    errors: tuple[str, ...]
    notes: tuple[str, ...]
    units: tuple[UnitPreview, ...]
    service: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(u.error for u in self.units)

    @property
    def title(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class Preview(NamedTuple):
    grids: tuple[GridPreview, ...]
    skipped: tuple[str, ...]  # documents that are not grids

    @property
    def failed(self) -> bool:
        return any(g.failed for g in self.grids)


# ------------------------------------------------------------------------------- input


def load_documents(text: str, *, source: str) -> list[dict[str, Any]]:
    """Every object of a YAML stream, `List` items flattened, empty documents dropped."""
    try:
        raw = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    docs: list[dict[str, Any]] = []
    for index, doc in enumerate(raw, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InputError(f"{source}: document {index} is not an object")
        if doc.get("kind") in _LIST_KINDS and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                if not isinstance(item, dict):
                    raise InputError(
                        f"{source}: document {index} has an item that is not an object"
                    )
                docs.append(item)
        else:
            docs.append(doc)
    return docs


def read_text(path: str, *, stdin: TextIO | None = None) -> str:
    """The file's text ("-" reads stdin)."""
    if path == "-":
        return (stdin if stdin is not None else sys.stdin).read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"cannot read {path}: not UTF-8 text") from None


def nodes_from_specs(specs: Iterable[NodeSpec]) -> list[dict[str, Any]]:
    """Node objects for `--node NAME:KEY=VALUE,...` flags."""
    return [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": s.name, "labels": dict(s.labels)}}
        for s in specs
    ]


def nodes_from_documents(docs: Iterable[Mapping[str, Any]], *, source: str) -> list[dict[str, Any]]:
    """The Node objects among `docs` (other kinds are an error: the file is a node list)."""
    nodes: list[dict[str, Any]] = []
    for doc in docs:
        if doc.get("kind") != "Node":
            raise InputError(f"{source}: expected Node objects, found kind {doc.get('kind')!r}")
        metadata = doc.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
            raise InputError(f"{source}: a Node without metadata.name")
        labels = metadata.get("labels") or {}
        if not isinstance(labels, dict):
            raise InputError(f"{source}: Node {metadata['name']}: labels must be a map")
        nodes.append(dict(doc))
    return nodes


async def fetch_nodes(*, kubeconfig: str) -> list[dict[str, Any]]:
    """Every Node of the cluster `kubeconfig` points at (paged lists; nothing else is sent)."""
    from servicegroup.kube.client import KubeClient
    from servicegroup.kube.config import load_config
    from servicegroup.kube.resources import NODES
    from servicegroup.metrics import Metrics

    config = await load_config(kubeconfig=kubeconfig)
    nodes: list[dict[str, Any]] = []
    async with KubeClient(config=config, metrics=Metrics(), user_agent=USER_AGENT) as client:
        token: str | None = None
        while True:
            page = await client.list(NODES, limit=LIST_PAGE, continue_token=token)
            nodes.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return nodes


def merge_nodes(*sources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Nodes from all sources by name; a later source replaces an earlier one's node."""
    by_name: dict[str, Mapping[str, Any]] = {}
    for source in sources:
        for node in source:
            by_name[str((node.get("metadata") or {}).get("name", ""))] = node
    return list(by_name.values())


# ----------------------------------------------------------------------------- preview


def is_grid_document(doc: Mapping[str, Any]) -> bool:
    """Documents of our API group or with a grid kind are rendered; others are skipped."""
    api_version = doc.get("apiVersion")
    in_group = isinstance(api_version, str) and api_version.split("/")[0] == GROUP
    return in_group or doc.get("kind") in GRID_TYPES


def _describe(doc: Mapping[str, Any]) -> str:
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    kind = doc.get("kind") or "(no kind)"
    return f"{kind} {(metadata or {}).get('name') or '(no name)'}"


def preview_grid(
    obj: Mapping[str, Any], *, nodes: Sequence[Mapping[str, Any]], default_namespace: str
) -> GridPreview:
    """What the controller would do with grid `obj`, given `nodes` (pure)."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace_given = bool((metadata or {}).get("namespace"))
    if not namespace_given and isinstance(metadata, dict):
        obj = {**obj, "metadata": {**metadata, "namespace": default_namespace}}
    kind = str(obj.get("kind") or "")
    name = str((metadata or {}).get("name") or "")
    namespace = str((obj.get("metadata") or {}).get("namespace") or default_namespace)
    terminal: list[str] = []
    api_version = obj.get("apiVersion")
    if api_version != API_VERSION:
        terminal.append(
            f'apiVersion: Unsupported value: {_json(api_version)}: supported: "{API_VERSION}"'
        )
    result = validate_grid(obj)
    terminal.extend(str(e) for e in result.errors)
    # Dangling template references fail only the units that use them (SPEC B5).
    errors = terminal + [str(e) for e in result.reference_errors]
    grid = result.grid
    raw_spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    raw_key = (raw_spec or {}).get("gridUniqKey")
    key = (
        grid.spec.grid_uniq_key if grid is not None else raw_key if isinstance(raw_key, str) else ""
    )
    notes: list[str] = []
    if not namespace_given:
        notes.append(f"metadata.namespace is not set: shown in namespace {default_namespace}")
    if grid is not None and not grid.metadata.uid:
        notes.append(
            "metadata.uid is not set (not a live object): the controller fills in the "
            "ownerReference uid, so superedge.io/applied-hash will differ"
        )
    if grid is None or terminal:
        # Terminal errors: the controller reconciles nothing until the grid is fixed.
        return GridPreview(kind, namespace, name, key, tuple(errors), tuple(notes), ())
    units = sorted(units_of(nodes, key))
    if isinstance(grid, ServiceGrid):
        notes.append(
            f"one Service for all NodeUnits; the wrapper keeps its endpoints inside the caller's "
            f"NodeUnit of {key} ({len(units)} NodeUnit(s) now: {', '.join(units) or 'none'})"
        )
        try:
            service = render_service(grid)
        except ChildNameError as exc:
            errors.append(str(exc))
            return GridPreview(kind, namespace, name, key, tuple(errors), tuple(notes), ())
        return GridPreview(kind, namespace, name, key, tuple(errors), tuple(notes), (), service)
    if not units:
        notes.append(f"no node carries a non-empty label {key}: no NodeUnit, no child")
    if grid.spec.auto_delete_unused_template:
        unused = sorted(unused_pool_entries(grid.spec))
        if unused:
            notes.append(
                "autoDeleteUnusedTemplate: the controller would remove templatePool entries "
                + ", ".join(unused)
            )
    plan = render_units(grid, units)
    previews: list[UnitPreview] = []
    for unit in units:
        child = plan.children.get(unit)
        if child is not None:
            field = (
                "spec.template"
                if child.template_name == "default"
                else f"spec.templatePool[{child.template_name}]"
            )
            previews.append(UnitPreview(unit, child.template_name, field, child.obj))
            continue
        failure = plan.failures[unit]
        template, chosen_by = template_name_for(grid.spec, unit)
        previews.append(
            UnitPreview(
                unit, template or "default", chosen_by, None, failure.message, failure.reason
            )
        )
    return GridPreview(kind, namespace, name, key, tuple(errors), tuple(notes), tuple(previews))


def preview(
    docs: Iterable[Mapping[str, Any]],
    *,
    nodes: Sequence[Mapping[str, Any]],
    default_namespace: str = "default",
) -> Preview:
    """Previews of every grid among `docs`; the other documents are listed as skipped."""
    grids: list[GridPreview] = []
    skipped: list[str] = []
    for doc in docs:
        if is_grid_document(doc):
            grids.append(preview_grid(doc, nodes=nodes, default_namespace=default_namespace))
        else:
            skipped.append(_describe(doc))
    return Preview(tuple(grids), tuple(skipped))


# ------------------------------------------------------------------------------ output


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _yaml(obj: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False, width=1000)


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines() or [""])


def format_yaml(result: Preview) -> str:
    out: list[str] = []
    for grid in result.grids:
        header = [f"{grid.title} (gridUniqKey: {grid.grid_uniq_key or '-'})"]
        if grid.units or (not grid.errors and grid.kind != "ServiceGrid"):
            listed = ", ".join(u.unit for u in grid.units) or "none"
            header.append(f"NodeUnits: {len(grid.units)} ({listed})")
        header += [f"error: {e}" for e in grid.errors]
        header += [f"note: {n}" for n in grid.notes]
        out.append("---\n" + _comment("\n".join(header)))
        if grid.service is not None:
            out.append("---\n" + _comment("the Service of the ServiceGrid") + _yaml(grid.service))
        for unit in grid.units:
            if unit.child is not None:
                child = unit.child
                what = f"{child['kind']} {child['metadata']['name']}"
                line = f"NodeUnit {unit.unit}: template {unit.template} ({unit.template_field})"
                out.append("---\n" + _comment(f"{line} -> {what}") + _yaml(child))
            else:
                line = (
                    f"NodeUnit {unit.unit}: NO CHILD ({unit.reason}): {unit.error}"
                    f"\n  template {unit.template!r} chosen by {unit.template_field}"
                )
                out.append("---\n" + _comment(line))
    for skipped in result.skipped:
        out.append("---\n" + _comment(f"skipped {skipped}: not a grid"))
    return "".join(out)


def format_json(result: Preview) -> str:
    grids = []
    for grid in result.grids:
        entry: dict[str, Any] = {
            "kind": grid.kind,
            "namespace": grid.namespace,
            "name": grid.name,
            "gridUniqKey": grid.grid_uniq_key,
            "errors": list(grid.errors),
            "notes": list(grid.notes),
            "units": [_unit_json(u) for u in grid.units],
        }
        if grid.service is not None:
            entry["service"] = grid.service
        grids.append(entry)
    body = {"grids": grids, "skipped": list(result.skipped)}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n"


def _unit_json(unit: UnitPreview) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "unit": unit.unit,
        "template": unit.template,
        "templateField": unit.template_field,
    }
    if unit.child is not None:
        entry["child"] = unit.child
    else:
        entry["error"] = unit.error
        entry["reason"] = unit.reason
    return entry


def error_lines(result: Preview) -> list[str]:
    """One line per error, for stderr."""
    lines = []
    for grid in result.grids:
        lines += [f"{grid.title}: {e}" for e in grid.errors]
        lines += [
            f"{grid.title}: NodeUnit {u.unit}: {u.reason}: {u.error}" for u in grid.units if u.error
        ]
    return lines


# ----------------------------------------------------------------------------- command


def render_command(
    *,
    file: str,
    node_specs: Sequence[NodeSpec] = (),
    nodes_file: str | None = None,
    kubeconfig: str | None = None,
    output: OutputFormat = "yaml",
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The whole command with its inputs and streams explicit; returns the exit code."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        source = "stdin" if file == "-" else file
        docs = load_documents(read_text(file, stdin=stdin), source=source)
        cluster_nodes: list[dict[str, Any]] = []
        if kubeconfig:
            cluster_nodes = _fetch_nodes_sync(kubeconfig)
        file_nodes: list[dict[str, Any]] = []
        if nodes_file:
            file_nodes = nodes_from_documents(
                load_documents(read_text(nodes_file), source=nodes_file), source=nodes_file
            )
        result = preview(
            docs, nodes=merge_nodes(cluster_nodes, file_nodes, nodes_from_specs(node_specs))
        )
        if not result.grids:
            raise InputError(f"{source}: no DeploymentGrid, StatefulSetGrid or ServiceGrid found")
    except InputError as exc:
        print(f"servicegroup render: error: {exc}", file=err)
        return EXIT_INPUT
    out.write(format_json(result) if output == "json" else format_yaml(result))
    out.flush()
    for line in error_lines(result):
        print(f"servicegroup render: {line}", file=err)
    return EXIT_INVALID if result.failed else EXIT_OK


def _fetch_nodes_sync(kubeconfig: str) -> list[dict[str, Any]]:
    from servicegroup.kube.config import ConfigError
    from servicegroup.kube.errors import ApiError, TransportError

    try:
        return asyncio.run(fetch_nodes(kubeconfig=kubeconfig))
    except (ConfigError, ApiError, TransportError, OSError) as exc:
        raise InputError(f"cannot list the cluster's nodes: {' '.join(str(exc).split())}") from None


def run(settings: RenderSettings) -> int:
    """`servicegroup render` (see the module docstring)."""
    # `nodes_file` (--nodes FILE) and `kubeconfig` are read when RenderSettings has them.
    nodes_file: str | None = getattr(settings, "nodes_file", None)
    kubeconfig: str | None = getattr(settings, "kubeconfig", None)
    return render_command(
        file=settings.file,
        node_specs=settings.nodes,
        nodes_file=nodes_file,
        kubeconfig=kubeconfig,
        output=settings.output,
    )
