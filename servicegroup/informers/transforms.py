"""Transforms applied to objects before an informer caches them, to save memory.

Owns: the `Transform` type and the stock transforms.

Invariants:
- A transform never mutates its input: it returns the input itself when there is nothing to
  change, or a new dict sharing every unchanged sub-object (shallow copies only where a key
  is removed).
- Stock transforms are values: `compose(a, b) == compose(a, b)`, so an informer factory can
  tell "the same transform" from "a different one" for callers that build them separately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Transform = Callable[[dict[str, Any]], dict[str, Any]]

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop `metadata.managedFields` and kubectl's last-applied-configuration annotation."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return obj
    annotations = metadata.get("annotations")
    has_last_applied = isinstance(annotations, dict) and LAST_APPLIED_ANNOTATION in annotations
    if "managedFields" not in metadata and not has_last_applied:
        return obj
    new_metadata = {k: v for k, v in metadata.items() if k != "managedFields"}
    if has_last_applied:
        assert isinstance(annotations, dict)
        new_metadata["annotations"] = {
            k: v for k, v in annotations.items() if k != LAST_APPLIED_ANNOTATION
        }
    return {**obj, "metadata": new_metadata}


def metadata_only(obj: dict[str, Any]) -> dict[str, Any]:
    """Keep only `apiVersion`, `kind` and `metadata` (labels, owners, resourceVersion)."""
    return {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}


@dataclass(frozen=True)
class _Composed:
    transforms: tuple[Transform, ...]

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        for transform in self.transforms:
            obj = transform(obj)
        return obj


def compose(*transforms: Transform) -> Transform:
    """Apply `transforms` left to right; equal when built from the same transforms."""
    flat: list[Transform] = []
    for transform in transforms:
        flat.extend(transform.transforms if isinstance(transform, _Composed) else (transform,))
    return _Composed(tuple(flat))
