"""The CEL subset for x-kubernetes-validations: parsing, evaluation semantics, errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.kubesim.cel import (
    CELEvalError,
    CELSyntaxError,
    CELUnsupported,
    compile_rule,
    evaluate,
)

GRID = {
    "metadata": {"name": "demo"},
    "gridUniqKey": "zone",
    "templatePool": {"canary": {"replicas": 1}},
    "templates": {"zone-a": "canary", "zone-b": "default"},
    "defaultTemplateName": "default",
    "list": [1, 2, 3],
}


def run(rule: str, value: Any = None, old: Any = None) -> Any:
    return evaluate(compile_rule(rule), self_value=GRID if value is None else value, old_self=old)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("true", True),
        ("1 + 2 * 3 == 7", True),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("-7 % 3", -1),
        ("1.5 * 2.0", 3.0),
        ("'a' + \"b\"", "ab"),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("{'a': 1}['a']", 1),
        ("1 == 1.0", True),
        ("2 > 1.5", True),
        ("'abc' < 'abd'", True),
        ("!false && true", True),
        ("true ? 'yes' : 'no'", "yes"),
        ("null == null", True),
        ("r'\\d+' == '\\\\d+'", True),
        ("'''multi\nline'''.size()", 10),
        ("'\\u00e9' == 'é'", True),
        ("0x10 == 16", True),
        ("size('héllo')", 5),
        ("has(self.gridUniqKey)", True),
        ("has(self.missing)", False),
        ("has(self.metadata.name)", True),
        ("'zone-a' in self.templates", True),
        ("'canary' in self.templatePool", True),
        ("2 in self.list", True),
        ("self.list.all(x, x > 0)", True),
        ("self.list.exists(x, x == 2)", True),
        ("self.list.exists_one(x, x > 1)", False),
        ("self.list.map(x, x * 10)", [10, 20, 30]),
        ("self.list.map(x, x > 1, x * 10)", [20, 30]),
        ("self.list.filter(x, x % 2 == 1)", [1, 3]),
        ("self.templates.all(k, k.startsWith('zone-'))", True),
        ("self.gridUniqKey.matches('^[a-z]+$')", True),
        ("self.gridUniqKey.matches('Z')", False),
        ("self.gridUniqKey.endsWith('ne') && self.gridUniqKey.contains('on')", True),
        ("'A-b'.lowerAscii() + 'c'.upperAscii()", "a-bC"),
        ("'a,b'.split(',')", ["a", "b"]),
        ("['a', 'b'].join('-')", "a-b"),
        ("'  x '.trim()", "x"),
        ("'hello'.substring(1, 3)", "el"),
        ("'hello'.indexOf('l')", 2),
        ("'aaa'.replace('a', 'b', 2)", "bba"),
        ("int('42') + int(1.9)", 43),
        ("string(7) + string(true)", "7true"),
        ("double(1) == 1.0", True),
        ("size(self.metadata.name) <= 50", True),
        ("self.templates.size()", 2),
        # commutative error absorption: the deciding side wins over an error on the other.
        ("self.missing == 1 || true", True),
        ("false && self.missing == 1", False),
        ("self.list.exists(x, x == 3 || self.nope)", True),
    ],
)
def test_evaluates(rule: str, expected: Any) -> None:
    result = run(rule)
    assert result == expected
    assert type(result) is type(expected)


GRID_RULE = (
    "self.templates.all(k, self.templates[k] in self.templatePool "
    "|| self.templates[k] == 'default')"
)


def test_grid_template_rule() -> None:
    assert run(GRID_RULE) is True
    broken = {**GRID, "templates": {"zone-a": "missing"}}
    assert run(GRID_RULE, broken) is False


def test_old_self_transition_rule() -> None:
    program = compile_rule("self.gridUniqKey == oldSelf.gridUniqKey")
    assert program.uses_old_self
    assert evaluate(program, self_value=GRID, old_self=GRID) is True
    assert evaluate(program, self_value=GRID, old_self={**GRID, "gridUniqKey": "x"}) is False
    assert not compile_rule("self.x == 1").uses_old_self


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("self.missing", "no such key: missing"),
        ("1 / 0", "division by zero"),
        ("1 % 0", "modulus by zero"),
        ("self.list[5]", "index out of bounds: 5"),
        ("9223372036854775807 + 1", "integer overflow"),
        ("1 + 1.0", "no such overload: _+_(int, double)"),
        ("'a' < 1", "no such overload"),
        ("!1", "no such overload"),
        ("true && 1", "no such overload"),
        ("self.missing == 1 && true", "no such key: missing"),
        ("'x'.matches('(')", "invalid regular expression"),
    ],
)
def test_runtime_errors(rule: str, message: str) -> None:
    with pytest.raises(CELEvalError) as raised:
        run(rule)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("self.", "Syntax error: mismatched input '<EOF>' expecting IDENTIFIER"),
        ("1 +", "Syntax error"),
        ("(1", "expecting ')'"),
        ("self.x ==", "Syntax error"),
        ("'unterminated", "unterminated string"),
        ("self.a @ 1", "token recognition error"),
        ("foo == 1", "undeclared reference to 'foo'"),
        ("self.list.all(x, y > 0)", "undeclared reference to 'y'"),
        ("has(self)", "invalid argument to has() macro"),
        ("self.if", "reserved identifier"),
        ("", "Syntax error"),
    ],
)
def test_compile_errors_are_reported(rule: str, fragment: str) -> None:
    with pytest.raises(CELSyntaxError) as raised:
        compile_rule(rule)
    text = str(raised.value)
    assert text.startswith("ERROR: <input>:1:")
    assert fragment in text


@pytest.mark.parametrize(
    "rule",
    [
        "quantity(self.q).isGreaterThan(quantity('1'))",
        "self.url.isURL()",
        "self.?x.orValue(1)",
        "timestamp(self.t) > timestamp('2020-01-01T00:00:00Z')",
        "1u == 1u",
        "b'abc'.size() == 3",
        "self.list.sortBy(x, x)",
    ],
)
def test_valid_cel_outside_the_subset_is_unsupported(rule: str) -> None:
    with pytest.raises(CELUnsupported):
        compile_rule(rule)


def test_error_location_points_at_the_problem() -> None:
    with pytest.raises(CELSyntaxError) as raised:
        compile_rule("self.a == \n  nope")
    assert "<input>:2:3: undeclared reference to 'nope'" in str(raised.value)
    assert " |   nope\n | ..^" in str(raised.value)


@given(
    st.integers(min_value=-(2**62), max_value=2**62),
    st.integers(min_value=-(2**62), max_value=2**62),
)
def test_int_arithmetic_matches_go(a: int, b: int) -> None:
    if -(2**63) <= a + b < 2**63:
        assert run(f"{a} + {b}", {}) == a + b
    else:
        with pytest.raises(CELEvalError, match="integer overflow"):
            run(f"{a} + {b}", {})
    assert run(f"{a} < {b}", {}) is (a < b)
    if b != 0:
        truncated = abs(a) // abs(b) if (a >= 0) == (b >= 0) else -(abs(a) // abs(b))
        assert run(f"{a} / {b}", {}) == truncated
        assert run(f"{a} % {b}", {}) == a - truncated * b
