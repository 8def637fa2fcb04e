"""Safe arithmetic for the `calculator` tool: parsed with `ast`, evaluated by walking the tree.

Only numbers, + - * / // % **, unary signs and parentheses. No names, calls, attributes or
subscripts — nothing of Python is reachable. Sizes are bounded before any work is done, so no
input can burn CPU or memory: a short expression, a shallow tree, small exponents, and results
within ±1e100 (an exponent is checked against the size of the result it would make).
"""
from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 40
MAX_MAGNITUDE = 10 ** 100
MAX_EXPONENT = 1000

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}

Number = int | float


class CalculatorError(ValueError):
    """The expression is not safe arithmetic, or its value is out of bounds."""


def calculate(expression: str) -> Number:
    """The value of an arithmetic expression, e.g. `calculate("(2 + 3) * 4 ** 2")` → 80."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("expression must be a non-empty string")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalculatorError("not an arithmetic expression") from None
    return _evaluate(tree.body, depth=0)


def _evaluate(node: ast.AST, *, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise CalculatorError("expression nested too deeply")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_evaluate(node.operand, depth=depth + 1)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left, depth=depth + 1)
        right = _evaluate(node.right, depth=depth + 1)
        return _bounded(_apply(type(node.op), left, right))
    raise CalculatorError(f"{type(node).__name__} is not allowed: only numbers and + - * / // % ** ( )")


def _apply(op: type, left: Number, right: Number) -> Number:
    if op is ast.Pow:
        _check_power(left, right)
    try:
        return _BINARY[op](left, right)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("result too large") from None


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse a power whose result would be huge *before* computing it."""
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
    if base == 0 and exponent < 0:
        raise CalculatorError("division by zero")
    if abs(base) > 1 and exponent > 0 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise CalculatorError("result too large")
    if isinstance(exponent, float) and base < 0 and not exponent.is_integer():
        raise CalculatorError("fractional power of a negative number")


def _bounded(value: Number) -> Number:
    if isinstance(value, complex):
        raise CalculatorError("complex result")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError("result too large")
    return value
