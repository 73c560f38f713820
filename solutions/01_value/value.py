"""Kata 01: a scalar that remembers how it was made, and reverse-mode autograd over it."""

from __future__ import annotations

import math


class Value:
    """One number in a computation graph.

    data:        the number.
    grad:        d(output)/d(self), filled in by `output.backward()`; starts at 0.
    children:    the Values this one was computed from.
    local_grads: d(self)/d(child) for each child, in the same order.
    """

    # __slots__ makes each Value smaller and attribute access faster: a training step
    # creates tens of thousands of them.
    __slots__ = ("data", "grad", "children", "local_grads")

    def __init__(self, data: float, children: tuple = (), local_grads: tuple = ()):
        self.data = float(data)
        self.grad = 0.0
        self.children = children
        self.local_grads = local_grads

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # --- operations: each returns a new Value and records its local derivatives ---

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, exponent: float) -> Value:
        if isinstance(exponent, Value):
            raise TypeError("Value ** Value is not supported: the exponent must be a number")
        return Value(self.data**exponent, (self,), (exponent * self.data ** (exponent - 1),))

    def exp(self) -> Value:
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log is only defined for positive numbers, got {self.data}")
        return Value(math.log(self.data), (self,), (1.0 / self.data,))

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    def relu(self) -> Value:
        return Value(max(self.data, 0.0), (self,), (float(self.data > 0),))

    # --- everything else is built from the operations above ---

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1.0

    def __radd__(self, other: float) -> Value:  # 2 + v
        return self + other

    def __rmul__(self, other: float) -> Value:  # 2 * v
        return self * other

    def __rsub__(self, other: float) -> Value:  # 2 - v
        return Value(other) - self

    def __rtruediv__(self, other: float) -> Value:  # 2 / v
        return Value(other) / self

    # --- reverse mode ---

    def backward(self) -> None:
        """Add d(self)/d(leaf) to every leaf's grad, and set every inner node's grad.

        Leaf grads accumulate across calls, as in PyTorch: call `backward()` twice and
        they double, so zero them between training steps. Inner nodes (those with
        children) are reset here, so their grads always describe this call alone.
        self.grad ends at 1 (d self/d self), even when self is a leaf.
        """
        # Topological order of the inner nodes (leaves have nothing to pass on), found
        # with an explicit stack: a recursive walk overflows Python's stack on deep graphs.
        # A node is appended only after every inner node below it.
        order: list[Value] = []
        visited: set[Value] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((c, False) for c in node.children if c.children and c not in visited)

        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        # Reverse order: a node's grad is complete before it is pushed to its children.
        for node in reversed(order):
            grad = node.grad
            for child, local in zip(node.children, node.local_grads):
                child.grad += local * grad  # +=: a child reached by several paths sums them
