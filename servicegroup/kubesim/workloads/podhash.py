"""Stable short hashes of pod templates and revisions (`pod-template-hash`, revision names).

Owns: `template_hash(template, collision_count)` - the value of the `pod-template-hash`
label and the suffix of a Deployment's ReplicaSet names - and `revision_hash(data,
collision_count)` for ControllerRevision names, both rendered as kube-controller-manager
renders `ComputeHash`: a 32-bit FNV-1a, printed in decimal, each digit mapped through the
"safe" alphabet without vowels (so a hash never spells a word), e.g. `5d8f7c6b9`.

Invariants:
- Deterministic across processes and runs: the input is the canonical JSON of the value
  (sorted keys, no whitespace), never Python's randomized `hash`.
- The `pod-template-hash` label itself never feeds the hash (a template hashes the same
  before and after the label is added), and a different collision count gives a different
  hash, which is how a name collision is escaped.
- The value is a valid label value and DNS-1123 label part (at most 10 characters).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

HASH_LABEL = "pod-template-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: every character mapped into the vowel-free alphabet."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _with_collision(data: bytes, collision_count: int | None) -> int:
    if collision_count:
        data += collision_count.to_bytes(4, "little", signed=False)
    return fnv32a(data)


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The pod-template-hash of a Deployment's pod template."""
    labels = (template.get("metadata") or {}).get("labels") or {}
    if HASH_LABEL in labels:
        metadata = dict(template.get("metadata") or {})
        metadata["labels"] = {k: v for k, v in labels.items() if k != HASH_LABEL}
        template = {**template, "metadata": metadata}
    return safe_encode(str(_with_collision(_canonical(template), collision_count)))


def revision_hash(data: Any, collision_count: int | None = None) -> str:
    """The hash naming a ControllerRevision that holds `data`."""
    return safe_encode(str(_with_collision(_canonical(data), collision_count)))
