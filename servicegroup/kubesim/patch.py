"""The PATCH engines of kube-apiserver: JSON merge patch, JSON patch, strategic merge patch.

Owns `merge_patch` (RFC 7386 as gopkg.in/evanphx/json-patch.v4's MergePatch does it: null
deletes, objects merge, anything else replaces, nulls inside newly added objects are
dropped), `json_patch` (RFC 6902 as the same library applies it, quirks included: `-`
appends, negative indices count from the end, `replace` of an absent object member adds
it, `test` compares JSON text so 1 and 1.0 differ), `strategic_merge_patch`
(k8s.io/apimachinery strategicpatch: lists tagged `patchStrategy:"merge"` merged by their
`patchMergeKey`, untagged lists replaced, primitive merge lists unioned, null deletes, the
`$patch` / `$retainKeys` / `$setElementOrder/` / `$deleteFromPrimitiveList/` directives)
and `PatchError`.

`PatchError.status` is the HTTP status kube-apiserver answers with: 400 for a malformed
patch, 413 for a JSON patch of more than 10000 operations, 415 for a strategic merge
patch on a custom resource, 422 for a JSON patch that does not apply (failed `test`,
missing path) or a strategic patch using lists of lists or contradicting its
retainKeys, 500 where kube-apiserver passes a raw library error through (e.g. a merge
list item without its merge key). Messages follow the upstream wording.

Invariant: inputs are never mutated; every result is a fresh object, except that a merge
patch's result shares the values the patch does not touch with its target (copy it before
mutating it).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Final

from servicegroup.kubesim.listtypes import ListTypes
from servicegroup.kubesim.typenode import TypeNode

MAX_JSON_PATCH_OPERATIONS: Final = 10000

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PREFIX = "$deleteFromPrimitiveList"
_ORDER_PREFIX = "$setElementOrder"

_ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
_ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
_ERR_ORDER_LIST = "invalid patch format of setElementOrder list"
_ERR_LIST_OF_LISTS = "lists of lists are not supported"
_UNSUPPORTED_SMP = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)


class PatchError(Exception):
    """A patch kube-apiserver would refuse; `status` is its HTTP status code."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---- JSON merge patch ----------------------------------------------------------------------


def merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """`target` with an RFC 7386 merge patch applied (a patch must be a JSON object).

    Copy on write: the maps on the patch's paths are new, everything else is shared with
    `target`."""
    if not isinstance(patch, dict):
        raise PatchError("Invalid JSON Patch")
    return _merge_docs(target if isinstance(target, dict) else {}, patch)


def _merge_docs(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif out.get(k) is None:
            out[k] = _prune_nulls(v)
        elif isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _merge_docs(out[k], v)
        elif isinstance(out[k], dict):
            out[k] = copy.deepcopy(v)
        else:
            out[k] = _prune_nulls(v)
    return out


def _prune_nulls(v: Any) -> Any:
    """Drop null members of objects, recursively (null array items stay, as upstream)."""
    if isinstance(v, dict):
        return {k: _prune_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_prune_nulls(x) for x in v]
    return v


# ---- JSON patch ------------------------------------------------------------------------------


class _OpError(Exception):
    pass


_INDEX = re.compile(r"[+-]?[0-9]+")


def json_patch(target: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """`target` with an RFC 6902 patch applied, operation by operation."""
    if not isinstance(operations, list):
        raise PatchError(
            f"json: cannot unmarshal {_json_kind(operations)} into Go value of type jsonpatch.Patch"
        )
    for op in operations:
        if op is not None and not isinstance(op, dict):
            raise PatchError(
                f"json: cannot unmarshal {_json_kind(op)} into Go value of type jsonpatch.Operation"
            )
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(operations)}",
            status=413,
        )
    root: list[Any] = [copy.deepcopy(target)]
    for op in operations:
        try:
            _apply_operation(root, op or {})
        except _OpError as err:
            raise PatchError(str(err), status=422) from None
    if not isinstance(root[0], dict):
        raise PatchError("the patched document is not a JSON object", status=422)
    return root[0]


def _json_kind(v: Any) -> str:
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return "string" if isinstance(v, str) else "null"


def _apply_operation(root: list[Any], op: dict[str, Any]) -> None:
    kind = op.get("op")
    if kind == "add":
        _op_add(root, op)
    elif kind == "remove":
        _op_remove(root, op)
    elif kind == "replace":
        _op_replace(root, op)
    elif kind == "move":
        _op_move(root, op)
    elif kind == "test":
        _op_test(root, op)
    elif kind == "copy":
        _op_copy(root, op)
    else:
        raise _OpError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")


def _decode_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _find(root: list[Any], path: str) -> tuple[Any, str] | None:
    """The container holding the last token of `path`, and that token (evanphx findObject)."""
    parts = path.split("/")
    if len(parts) < 2:
        return None
    container = root[0]
    for part in parts[1:-1]:
        try:
            nxt = _get(container, _decode_token(part))
        except _OpError:
            return None
        if not isinstance(nxt, (dict, list)):
            return None
        container = nxt
    return container, _decode_token(parts[-1])


def _atoi(token: str) -> int:
    if not _INDEX.fullmatch(token):
        raise _OpError(f'strconv.Atoi: parsing "{token}": invalid syntax')
    return int(token)


def _invalid_index(i: int) -> _OpError:
    return _OpError(f"Unable to access invalid index: {i}: invalid index referenced")


def _array_index(items: list[Any], token: str, size: int) -> int:
    i = _atoi(token)
    if i >= size:
        raise _invalid_index(i)
    if i < 0:
        if i < -size:
            raise _invalid_index(i)
        i += size
    return i


def _get(container: Any, token: str) -> Any:
    if isinstance(container, dict):
        return container.get(token)
    if isinstance(container, list):
        return container[_array_index(container, token, len(container))]
    raise _OpError("not a container")


def _add(container: Any, token: str, value: Any) -> None:
    if isinstance(container, dict):
        container[token] = value
        return
    if token == "-":
        container.append(value)
        return
    try:
        i = _atoi(token)
    except _OpError as err:
        raise _OpError(f"value was not a proper array index: '{token}': {err}") from None
    size = len(container) + 1
    if i >= size or i < -size:
        raise _invalid_index(i)
    container.insert(i + size if i < 0 else i, value)


def _remove(container: Any, token: str) -> None:
    if isinstance(container, dict):
        if token not in container:
            raise _OpError(f"Unable to remove nonexistent key: {token}: missing value")
        del container[token]
        return
    del container[_array_index(container, token, len(container))]


def _path_of(op: dict[str, Any], name: str, verb: str, what: str) -> str:
    value = op.get(name)
    if not isinstance(value, str):
        raise _OpError(f"{verb} operation failed to decode {name}: {what}")
    return value


_NO_PATH = "operation missing path field: missing value"
_NO_FROM = "operation, missing from field: missing value"


def _op_add(root: list[Any], op: dict[str, Any]) -> None:
    path = _path_of(op, "path", "add", "missing value")
    found = _find(root, path)
    if found is None:
        raise _OpError(
            f'add operation does not apply: doc is missing path: "{path}": missing value'
        )
    try:
        _add(found[0], found[1], copy.deepcopy(op.get("value")))
    except _OpError as err:
        raise _OpError(f"error in add for path: '{path}': {err}") from None


def _op_remove(root: list[Any], op: dict[str, Any]) -> None:
    path = _path_of(op, "path", "remove", "missing value")
    found = _find(root, path)
    if found is None:
        raise _OpError(
            f'remove operation does not apply: doc is missing path: "{path}": missing value'
        )
    try:
        _remove(found[0], found[1])
    except _OpError as err:
        raise _OpError(f"error in remove for path: '{path}': {err}") from None


def _op_replace(root: list[Any], op: dict[str, Any]) -> None:
    path = _path_of(op, "path", "replace", _NO_PATH)
    if path == "":
        # Upstream wraps a nil error here: a non-container value is silently ignored.
        if isinstance(op.get("value"), (dict, list)):
            root[0] = copy.deepcopy(op["value"])
        return
    found = _find(root, path)
    if found is None:
        raise _OpError(
            f"replace operation does not apply: doc is missing path: {path}: missing value"
        )
    container, token = found
    if isinstance(container, list):
        try:
            i = _array_index(container, token, len(container))
        except _OpError:
            raise _OpError(
                f"replace operation does not apply: doc is missing key: {path}: missing value"
            ) from None
        container[i] = copy.deepcopy(op.get("value"))
    else:
        container[token] = copy.deepcopy(op.get("value"))


def _op_move(root: list[Any], op: dict[str, Any]) -> None:
    source = _path_of(op, "from", "move", _NO_FROM)
    found = _find(root, source)
    if found is None:
        raise _OpError(
            f"move operation does not apply: doc is missing from path: {source}: missing value"
        )
    container, token = found
    try:
        value = _get(container, token)
        _remove(container, token)
    except _OpError as err:
        raise _OpError(f"error in move for path: '{token}': {err}") from None
    path = _path_of(op, "path", "move", _NO_PATH)
    target = _find(root, path)
    if target is None:
        raise _OpError(
            f"move operation does not apply: doc is missing destination path: {path}: missing value"
        )
    try:
        _add(target[0], target[1], value)
    except _OpError as err:
        raise _OpError(f"error in move for path: '{path}': {err}") from None


def _op_copy(root: list[Any], op: dict[str, Any]) -> None:
    source = _path_of(op, "from", "copy", _NO_FROM)
    found = _find(root, source)
    if found is None:
        raise _OpError(
            f"copy operation does not apply: doc is missing from path: {source}: missing value"
        )
    try:
        value = _get(found[0], found[1])
    except _OpError as err:
        raise _OpError(f"error in copy for from: '{source}': {err}") from None
    path = _path_of(op, "path", "copy", "missing value")
    target = _find(root, path)
    if target is None:
        raise _OpError(
            f"copy operation does not apply: doc is missing destination path: {path}: missing value"
        )
    try:
        _add(target[0], target[1], copy.deepcopy(value))
    except _OpError as err:
        raise _OpError(f"error while adding value during copy: {err}") from None


def _op_test(root: list[Any], op: dict[str, Any]) -> None:
    path = _path_of(op, "path", "test", _NO_PATH)
    expected = op.get("value")
    failed = _OpError(f"testing value {path} failed: test failed")
    if path == "":
        if not _same_json(root[0], expected):
            raise failed
        return
    found = _find(root, path)
    if found is None:
        raise _OpError(f"test operation does not apply: is missing path: {path}: missing value")
    try:
        actual = _get(found[0], found[1])
    except _OpError as err:
        raise _OpError(f"error in test for path: '{path}': {err}") from None
    if actual is None or expected is None:
        if actual is not expected:
            raise failed
    elif not _same_json(actual, expected):
        raise failed


def _same_json(a: Any, b: Any) -> bool:
    """evanphx's lazyNode.equal: scalars compare as JSON text (1 differs from 1.0)."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(
                (a[k] is None and b[k] is None)
                or (a[k] is not None and b[k] is not None and _same_json(a[k], b[k]))
                for k in a
            )
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


# ---- strategic merge patch ------------------------------------------------------------------


def strategic_merge_patch(
    target: dict[str, Any], patch: dict[str, Any], *, list_types: ListTypes
) -> dict[str, Any]:
    """`target` with a Kubernetes strategic merge patch applied, per the kind's schema."""
    if not list_types.supports_smp:
        raise PatchError(_UNSUPPORTED_SMP, status=415)
    if not isinstance(patch, dict):
        raise PatchError("invalid JSON document")
    result = _smp_map(copy.deepcopy(target), copy.deepcopy(patch), list_types.root)
    return result if isinstance(result, dict) else {}


def _bad_request(message: str) -> PatchError:
    return PatchError(message, status=400)


def _internal(message: str) -> PatchError:
    return PatchError(message, status=500)


def _go(v: Any) -> str:
    """Go's %v of a decoded JSON value, for error messages."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v).removesuffix(".0")
    if isinstance(v, list):
        return "[" + " ".join(_go(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _go_type(v: Any) -> str:
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "float64"
    return "string" if isinstance(v, str) else "<nil>"


def _no_merge_key(item: Any, merge_key: str) -> PatchError:
    return _internal(f"map: {_go(item)} does not contain declared merge key: {merge_key}")


def _bad_arg_type(expected: str, actual: Any) -> PatchError:
    return _internal(f"expected a {expected}, but received a {_go_type(actual)}")


def _go_eq(a: Any, b: Any) -> bool:
    """Go's == on decoded JSON values (all numbers are float64; maps never compare)."""
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return _go_type(a) == _go_type(b) and a == b


def _strategies(tag: str | None) -> tuple[bool, str]:
    """(retainKeys?, merge|replace|"") from a `patchStrategy` tag."""
    parts = tag.split(",") if tag else []
    if not parts:
        return False, ""
    if len(parts) == 1:
        return (True, "") if parts[0] == "retainKeys" else (False, parts[0])
    if len(parts) == 2 and "retainKeys" in parts:
        return True, parts[1] if parts[0] == "retainKeys" else parts[0]
    raise _internal(f"unexpected patch strategy: {_go(parts)}")


def _smp_map(original: dict[str, Any] | None, patch: dict[str, Any], node: TypeNode) -> Any:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            replacement = {k: v for k, v in patch.items() if k != _DIRECTIVE}
            return _remove_directives(replacement)[0]
        if directive == "delete":
            return {}
        raise _internal(f"unknown patch type: {_go(directive)} in map: {_go(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_element_orders(original, patch, node)
    for raw_key, pv in list(patch.items()):
        k, deletes = raw_key, False
        if raw_key.startswith(_DELETE_PREFIX):
            k, deletes = _extract_key(raw_key, _DELETE_PREFIX, _ERR_PRIMITIVE_LIST), True
        if pv is None:
            original.pop(k, None)
            continue
        if k not in original or _go_type(original[k]) != _go_type(pv):
            if not deletes:
                _discard_nulls(pv)
                value, keep = _remove_directives(pv)
                if keep:
                    original[k] = value
                else:
                    original.pop(k, None)
            continue
        child = node.child(k)[0]
        current = original[k]
        if isinstance(current, dict):
            strategy = _strategies(child.patch_strategy)[1]
            original[k] = pv if strategy == "replace" else _smp_map(current, pv, child)
        elif isinstance(current, list):
            strategy = _strategies(child.patch_strategy)[1]
            original[k] = _merge_list_field(current, pv, child, strategy, deletes=deletes)
        else:
            value, keep = _remove_directives(pv)
            if keep:
                original[k] = value
            else:
                del original[k]
    return original


def _extract_key(text: str, prefix: str, error: str) -> str:
    head, sep, rest = text.partition("/")
    if not sep or head != prefix:
        raise _bad_request(error)
    return rest


def _discard_nulls(v: Any) -> None:
    if isinstance(v, dict):
        for k in [k for k, x in v.items() if x is None]:
            del v[k]
        for x in v.values():
            _discard_nulls(x)
    elif isinstance(v, list):
        for x in v:
            _discard_nulls(x)


def _remove_directives(v: Any) -> tuple[Any, bool]:
    """The value without `$patch` maps (which drop out entirely)."""
    if isinstance(v, dict):
        if _DIRECTIVE in v:
            return None, False
        out: dict[str, Any] = {}
        for k, x in v.items():
            value, keep = _remove_directives(x)
            if keep:
                out[k] = value
        return out, True
    if isinstance(v, list):
        return [value for value, keep in map(_remove_directives, v) if keep], True
    return v, True


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    keys = patch.pop(_RETAIN_KEYS)
    if not isinstance(keys, list):
        raise _bad_request(_ERR_RETAIN_KEYS)
    allowed = {k for k in keys if isinstance(k, str)}
    for k, v in patch.items():
        if v is None or k.startswith((_DELETE_PREFIX, _ORDER_PREFIX)):
            continue
        if k not in allowed:
            raise _bad_request(_ERR_RETAIN_KEYS)
    for k in [k for k in original if k not in allowed]:
        del original[k]


def _merge_list_field(
    original: list[Any], patch: Any, node: TypeNode, strategy: str, *, deletes: bool
) -> Any:
    if strategy != "merge":
        return patch
    if not isinstance(patch, list):
        raise _bad_arg_type("[]interface {}", patch)
    return _merge_list(original, patch, node.item(), node.merge_key or "", deletes=deletes)


def _list_kind(*lists: list[Any]) -> str:
    """ "map" or "scalar": the one element type of the lists (sliceElementType)."""
    first: str | None = None
    for items in lists:
        for item in items:
            kind = _go_type(item)
            if first is None:
                if isinstance(item, list):
                    raise PatchError(_ERR_LIST_OF_LISTS, status=422)
                first = kind
            elif kind != first:
                raise _internal(f"list element types are not identical: {_go(list(lists))}")
    if first is None:
        raise _internal("no elements in any of the given slices")
    return "map" if first == "map[string]interface {}" else "scalar"


def _merge_list(
    original: list[Any], patch: list[Any], elem: TypeNode, merge_key: str, *, deletes: bool
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _list_kind(original, patch)
    if kind != "map":
        if deletes:
            return [x for x in original if not any(_go_eq(x, d) for d in patch)]
        merged: list[Any] = []
        for x in [*original, *patch]:
            if not any(_go_eq(x, y) for y in merged):
                merged.append(x)
    else:
        if not merge_key:
            raise _internal("cannot merge lists without merge key for a list of maps")
        original, patch = _merge_special_items(original, patch, merge_key)
        merged = _merge_keyed_items(original, patch, merge_key, elem)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_order(
        patch_items,
        server_only,
        patch_order=patch,
        server_order=original,
        merge_key=merge_key,
        kind=kind,
    )


def _merge_special_items(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """Apply `$patch: delete` items; `$patch: replace` makes the rest the whole list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            original = [
                x
                for x in original
                if not (isinstance(x, dict) and _go_eq(x.get(merge_key), item[merge_key]))
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _internal("merging lists cannot yet be specified in the patch")
        else:
            raise _internal(f"unknown patch type: {_go(directive)} in map: {_go(item)}")
    if replace:
        return plain, []
    return original, plain


def _merge_keyed_items(
    original: list[Any], patch: list[Any], merge_key: str, elem: TypeNode
) -> list[Any]:
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        for i, existing in enumerate(merged):
            if isinstance(existing, dict) and _go_eq(existing.get(merge_key), item[merge_key]):
                merged[i] = _smp_map(existing, item, elem)
                break
        else:
            merged.append(item)
    return merged


def _position(order: list[Any], item: Any, merge_key: str) -> int:
    for i, x in enumerate(order):
        if merge_key:
            if (
                isinstance(x, dict)
                and isinstance(item, dict)
                and _go_eq(x.get(merge_key), item.get(merge_key))
            ):
                return i
        elif _go_eq(x, item):
            return i
    return -1


def _partition(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Items present in `by` (the patch or its order list), and the server-only rest."""
    inside: list[Any] = []
    outside: list[Any] = []
    for item in merged:
        if merge_key:
            if not isinstance(item, dict) or merge_key not in item:
                raise _no_merge_key(item, merge_key)
            for x in by:
                if not isinstance(x, dict):
                    raise _internal(f"value for key {merge_key} is not a map.")
        (inside if _position(by, item, merge_key) >= 0 else outside).append(item)
    return inside, outside


def _sort_by(items: list[Any], order: list[Any], merge_key: str, kind: str) -> list[Any]:
    deleted: list[Any] = []
    if kind == "map":
        for x in [*items, *order]:
            if not isinstance(x, dict) or merge_key not in x:
                raise _no_merge_key(x, merge_key)
        deleted = [x for x in items if x.get(_DIRECTIVE) == "delete"]
        items = [x for x in items if x.get(_DIRECTIVE) != "delete"]

    def rank(item: Any) -> int:
        at = _position(order, item, merge_key)
        return at if at >= 0 else len(order)

    return sorted(items, key=rank) + deleted


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    *,
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    kind: str,
) -> list[Any]:
    """Patch items in patch order, server-only items in live order, interleaved by the
    live order where both are known; otherwise patch items come first."""
    right = _sort_by(patch_items, patch_order, merge_key, kind)
    left = _sort_by(server_only, server_order, merge_key, kind)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _position(server_order, left[i], merge_key)
            ri = _position(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _merge_element_orders(original: dict[str, Any], patch: dict[str, Any], node: TypeNode) -> None:
    """Process `$setElementOrder/<field>` with its list: merge, then order as told."""
    for raw_key in [k for k in patch if k.startswith(_ORDER_PREFIX)]:
        order = patch.pop(raw_key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        k = _extract_key(raw_key, _ORDER_PREFIX, _ERR_ORDER_LIST)
        in_original, in_patch = k in original, k in patch
        current, patch_list = original.get(k), patch.get(k)
        if in_original and not isinstance(current, list):
            raise _bad_arg_type("[]interface {}", current)
        if in_patch and not isinstance(patch_list, list):
            raise _bad_arg_type("[]interface {}", patch_list)
        child = node.child(k)[0]
        strategy = _strategies(child.patch_strategy)[1]
        merge_key = child.merge_key or ""
        _check_order(patch_list or [], order, merge_key)
        if in_original and not in_patch:
            merged: Any = current
        elif in_patch and not in_original:
            merged = _remove_directives(patch_list)[0]
        elif in_original and in_patch:
            merged = _merge_list_field(current or [], patch_list, child, strategy, deletes=False)
        else:
            continue
        patch_items, server_only = _partition(merged, order, merge_key)
        kind = _list_kind(current or [], patch_list or [])
        original[k] = _normalize_order(
            patch_items,
            server_only,
            patch_order=order,
            server_order=current or [],
            merge_key=merge_key,
            kind=kind,
        )
        patch.pop(k, None)


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list's items must appear in the order list, in the same relative order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for x in patch_list:
            if not isinstance(x, dict):
                raise _bad_arg_type("map[string]interface {}", x)
        items = [x for x in patch_list if x.get(_DIRECTIVE) != "delete"]
    p = s = 0
    while p < len(items) and s < len(order):
        if isinstance(items[p], dict) and _DIRECTIVE in items[p]:
            p += 1
            continue
        if merge_key:
            if not isinstance(order[s], dict) or merge_key not in order[s]:
                raise _no_merge_key(order[s], merge_key)
            if merge_key not in items[p]:
                raise _no_merge_key(items[p], merge_key)
            same = _go_eq(items[p][merge_key], order[s][merge_key])
        else:
            same = _go_eq(items[p], order[s])
        if same:
            p += 1
        s += 1
    if p < len(items) and s >= len(order):
        raise _internal(
            f"the order in patch list:\n{_go(patch_list)}\n doesn't match "
            f"{_ORDER_PREFIX} list:\n{_go(order)}"
        )
