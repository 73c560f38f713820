"""Kata 01: a scalar that remembers how it was made, and reverse-mode autograd over it.

Read katas/01_value/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=01` to check your work.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)

LESSON = "see katas/01_value/README.md"


class Value:
    """One number in a computation graph.

    data:        the number (a float).
    grad:        d(output)/d(self), filled in by `output.backward()`; starts at 0.
    children:    the Values this one was computed from (a tuple).
    local_grads: d(self)/d(child) for each child, in the same order (a tuple of floats).
    """

    __slots__ = ("data", "grad", "children", "local_grads")

    def __init__(self, data: float, children: tuple = (), local_grads: tuple = ()):
        raise NotImplementedError(
            f"Value.__init__: store data, grad=0, children, local_grads; {LESSON}"
        )

    def __repr__(self) -> str:
        return f"Value(data={getattr(self, 'data', '?')}, grad={getattr(self, 'grad', '?')})"

    # --- operations: each returns a new Value and records its local derivatives ---

    def __add__(self, other: Value | float) -> Value:
        """self + other; other may be a plain number."""
        raise NotImplementedError(f"Value.__add__: d(a+b)/da = 1, d(a+b)/db = 1; {LESSON}")

    def __mul__(self, other: Value | float) -> Value:
        """self * other; other may be a plain number."""
        raise NotImplementedError(f"Value.__mul__: d(a*b)/da = b, d(a*b)/db = a; {LESSON}")

    def __pow__(self, exponent: float) -> Value:
        """self ** exponent, for a plain-number exponent; a Value exponent is a TypeError
        that says the exponent must be a number."""
        raise NotImplementedError(f"Value.__pow__: d(a**n)/da = n*a**(n-1); {LESSON}")

    def exp(self) -> Value:
        raise NotImplementedError(f"Value.exp: d(e**a)/da = e**a; {LESSON}")

    def log(self) -> Value:
        """Natural log; a ValueError that names the number when it is not positive."""
        raise NotImplementedError(f"Value.log: d(ln a)/da = 1/a; {LESSON}")

    def tanh(self) -> Value:
        raise NotImplementedError(f"Value.tanh: d(tanh a)/da = 1 - tanh(a)**2; {LESSON}")

    def relu(self) -> Value:
        raise NotImplementedError(f"Value.relu: max(a, 0), slope 1 above 0, else 0; {LESSON}")

    # --- everything else can be built from the operations above ---

    def __neg__(self) -> Value:
        raise NotImplementedError(f"Value.__neg__: -a, e.g. as a * -1; {LESSON}")

    def __sub__(self, other: Value | float) -> Value:
        raise NotImplementedError(f"Value.__sub__: a - b, e.g. as a + (-b); {LESSON}")

    def __truediv__(self, other: Value | float) -> Value:
        raise NotImplementedError(f"Value.__truediv__: a / b, e.g. as a * b**-1; {LESSON}")

    def __radd__(self, other: float) -> Value:
        raise NotImplementedError(f"Value.__radd__: 2 + v calls v.__radd__(2); {LESSON}")

    def __rmul__(self, other: float) -> Value:
        raise NotImplementedError(f"Value.__rmul__: 2 * v calls v.__rmul__(2); {LESSON}")

    def __rsub__(self, other: float) -> Value:
        raise NotImplementedError(f"Value.__rsub__: 2 - v calls v.__rsub__(2); {LESSON}")

    def __rtruediv__(self, other: float) -> Value:
        raise NotImplementedError(f"Value.__rtruediv__: 2 / v calls v.__rtruediv__(2); {LESSON}")

    # --- reverse mode ---

    def backward(self) -> None:
        """Fill in grad on every node of the graph that ends at self.

        Sort the graph topologically without recursion, set self.grad = 1, then walk the
        order backwards doing `child.grad += local * node.grad`. Leaf grads accumulate
        across calls (call twice: they double); reset inner nodes' grads at the start.
        self.grad ends at 1, even when self is a leaf.
        """
        raise NotImplementedError(f"Value.backward: topological sort, then chain rule; {LESSON}")
