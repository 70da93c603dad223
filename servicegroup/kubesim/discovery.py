"""Discovery documents: /version, /api, /apis, /api/v1, /apis/{g}[/{v}] and aggregated v2.

Owns the JSON bodies kube-apiserver serves for API discovery, built from the `Registry`:
`version_info`, `api_versions`, `api_group_list`, `api_group`, `api_resource_list` (the
legacy forms) and `aggregated` (apidiscovery.k8s.io v2 / v2beta1 `APIGroupDiscoveryList`),
plus `negotiate_aggregated` (which form an Accept header asks for).

Invariants:
- Versions of a group are listed in kube's version priority order (GA before beta before
  alpha, higher numbers first); the first is the preferred version.
- Every served resource appears with its verbs, short names, categories, singular name and
  subresources; bodies are rebuilt whenever the registry changes (CRDs come and go).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from servicegroup.kubesim.registry import SUBRESOURCE_VERBS, Registry, ResourceType

GIT_VERSION = "v1.32.0-kubesim"

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key: GA > beta > alpha, then higher major/minor; non-kube versions last."""
    match = _VERSION_RE.match(version)
    if not match:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, version)


def _sorted_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=version_priority)


def _group_versions(registry: Registry) -> list[tuple[str, list[str]]]:
    groups = registry.groups()
    return [(group, _sorted_versions(versions)) for group, versions in groups.items() if group]


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in _group_versions(registry)],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    for name, versions in _group_versions(registry):
        if name == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}
    return None


def storage_version_hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _legacy_resource(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = storage_version_hash(rt)
    return entry


def _subresource_kind(rt: ResourceType, subresource: str) -> tuple[str, str, str]:
    if subresource == "scale":
        return ("autoscaling", "v1", "Scale")
    return (rt.group, rt.version, rt.kind)


def _subresource_verbs(subresource: str) -> list[str]:
    if subresource == "finalize":
        return ["update"]
    return list(SUBRESOURCE_VERBS)


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    entries: list[dict[str, Any]] = []
    for rt in sorted(resources, key=lambda r: r.plural):
        entries.append(_legacy_resource(rt))
        for sub in rt.subresources:
            sub_group, sub_version, sub_kind = _subresource_kind(rt, sub)
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub_kind,
                "verbs": _subresource_verbs(sub),
            }
            if sub == "scale":
                sub_entry["group"] = sub_group
                sub_entry["version"] = sub_version
            entries.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subresources = []
    for sub in rt.subresources:
        sub_group, sub_version, sub_kind = _subresource_kind(rt, sub)
        subresources.append(
            {
                "subresource": sub,
                "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
                "verbs": _subresource_verbs(sub),
            }
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated(registry: Registry, *, legacy: bool, version: str = "v2") -> dict[str, Any]:
    """The APIGroupDiscoveryList for /api (legacy=True: the core group) or /apis."""
    if legacy:
        groups: list[tuple[str, list[str]]] = [("", ["v1"])]
    else:
        groups = _group_versions(registry)
    items = []
    for group, versions in groups:
        version_entries = []
        for ver in versions:
            resources = sorted(registry.in_group_version(group, ver), key=lambda r: r.plural)
            version_entries.append(
                {
                    "version": ver,
                    "resources": [_aggregated_resource(rt) for rt in resources],
                    "freshness": "Current",
                }
            )
        items.append(
            {"metadata": {"name": group, "creationTimestamp": None}, "versions": version_entries}
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def negotiate_aggregated(accept: str) -> str | None:
    """The aggregated discovery version ("v2"/"v2beta1") the Accept header prefers, if any."""
    for part in accept.split(","):
        params = {}
        pieces = [p.strip() for p in part.split(";")]
        if pieces[0] not in ("application/json", "*/*"):
            continue
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            params[name.strip()] = value.strip()
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
            if params.get("v") in ("v2", "v2beta1"):
                return params["v"]
        elif "as" not in params:
            return None  # a plain JSON form comes first: legacy discovery
    return None
