"""A calculator that reads arithmetic and nothing else: `ast`, never `eval`.

Only numbers, `+ - * / // % **` (`^` is read as power), unary signs, parentheses and a few
math functions are understood; a name, attribute, subscript or any other call is refused
before anything runs. Sizes are bounded up front so no expression can burn the CPU or
memory: the input length, the exponent, and every intermediate result.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from messagedb_agent.tools.errors import ToolInputError

Number = int | float

MAX_LENGTH = 200
MAX_EXPONENT = 1000
MAX_INT_BITS = 4096
_INT64 = 2**63

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _round(value: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(value)
    if not isinstance(ndigits, int) or abs(ndigits) > 100:
        raise ToolInputError("round() takes a whole number of digits between -100 and 100")
    return round(value, ndigits)


def _extreme(pick: Callable[..., Number]) -> Callable[..., Number]:
    def choose(*values: Number) -> Number:
        if not values:
            raise ToolInputError(f"{pick.__name__}() needs at least one number")
        return pick(values)

    return choose


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": _round,
    "min": _extreme(min),
    "max": _extreme(max),
}


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; `ToolInputError` says why one is refused."""
    if len(expression) > MAX_LENGTH:
        raise ToolInputError(f"The expression is longer than {MAX_LENGTH} characters.")
    try:
        tree = ast.parse(expression.replace("^", "**").strip(), mode="eval")
    except SyntaxError:
        raise ToolInputError(f"{expression!r} is not an arithmetic expression.") from None
    try:
        result = _value(tree.body)
    except ZeroDivisionError:
        raise ToolInputError("Division by zero is undefined.") from None
    except OverflowError:
        raise ToolInputError("The result is too large to compute.") from None
    except (ValueError, TypeError) as exc:
        raise ToolInputError(f"Cannot compute {expression!r}: {exc}.") from None
    return _presentable(result)


def _value(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolInputError(f"Only numbers are allowed, not {node.value!r}.")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_value(node.operand)))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        return _call(node)
    raise ToolInputError(f"{_describe(node)} is not allowed; only arithmetic is.")


def _call(node: ast.Call) -> Number:
    name = node.func.id if isinstance(node.func, ast.Name) else ""
    function = _FUNCTIONS.get(name)
    if function is None:
        allowed = ", ".join(_FUNCTIONS)
        raise ToolInputError(f"Only these functions are allowed: {allowed}.")
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise ToolInputError("Functions take plain numbers as arguments.")
    args = [_value(arg) for arg in node.args]
    try:
        return _bounded(function(*args))
    except TypeError:
        raise ToolInputError(f"{name}() does not take {len(args)} argument(s).") from None


def _check_power(base: Number, exponent: Number) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolInputError(f"Exponents larger than {MAX_EXPONENT} are not supported.")
    exact = isinstance(base, int) and isinstance(exponent, int)
    if exact and exponent > 0 and int(base).bit_length() * exponent > MAX_INT_BITS:
        raise ToolInputError("The result is too large to compute.")


def _bounded(value: Any) -> Number:
    if isinstance(value, complex):
        raise ToolInputError("The result is not a real number.")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolInputError("The result is too large to compute.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolInputError("The result is too large to compute.")
    number: Number = value
    return number


def _presentable(value: Number) -> Number:
    """Integers past 64 bits become floats (JSON readers choke on them); beyond a float's
    range the result is refused."""
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        try:
            return float(value)
        except OverflowError:
            raise ToolInputError("The result is too large to represent.") from None
    return value


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"The name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"Attribute access ('.{node.attr}')"
    return f"'{ast.unparse(node)}'"
