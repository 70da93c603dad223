"""A CEL (Common Expression Language) subset for CRD `x-kubernetes-validations` rules.

Owns parsing a rule into an AST (`compile`) and evaluating it against raw JSON values
(`evaluate`). Supported: null/bool/int/double/string literals (quotes, triple quotes, raw
strings, escapes), list and map literals, `self` and `oldSelf`, field selection, indexing,
`has()`, `size()`, `in`, `&&` `||` `!`, comparisons, arithmetic, the ternary operator, the
string functions `matches` `startsWith` `endsWith` `contains` `lowerAscii` `upperAscii`
`trim` `split` `join` `replace` `indexOf` `substring`, the conversions `int` `double`
`string` `bool` `dyn`, and the macros `all` `exists` `exists_one` `map` `filter`.

Invariants: `compile` raises `CELSyntaxError` only for text that is not valid CEL for the
Kubernetes environment (grammar errors, undeclared variables, a bad `has()` argument) and
`CELUnsupported` for valid-looking CEL this subset does not implement (other functions,
optionals, timestamps...): callers must skip those rules rather than reject them.
`evaluate` raises `CELEvalError` with cel-go's wording ("no such key: x", "no such
overload", "division by zero"...). Evaluation follows CEL semantics: int is 64-bit with
overflow errors, `&&`/`||`/`all`/`exists` absorb errors when the other side decides,
numbers compare across int/double, equality is heterogeneous.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CELError",
    "CELEvalError",
    "CELSyntaxError",
    "CELUnsupported",
    "Program",
    "compile_rule",
    "evaluate",
]

_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1

_RESERVED = frozenset(
    {
        "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
        "loop", "package", "namespace", "return", "var", "void", "while",
    }
)  # fmt: skip
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_METHODS = frozenset(
    {
        "size", "matches", "startsWith", "endsWith", "contains", "lowerAscii", "upperAscii",
        "trim", "split", "join", "replace", "indexOf", "lastIndexOf", "substring",
    }
)  # fmt: skip
_GLOBALS = frozenset({"size", "int", "double", "string", "bool", "dyn", "matches", "type"})
_VARIABLES = frozenset({"self", "oldSelf"})


class CELError(Exception):
    """Base class of everything this module raises."""


class CELSyntaxError(CELError):
    """The rule does not compile: kube-apiserver would reject the CRD."""


class CELUnsupported(CELError):
    """The rule may be valid CEL, but uses something this subset does not implement."""


class CELEvalError(CELError):
    """A runtime error (the rule neither passed nor failed)."""


# ---------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True)
class _Lit:
    value: Any


@dataclass(frozen=True)
class _Ident:
    name: str


@dataclass(frozen=True)
class _Select:
    operand: _Node
    name: str


@dataclass(frozen=True)
class _Has:
    operand: _Node
    name: str


@dataclass(frozen=True)
class _Index:
    operand: _Node
    index: _Node


@dataclass(frozen=True)
class _Call:
    name: str
    target: _Node | None
    args: tuple[_Node, ...]


@dataclass(frozen=True)
class _ListLit:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _MapLit:
    entries: tuple[tuple[_Node, _Node], ...]


@dataclass(frozen=True)
class _Unary:
    op: str
    operand: _Node


@dataclass(frozen=True)
class _Binary:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _Ternary:
    cond: _Node
    then: _Node
    otherwise: _Node


@dataclass(frozen=True)
class _Macro:
    name: str
    target: _Node
    var: str
    args: tuple[_Node, ...]


_Node = (
    _Lit | _Ident | _Select | _Has | _Index | _Call | _ListLit | _MapLit | _Unary | _Binary
    | _Ternary | _Macro
)  # fmt: skip


@dataclass(frozen=True)
class Program:
    """A compiled rule: the source text, its AST, and whether it reads `oldSelf`."""

    source: str
    root: _Node = field(repr=False)
    uses_old_self: bool


# ---------------------------------------------------------------------------------------
# Lexer


@dataclass(frozen=True)
class _Token:
    kind: str  # "int", "uint", "double", "string", "bytes", "ident", "op", "eof"
    value: Any
    pos: int


_PUNCT = (
    "==", "!=", "<=", ">=", "&&", "||", ".?", "[?",
    "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}",
)  # fmt: skip
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?[uU]?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?",
}  # fmt: skip


class _Lexer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def error(self, pos: int, message: str) -> CELSyntaxError:
        return CELSyntaxError(_format_error(self.source, pos, f"Syntax error: {message}"))

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        while True:
            token = self._next()
            out.append(token)
            if token.kind == "eof":
                return out

    def _skip_space(self) -> None:
        text = self.source
        while self.pos < len(text):
            if text[self.pos] in " \t\r\n\f":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            else:
                return

    def _next(self) -> _Token:
        self._skip_space()
        text, start = self.source, self.pos
        if start >= len(text):
            return _Token("eof", None, start)
        char = text[start]
        lowered = text[start : start + 2].lower()
        if (
            char in "'\""
            or (lowered[:1] in ("r", "b") and lowered[1:2] in ("'", '"'))
            or (lowered in ("rb", "br") and text[start + 2 : start + 3] in ("'", '"'))
        ):
            return self._string()
        if char.isdigit() or (char == "." and text[start + 1 : start + 2].isdigit()):
            match = _NUMBER_RE.match(text, start)
            assert match is not None
            self.pos = match.end()
            return self._number(match.group(0), start)
        match = _IDENT_RE.match(text, start)
        if match:
            self.pos = match.end()
            return _Token("ident", match.group(0), start)
        for punct in _PUNCT:
            if text.startswith(punct, start):
                self.pos += len(punct)
                return _Token("op", punct, start)
        raise self.error(start, f"token recognition error at: '{char}'")

    def _number(self, literal: str, start: int) -> _Token:
        unsigned = literal[-1] in "uU"
        body = literal[:-1] if unsigned else literal
        if body[:2].lower() == "0x":
            value = int(body, 16)
        elif any(c in body for c in ".eE"):
            if unsigned:
                raise self.error(start, f"invalid unsigned literal {literal}")
            return _Token("double", float(body), start)
        else:
            value = int(body)
        if unsigned:
            if value > 2**64 - 1:
                raise self.error(start, f"uint literal out of range: {literal}")
            return _Token("uint", value, start)
        if value > _INT_MAX:
            raise self.error(start, f"int literal out of range: {literal}")
        return _Token("int", value, start)

    def _string(self) -> _Token:
        text, start = self.source, self.pos
        raw = is_bytes = False
        while text[self.pos] in "rRbB":
            raw = raw or text[self.pos] in "rR"
            is_bytes = is_bytes or text[self.pos] in "bB"
            self.pos += 1
        quote = text[self.pos]
        triple = text.startswith(quote * 3, self.pos)
        delimiter = quote * 3 if triple else quote
        self.pos += len(delimiter)
        chunks: list[str] = []
        while True:
            if self.pos >= len(text):
                raise self.error(start, "unterminated string literal")
            if text.startswith(delimiter, self.pos):
                self.pos += len(delimiter)
                break
            char = text[self.pos]
            if char == "\n" and not triple:
                raise self.error(start, "unterminated string literal")
            if char == "\\" and not raw:
                chunks.append(self._escape(start))
                continue
            chunks.append(char)
            self.pos += 1
        return _Token("bytes" if is_bytes else "string", "".join(chunks), start)

    def _escape(self, start: int) -> str:
        text = self.source
        self.pos += 1
        if self.pos >= len(text):
            raise self.error(start, "unterminated escape sequence")
        char = text[self.pos]
        if char in _SIMPLE_ESCAPES:
            self.pos += 1
            return _SIMPLE_ESCAPES[char]
        widths = {"x": 2, "X": 2, "u": 4, "U": 8}
        if char in widths:
            digits = text[self.pos + 1 : self.pos + 1 + widths[char]]
            if len(digits) != widths[char] or not all(
                c in "0123456789abcdefABCDEF" for c in digits
            ):
                raise self.error(self.pos, f"invalid escape sequence \\{char}")
            self.pos += 1 + widths[char]
            return chr(int(digits, 16))
        if char in "0123":
            digits = text[self.pos : self.pos + 3]
            if len(digits) == 3 and all(c in "01234567" for c in digits):
                self.pos += 3
                return chr(int(digits, 8))
        raise self.error(self.pos, f"invalid escape sequence \\{char}")


def _format_error(source: str, pos: int, message: str) -> str:
    """cel-go's error layout: location, message, then the offending line and a caret."""
    line_start = source.rfind("\n", 0, pos) + 1
    line_end = source.find("\n", pos)
    line = source[line_start : len(source) if line_end < 0 else line_end]
    line_no = source.count("\n", 0, pos) + 1
    column = pos - line_start
    return f"ERROR: <input>:{line_no}:{column + 1}: {message}\n | {line}\n | {'.' * column}^"


# ---------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _Lexer(source).tokens()
        self.index = 0
        self.uses_old_self = False
        self.positions: dict[str, int] = {}

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def error(self, message: str, token: _Token | None = None) -> CELSyntaxError:
        where = (token or self.token).pos
        return CELSyntaxError(_format_error(self.source, where, message))

    def syntax(self, message: str, token: _Token | None = None) -> CELSyntaxError:
        return self.error(f"Syntax error: {message}", token)

    def advance(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def at(self, value: str) -> bool:
        return self.token.kind == "op" and self.token.value == value

    def expect(self, value: str) -> _Token:
        if not self.at(value):
            raise self.syntax(f"mismatched input '{self._shown()}' expecting '{value}'")
        return self.advance()

    def _shown(self) -> str:
        return "<EOF>" if self.token.kind == "eof" else str(self.token.value)

    def parse(self) -> _Node:
        node = self.expr()
        if self.token.kind != "eof":
            raise self.syntax(f"extraneous input '{self.token.value}' expecting <EOF>")
        return node

    def expr(self) -> _Node:
        cond = self.logical_or()
        if self.at("?"):
            self.advance()
            then = self.logical_or()
            self.expect(":")
            return _Ternary(cond, then, self.expr())
        return cond

    def logical_or(self) -> _Node:
        node = self.logical_and()
        while self.at("||"):
            self.advance()
            node = _Binary("||", node, self.logical_and())
        return node

    def logical_and(self) -> _Node:
        node = self.relation()
        while self.at("&&"):
            self.advance()
            node = _Binary("&&", node, self.relation())
        return node

    def relation(self) -> _Node:
        node = self.addition()
        while (
            self.token.kind == "op" and self.token.value in ("<", "<=", ">", ">=", "==", "!=")
        ) or (self.token.kind == "ident" and self.token.value == "in"):
            op = str(self.advance().value)
            node = _Binary(op, node, self.addition())
        return node

    def addition(self) -> _Node:
        node = self.multiplication()
        while self.token.kind == "op" and self.token.value in ("+", "-"):
            op = str(self.advance().value)
            node = _Binary(op, node, self.multiplication())
        return node

    def multiplication(self) -> _Node:
        node = self.unary()
        while self.token.kind == "op" and self.token.value in ("*", "/", "%"):
            op = str(self.advance().value)
            node = _Binary(op, node, self.unary())
        return node

    def unary(self) -> _Node:
        if self.at("!"):
            self.advance()
            return _Unary("!", self.unary())
        if self.at("-"):
            self.advance()
            if self.token.kind in ("int", "double") and not self._member_follows(1):
                token = self.advance()
                return _Lit(-token.value)
            return _Unary("-", self.unary())
        return self.member()

    def _member_follows(self, offset: int) -> bool:
        following = self.tokens[self.index + offset]
        return following.kind == "op" and following.value in (".", "[")

    def member(self) -> _Node:
        node = self.primary()
        while True:
            if self.at(".?") or self.at("[?"):
                raise CELUnsupported("optional field selection is not supported")
            if self.at("."):
                self.advance()
                name_token = self.token
                if name_token.kind != "ident":
                    raise self.syntax(f"mismatched input '{self._shown()}' expecting IDENTIFIER")
                self.advance()
                name = str(name_token.value)
                if self.at("("):
                    self.advance()
                    args = self.arguments(")")
                    node = self.method(node, name, args, name_token)
                else:
                    if name in _RESERVED or name == "in":
                        raise self.syntax(f"reserved identifier: {name}", name_token)
                    node = _Select(node, name)
            elif self.at("["):
                self.advance()
                index = self.expr()
                self.expect("]")
                node = _Index(node, index)
            else:
                return node

    def arguments(self, closing: str) -> list[_Node]:
        args: list[_Node] = []
        if self.at(closing):
            self.advance()
            return args
        while True:
            args.append(self.expr())
            if self.at(","):
                self.advance()
                if self.at(closing):
                    self.advance()
                    return args
                continue
            self.expect(closing)
            return args

    def method(self, target: _Node, name: str, args: list[_Node], token: _Token) -> _Node:
        if name in _MACROS:
            return self.macro(target, name, args, token)
        if name not in _METHODS:
            raise CELUnsupported(f"function {name} is not supported")
        return _Call(name, target, tuple(args))

    def macro(self, target: _Node, name: str, args: list[_Node], token: _Token) -> _Node:
        expected = (2, 3) if name == "map" else (2,)
        if len(args) not in expected:
            raise CELUnsupported(f"{name} with {len(args)} arguments is not supported")
        var = args[0]
        if not isinstance(var, _Ident):
            raise self.error("argument must be a simple name", token)
        return _Macro(name, target, var.name, tuple(args[1:]))

    def primary(self) -> _Node:
        token = self.token
        if token.kind in ("int", "double", "string"):
            self.advance()
            return _Lit(token.value)
        if token.kind in ("uint", "bytes"):
            raise CELUnsupported(f"{token.kind} literals are not supported")
        if token.kind == "ident":
            return self.identifier()
        if self.at("."):
            self.advance()
            return self.identifier()
        if self.at("("):
            self.advance()
            node = self.expr()
            self.expect(")")
            return node
        if self.at("["):
            self.advance()
            return _ListLit(tuple(self.arguments("]")))
        if self.at("{"):
            self.advance()
            return self.map_literal()
        if token.kind == "eof":
            raise self.syntax("mismatched input '<EOF>' expecting expression")
        raise self.syntax(f"mismatched input '{token.value}' expecting expression")

    def map_literal(self) -> _Node:
        entries: list[tuple[_Node, _Node]] = []
        while not self.at("}"):
            key = self.expr()
            self.expect(":")
            entries.append((key, self.expr()))
            if self.at(","):
                self.advance()
            elif not self.at("}"):
                raise self.syntax(f"mismatched input '{self.token.value}' expecting '}}'")
        self.advance()
        return _MapLit(tuple(entries))

    def identifier(self) -> _Node:
        token = self.advance()
        if token.kind != "ident":
            raise self.syntax(f"mismatched input '{token.value}' expecting IDENTIFIER", token)
        name = str(token.value)
        if name in ("true", "false"):
            return _Lit(name == "true")
        if name == "null":
            return _Lit(None)
        if name in _RESERVED or name == "in":
            raise self.syntax(f"reserved identifier: {name}", token)
        if self.at("("):
            self.advance()
            return self.function(name, token)
        # Whether the name is declared is checked after parsing, once macro variables are known.
        self.positions.setdefault(name, token.pos)
        if name == "oldSelf":
            self.uses_old_self = True
        return _Ident(name)

    def function(self, name: str, token: _Token) -> _Node:
        if name == "has":
            args = self.arguments(")")
            if len(args) != 1 or not isinstance(args[0], _Select):
                raise self.error("invalid argument to has() macro", token)
            return _Has(args[0].operand, args[0].name)
        if name not in _GLOBALS:
            raise CELUnsupported(f"function {name} is not supported")
        return _Call(name, None, tuple(self.arguments(")")))


def _check_scopes(parser: _Parser, node: _Node, scope: frozenset[str]) -> None:
    """Reject identifiers that are neither `self`/`oldSelf` nor an enclosing macro variable."""
    if isinstance(node, _Ident) and node.name not in scope:
        position = parser.positions.get(node.name, 0)
        message = f"undeclared reference to '{node.name}' (in container '')"
        raise CELSyntaxError(_format_error(parser.source, position, message))
    for child, child_scope in _children(node, scope):
        _check_scopes(parser, child, child_scope)


def _children(node: _Node, scope: frozenset[str]) -> Iterator[tuple[_Node, frozenset[str]]]:
    if isinstance(node, _Select | _Has):
        yield node.operand, scope
    elif isinstance(node, _Index):
        yield node.operand, scope
        yield node.index, scope
    elif isinstance(node, _Call):
        if node.target is not None:
            yield node.target, scope
        for arg in node.args:
            yield arg, scope
    elif isinstance(node, _ListLit):
        for item in node.items:
            yield item, scope
    elif isinstance(node, _MapLit):
        for key, value in node.entries:
            yield key, scope
            yield value, scope
    elif isinstance(node, _Unary):
        yield node.operand, scope
    elif isinstance(node, _Binary):
        yield node.left, scope
        yield node.right, scope
    elif isinstance(node, _Ternary):
        yield node.cond, scope
        yield node.then, scope
        yield node.otherwise, scope
    elif isinstance(node, _Macro):
        yield node.target, scope
        inner = scope | {node.var}
        for arg in node.args:
            yield arg, inner


def compile_rule(source: str) -> Program:
    """Parse a rule; CELSyntaxError when it cannot compile, CELUnsupported when unsure."""
    if not source.strip():
        raise CELSyntaxError(_format_error(source, 0, "Syntax error: mismatched input '<EOF>'"))
    parser = _Parser(source)
    root = parser.parse()
    _check_scopes(parser, root, _VARIABLES)
    return Program(source, root, parser.uses_old_self)


# ---------------------------------------------------------------------------------------
# Evaluation


def evaluate(program: Program, *, self_value: Any, old_self: Any = None) -> Any:
    """Evaluate a compiled rule with `self` (and `oldSelf` for transition rules)."""
    env: dict[str, Any] = {"self": self_value, "oldSelf": old_self}
    return _eval(program.root, env)


def _type_name(value: Any) -> str:
    if value is None:
        return "null_type"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _no_overload(name: str, *values: Any) -> CELEvalError:
    types = ", ".join(_type_name(v) for v in values)
    return CELEvalError(f"no such overload: {name}({types})")


def _checked_int(value: int) -> int:
    if value < _INT_MIN or value > _INT_MAX:
        raise CELEvalError("integer overflow")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _eval(node: _Node, env: dict[str, Any]) -> Any:
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, _Ident):
        return env[node.name]
    if isinstance(node, _Select):
        return _select(_eval(node.operand, env), node.name)
    if isinstance(node, _Has):
        operand = _eval(node.operand, env)
        if isinstance(operand, dict):
            return node.name in operand
        raise _no_overload("has", operand)
    if isinstance(node, _Index):
        return _index(_eval(node.operand, env), _eval(node.index, env))
    if isinstance(node, _ListLit):
        return [_eval(item, env) for item in node.items]
    if isinstance(node, _MapLit):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.entries:
            key = _eval(key_node, env)
            if isinstance(key, list | dict | float) or key is None:
                raise CELEvalError(f"unsupported key type: {_type_name(key)}")
            if key in out:
                raise CELEvalError(f"Failed with repeated key: {key}")
            out[key] = _eval(value_node, env)
        return out
    if isinstance(node, _Unary):
        operand = _eval(node.operand, env)
        if node.op == "!":
            if isinstance(operand, bool):
                return not operand
            raise _no_overload("!_", operand)
        if _is_number(operand):
            return _checked_int(-operand) if isinstance(operand, int) else -operand
        raise _no_overload("-_", operand)
    if isinstance(node, _Ternary):
        cond = _eval(node.cond, env)
        if not isinstance(cond, bool):
            raise _no_overload("_?_:_", cond)
        return _eval(node.then if cond else node.otherwise, env)
    if isinstance(node, _Binary):
        if node.op in ("&&", "||"):
            return _logical(node, env)
        return _binary(node.op, _eval(node.left, env), _eval(node.right, env))
    if isinstance(node, _Call):
        return _call(node, env)
    return _macro(node, env)


def _logical(node: _Binary, env: dict[str, Any]) -> bool:
    decisive = node.op == "||"  # the value that decides the result on its own
    error: CELError | None = None
    values: list[Any] = []
    for side in (node.left, node.right):
        try:
            value = _eval(side, env)
        except CELEvalError as exc:
            error = error or exc
            continue
        if value is decisive:
            return bool(decisive)
        values.append(value)
    if error is not None:
        raise error
    for value in values:
        if not isinstance(value, bool):
            raise _no_overload(f"_{node.op}_", *values)
    return not decisive


def _select(operand: Any, name: str) -> Any:
    if isinstance(operand, dict):
        if name not in operand:
            raise CELEvalError(f"no such key: {name}")
        return operand[name]
    raise CELEvalError(f"type '{_type_name(operand)}' does not support field selection")


def _index(operand: Any, index: Any) -> Any:
    if isinstance(operand, list):
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if not isinstance(index, int) or isinstance(index, bool):
            raise _no_overload("_[_]", operand, index)
        if index < 0 or index >= len(operand):
            raise CELEvalError(f"index out of bounds: {index}")
        return operand[index]
    if isinstance(operand, dict):
        if isinstance(index, list | dict):
            raise _no_overload("_[_]", operand, index)
        if isinstance(index, str):
            if index in operand:
                return operand[index]
        else:
            for key, value in operand.items():
                if equal(key, index):
                    return value
        raise CELEvalError(f"no such key: {index}")
    raise _no_overload("_[_]", operand, index)


def equal(left: Any, right: Any) -> bool:
    """CEL heterogeneous equality: numbers compare by value, containers element-wise."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        if len(left) != len(right):
            return False
        return all(key in right and equal(value, right[key]) for key, value in left.items())
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _compare(op: str, left: Any, right: Any) -> bool:
    comparable = (
        (_is_number(left) and _is_number(right))
        or (isinstance(left, str) and isinstance(right, str))
        or (isinstance(left, bool) and isinstance(right, bool))
    )
    if not comparable:
        raise _no_overload(f"_{op}_", left, right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _binary(op: str, left: Any, right: Any) -> Any:
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if op in ("<", "<=", ">", ">="):
        return _compare(op, left, right)
    if op == "in":
        if isinstance(right, list):
            return any(equal(left, item) for item in right)
        if isinstance(right, dict):
            return any(equal(left, key) for key in right)
        raise _no_overload("@in", left, right)
    return _arithmetic(op, left, right)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    both_int = isinstance(left, int) and isinstance(right, int)
    both_int = both_int and not isinstance(left, bool) and not isinstance(right, bool)
    both_double = isinstance(left, float) and isinstance(right, float)
    if op == "+":
        if both_int:
            return _checked_int(left + right)
        if both_double:
            return left + right
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, list) and isinstance(right, list):
            return left + right
    elif op == "-":
        if both_int:
            return _checked_int(left - right)
        if both_double:
            return left - right
    elif op == "*":
        if both_int:
            return _checked_int(left * right)
        if both_double:
            return left * right
    elif op == "/":
        if both_int:
            if right == 0:
                raise CELEvalError("division by zero")
            quotient = abs(left) // abs(right)
            return _checked_int(quotient if (left >= 0) == (right >= 0) else -quotient)
        if both_double:
            if right == 0:
                return float("inf") if left > 0 else float("-inf") if left < 0 else float("nan")
            return left / right
    elif op == "%" and both_int:
        if right == 0:
            raise CELEvalError("modulus by zero")
        remainder = abs(left) % abs(right)
        return remainder if left >= 0 else -remainder
    raise _no_overload(f"_{op}_", left, right)


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise _no_overload("size", value)


def _call(node: _Call, env: dict[str, Any]) -> Any:
    args = [_eval(arg, env) for arg in node.args]
    if node.target is None:
        return _global(node.name, args)
    target = _eval(node.target, env)
    handler = _STRING_METHODS.get(node.name)
    if node.name == "size" and not args:
        return _size(target)
    if node.name == "join" and isinstance(target, list):
        separator = args[0] if args else ""
        if not isinstance(separator, str) or not all(isinstance(i, str) for i in target):
            raise _no_overload("join", target, *args)
        return separator.join(target)
    if node.name == "indexOf" and isinstance(target, list) and len(args) == 1:
        return next((i for i, item in enumerate(target) if equal(item, args[0])), -1)
    if handler is None or not isinstance(target, str):
        raise _no_overload(node.name, target, *args)
    return handler(target, args)


def _global(name: str, args: list[Any]) -> Any:
    if len(args) == 2 and name == "matches":
        return _matches(args[0], [args[1]])
    if len(args) != 1:
        raise _no_overload(name, *args)
    value = args[0]
    if name == "size":
        return _size(value)
    if name == "dyn":
        return value
    if name == "type":
        return _type_name(value)
    if name == "int":
        if isinstance(value, bool):
            raise _no_overload("int", value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isnan(value) or not _INT_MIN <= value <= _INT_MAX:
                raise CELEvalError("range error")
            return int(value)
        if isinstance(value, str):
            try:
                return _checked_int(int(value, 10))
            except ValueError:
                raise CELEvalError(f"cannot convert '{value}' to int") from None
    if name == "double":
        if _is_number(value):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise CELEvalError(f"cannot convert '{value}' to double") from None
    if name == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return repr(value) if not value.is_integer() else str(int(value))
    if name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in (
            "true",
            "false",
            "True",
            "False",
            "1",
            "0",
            "t",
            "f",
        ):
            return value in ("true", "True", "1", "t")
    raise _no_overload(name, value)


def _matches(target: Any, args: list[Any]) -> bool:
    if len(args) != 1 or not isinstance(target, str) or not isinstance(args[0], str):
        raise _no_overload("matches", target, *args)
    try:
        # CEL `matches` is an unanchored RE2 search.
        return re.search(args[0], target) is not None
    except re.error as exc:
        raise CELEvalError(f"invalid regular expression: {exc}") from None


def _string_args(name: str, target: str, args: list[Any], *types: type) -> None:
    if len(args) != len(types) or not all(
        isinstance(a, t) and not isinstance(a, bool) for a, t in zip(args, types, strict=True)
    ):
        raise _no_overload(name, target, *args)


def _starts_with(target: str, args: list[Any]) -> bool:
    _string_args("startsWith", target, args, str)
    return target.startswith(args[0])


def _ends_with(target: str, args: list[Any]) -> bool:
    _string_args("endsWith", target, args, str)
    return target.endswith(args[0])


def _contains(target: str, args: list[Any]) -> bool:
    _string_args("contains", target, args, str)
    return args[0] in target


def _lower(target: str, args: list[Any]) -> str:
    _string_args("lowerAscii", target, args)
    return "".join(c.lower() if c.isascii() else c for c in target)


def _upper(target: str, args: list[Any]) -> str:
    _string_args("upperAscii", target, args)
    return "".join(c.upper() if c.isascii() else c for c in target)


def _trim(target: str, args: list[Any]) -> str:
    _string_args("trim", target, args)
    return target.strip()


def _split(target: str, args: list[Any]) -> list[str]:
    if len(args) == 2:
        _string_args("split", target, args, str, int)
        limit = args[1]
        if limit == 0:
            return []
        if limit < 0:
            return target.split(args[0]) if args[0] else list(target)
        return (
            target.split(args[0], limit - 1)
            if args[0]
            else list(target[: limit - 1]) + ([target[limit - 1 :]] if len(target) >= limit else [])
        )
    _string_args("split", target, args, str)
    return target.split(args[0]) if args[0] else list(target)


def _replace(target: str, args: list[Any]) -> str:
    if len(args) == 3:
        _string_args("replace", target, args, str, str, int)
        count = args[2]
        return target.replace(args[0], args[1], count if count >= 0 else -1)
    _string_args("replace", target, args, str, str)
    return target.replace(args[0], args[1])


def _index_of(target: str, args: list[Any]) -> int:
    if len(args) == 2:
        _string_args("indexOf", target, args, str, int)
        if not 0 <= args[1] <= len(target):
            raise CELEvalError(f"index out of range: {args[1]}")
        return target.find(args[0], args[1])
    _string_args("indexOf", target, args, str)
    return target.find(args[0])


def _last_index_of(target: str, args: list[Any]) -> int:
    _string_args("lastIndexOf", target, args, str)
    return target.rfind(args[0])


def _substring(target: str, args: list[Any]) -> str:
    if len(args) == 2:
        _string_args("substring", target, args, int, int)
        start, end = args
    else:
        _string_args("substring", target, args, int)
        start, end = args[0], len(target)
    if not 0 <= start <= len(target) or not start <= end <= len(target):
        raise CELEvalError(f"index out of range: {end if start <= len(target) else start}")
    return target[start:end]


_STRING_METHODS: dict[str, Callable[[str, list[Any]], Any]] = {
    "matches": _matches,
    "startsWith": _starts_with,
    "endsWith": _ends_with,
    "contains": _contains,
    "lowerAscii": _lower,
    "upperAscii": _upper,
    "trim": _trim,
    "split": _split,
    "replace": _replace,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "substring": _substring,
}


def _macro(node: _Macro, env: dict[str, Any]) -> Any:
    target = _eval(node.target, env)
    if isinstance(target, list):
        items = list(target)
    elif isinstance(target, dict):
        items = list(target.keys())
    else:
        raise _no_overload(node.name, target)

    def run(body: _Node, item: Any) -> Any:
        return _eval(body, {**env, node.var: item})

    if node.name in ("all", "exists"):
        decisive = node.name == "exists"
        error: CELEvalError | None = None
        for item in items:
            try:
                value = run(node.args[0], item)
            except CELEvalError as exc:
                error = error or exc
                continue
            if not isinstance(value, bool):
                raise _no_overload(node.name, value)
            if value is decisive:
                return decisive
        if error is not None:
            raise error
        return not decisive
    if node.name == "exists_one":
        count = 0
        for item in items:
            value = run(node.args[0], item)
            if not isinstance(value, bool):
                raise _no_overload(node.name, value)
            count += value
        return count == 1
    if node.name == "filter":
        out = []
        for item in items:
            value = run(node.args[0], item)
            if not isinstance(value, bool):
                raise _no_overload(node.name, value)
            if value:
                out.append(item)
        return out
    # map(x, transform) or map(x, predicate, transform)
    results = []
    for item in items:
        if len(node.args) == 2:
            keep = run(node.args[0], item)
            if not isinstance(keep, bool):
                raise _no_overload(node.name, keep)
            if not keep:
                continue
        results.append(run(node.args[-1], item))
    return results
