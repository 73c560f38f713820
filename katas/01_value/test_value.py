"""Specs for kata 01. The oracle is torch.autograd in float64, or a derivative worked by hand."""

import math
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from value import Value

from harness.checks import expect, expect_close

# --- the worked example from the lesson ---


def test_worked_example():
    a, b = Value(2.0), Value(3.0)
    L = (a * b) ** 2
    expect_close(L.data, 36.0, "L = (a*b)**2 at a=2, b=3")
    L.backward()
    expect_close(a.grad, 36.0, "dL/da", hint="chain rule: dL/da = 2*(a*b) * b = 2*6*3")
    expect_close(b.grad, 24.0, "dL/db", hint="chain rule: dL/db = 2*(a*b) * a = 2*6*2")
    expect_close(L.grad, 1.0, "L.grad after L.backward()", hint="backward seeds dL/dL = 1")


def test_a_new_value_has_zero_grad_and_no_children():
    v = Value(4.0)
    expect(v.data == 4.0 and v.grad == 0, f"Value(4.0) gave data={v.data}, grad={v.grad}",
           hint="grad starts at 0")
    expect(tuple(v.children) == () and tuple(v.local_grads) == (),
           "a Value made from a number is a leaf: no children, no local grads")


def test_explicit_children_and_local_grads_drive_backward():
    # Later katas build fused nodes this way (one node for a whole dot product).
    a, b = Value(1.0), Value(1.0)
    out = Value(10.0, (a, b), (2.0, 3.0))
    out.backward()
    expect_close([a.grad, b.grad], [2.0, 3.0], "grads of the children of Value(10, (a, b), (2, 3))",
                 hint="backward must use node.local_grads, not recompute them from the op")


# --- each operation: value and derivative against closed forms ---

UNARY = [
    # name, f(Value), value(x), derivative(x), hint
    ("exp", lambda v: v.exp(), math.exp, math.exp, "d/dx e^x = e^x"),
    ("log", lambda v: v.log(), math.log, lambda x: 1 / x, "d/dx ln x = 1/x"),
    ("tanh", lambda v: v.tanh(), math.tanh, lambda x: 1 - math.tanh(x) ** 2,
     "d/dx tanh x = 1 - tanh(x)^2"),
    ("relu", lambda v: v.relu(), lambda x: max(x, 0.0), lambda x: float(x > 0),
     "slope 1 where x > 0, else 0"),
    ("pow 3", lambda v: v**3, lambda x: x**3, lambda x: 3 * x**2, "d/dx x^n = n x^(n-1)"),
    ("pow -1", lambda v: v**-1, lambda x: 1 / x, lambda x: -1 / x**2, "d/dx x^n = n x^(n-1)"),
    ("pow 0.5", lambda v: v**0.5, math.sqrt, lambda x: 0.5 / math.sqrt(x), "d/dx x^n = n x^(n-1)"),
    ("neg", lambda v: -v, lambda x: -x, lambda x: -1.0, "-x is x * -1"),
]


@pytest.mark.parametrize("name,f,value,derivative,hint", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("x", [0.7, 2.5])
def test_unary_op(name, f, value, derivative, hint, x):
    v = Value(x)
    out = f(v)
    expect_close(out.data, value(x), f"{name}({x})")
    out.backward()
    expect_close(v.grad, derivative(x), f"d {name}(x)/dx at x={x}", hint=hint)


def test_relu_is_flat_below_zero():
    v = Value(-1.5)
    out = v.relu()
    out.backward()
    expect_close([out.data, v.grad], [0.0, 0.0], "relu(-1.5) and its derivative")
    zero = Value(0.0)
    zero.relu().backward()
    expect_close(zero.grad, 0.0, "the derivative of relu at exactly 0",
                 hint="the slope is 1 only for a > 0 (as in torch): use >, not >=")


def test_a_value_exponent_is_a_clear_error():
    with pytest.raises(TypeError) as info:
        Value(2.0) ** Value(3.0)
    expect("number" in str(info.value),
           f"Value ** Value raised TypeError({str(info.value)!r}), which does not say what "
           "to use instead", hint="e.g. 'Value ** Value is not supported: the exponent must "
                                  "be a number'")


BINARY = [
    # name, f(a, b), value, (d/da, d/db), hint
    ("a + b", lambda a, b: a + b, lambda a, b: a + b, lambda a, b: (1, 1), "both slopes are 1"),
    ("a - b", lambda a, b: a - b, lambda a, b: a - b, lambda a, b: (1, -1), "a + (-1)*b"),
    ("a * b", lambda a, b: a * b, lambda a, b: a * b, lambda a, b: (b, a),
     "each factor's slope is the other factor"),
    ("a / b", lambda a, b: a / b, lambda a, b: a / b, lambda a, b: (1 / b, -a / b**2),
     "a * b**-1"),
]


@pytest.mark.parametrize("name,f,value,derivatives,hint", BINARY, ids=[b[0] for b in BINARY])
def test_binary_op(name, f, value, derivatives, hint):
    x, y = 1.5, -4.0
    a, b = Value(x), Value(y)
    out = f(a, b)
    expect_close(out.data, value(x, y), f"{name} at a={x}, b={y}")
    out.backward()
    expect_close([a.grad, b.grad], derivatives(x, y), f"(d/da, d/db) of {name}", hint=hint)


REFLECTED = [
    # a plain number on either side: Python calls __radd__ etc. when the number comes first
    ("2 + v", lambda v: 2 + v, 5.0, 1.0),
    ("v + 2", lambda v: v + 2, 5.0, 1.0),
    ("2 * v", lambda v: 2 * v, 6.0, 2.0),
    ("v * 2", lambda v: v * 2, 6.0, 2.0),
    ("2 - v", lambda v: 2 - v, -1.0, -1.0),
    ("v - 2", lambda v: v - 2, 1.0, 1.0),
    ("6 / v", lambda v: 6 / v, 2.0, -6 / 9),
    ("v / 2", lambda v: v / 2, 1.5, 0.5),
]


@pytest.mark.parametrize("name,f,value,derivative", REFLECTED, ids=[r[0] for r in REFLECTED])
def test_plain_numbers_on_either_side(name, f, value, derivative):
    v = Value(3.0)
    out = f(v)
    expect(isinstance(out, Value), f"{name} returned {type(out).__name__}, expected a Value",
           hint="mixing a number and a Value gives a Value; see the reflected ops in the lesson")
    expect_close(out.data, value, f"{name} at v=3")
    out.backward()
    expect_close(v.grad, derivative, f"d({name})/dv at v=3",
                 hint="the reflected op must record the same local derivative as the plain one")


def _numbers_in(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d*)?(?:e-?\d+)?", text)]


def test_log_of_a_non_positive_number_is_a_clear_error():
    for x in (0.0, -2.0):
        with pytest.raises(ValueError) as info:
            Value(x).log()
        expect(x in _numbers_in(str(info.value)),
               f"log({x}) raised ValueError({str(info.value)!r}), which does not name {x}",
               hint="say which number was out of the domain, e.g. "
                    "'log is only defined for positive numbers, got -2.0' (or -2, or -2.00)")


# --- gradients accumulate over every path ---


def test_a_value_used_twice_gets_both_contributions():
    x = Value(3.0)
    y = x * x
    y.backward()
    expect_close(x.grad, 6.0, "d(x*x)/dx at x=3",
                 hint="x is reached twice; use child.grad += ..., never child.grad = ...")


def test_reuse_through_a_chain_of_sums():
    a = Value(1.0)
    b = a + a
    c = b + b
    c.backward()
    expect_close([a.grad, b.grad], [4.0, 2.0], "(dc/da, dc/db) for b = a + a, c = b + b",
                 hint="every path counts: accumulate with +=")


def test_reused_inner_node_is_complete_before_it_is_pushed():
    # b is an inner node used by two later nodes at different depths: d uses it directly and
    # through c = b*b, one level further down. A breadth-first walk from d reaches b before
    # c has pushed; if b pushes its grad then, a's grad misses the path through c.
    a = Value(2.0)
    b = a * 3.0
    c = b * b
    d = c * 2.0 + b
    d.backward()
    # d = 18a^2 + 3a, so dd/da = 36a + 3 = 75
    expect_close(a.grad, 75.0, "dd/da for b = 3a, c = b*b, d = 2c + b at a=2",
                 hint="process nodes in reverse topological order, so that every user of b "
                      "(c, and d) has pushed before b pushes; a breadth-first walk does not "
                      "guarantee that")


def test_a_deep_chain_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(100_000):
        y = y + x
    try:
        y.backward()
    except RecursionError:
        pytest.fail("backward() on a chain of 100,000 nodes hit RecursionError. Build the "
                    "topological order with an explicit stack instead of recursion.")
    expect_close(x.grad, 100_001.0, "dy/dx for y = x + x + ... (100,001 terms)")


def test_backward_on_a_leaf_sets_its_grad_to_one():
    x, other = Value(3.0), Value(5.0)
    x.backward()
    expect_close(x.grad, 1.0, "x.grad after x.backward() on a leaf x = Value(3.0)",
                 hint="backward() seeds self.grad = 1 (dx/dx) whether or not self has children")
    expect(other.grad == 0, f"x.backward() changed an unrelated Value's grad to {other.grad}",
           hint="backward() touches only the graph that ends at self")


def test_second_backward_doubles_leaf_grads_only():
    a, b = Value(2.0), Value(3.0)
    c = a * b
    L = c * c
    L.backward()
    first = (a.grad, b.grad, c.grad)
    L.backward()
    expect_close([a.grad, b.grad], [2 * first[0], 2 * first[1]],
                 "leaf grads after calling backward() twice",
                 hint="leaf grads accumulate across calls (as in PyTorch); inner nodes are "
                      "reset to 0 at the start of backward()")
    expect_close(c.grad, first[2], "an inner node's grad after a second backward()",
                 hint="reset every node that has children to 0 before propagating")


# --- random expression graphs against torch.autograd (float64) ---

# Each op reads one or two earlier nodes (any of them, so nodes get reused) and keeps values
# in a safe range: divisors are >= 1, logs take arguments >= 1, exp takes tanh(x).
OPS = {
    "add": (2, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b),
    "div": (2, lambda a, b: a / (b * b + 1)),
    "radd": (1, lambda a: 1.5 + a),
    "rsub": (1, lambda a: 0.5 - a),
    "rmul": (1, lambda a: -2.0 * a),
    "rdiv": (1, lambda a: 1.0 / (a * a + 1)),
    "neg": (1, lambda a: -a),
    "square": (1, lambda a: a**2),
    "exp": (1, lambda a: a.tanh().exp()),
    "log": (1, lambda a: (a * a + 1).log()),
    "tanh": (1, lambda a: a.tanh()),
    "relu": (1, lambda a: a.relu()),
}


@st.composite
def programs(draw):
    n_leaves = draw(st.integers(1, 4))
    leaves = draw(st.lists(st.floats(-2, 2).filter(lambda x: abs(x) > 1e-3),
                           min_size=n_leaves, max_size=n_leaves))
    steps = []
    for i in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(sorted(OPS)))
        n_args = OPS[op][0]
        steps.append((op, [draw(st.integers(0, n_leaves + i - 1)) for _ in range(n_args)]))
    return leaves, steps


def _run(program, make_leaf):
    leaves_data, steps = program
    leaves = [make_leaf(x) for x in leaves_data]
    nodes = list(leaves)
    for op, args in steps:
        nodes.append(OPS[op][1](*(nodes[j] for j in args)))
    return leaves, nodes


@given(programs())
def test_random_graphs_match_torch_autograd(program):
    leaves, nodes = _run(program, Value)
    nodes[-1].backward()

    def make_tensor(x):
        return torch.tensor(x, dtype=torch.float64, requires_grad=True)

    # torch.Tensor has the same methods: exp, log, tanh, relu, and the operators.
    t_leaves, t_nodes = _run(program, make_tensor)
    t_nodes[-1].backward()

    described = " -> ".join(f"{op}{args}" for op, args in program[1])
    expect_close([n.data for n in nodes], [t.item() for t in t_nodes],
                 f"node values of the program {described}", rel=1e-9)
    expect_close([v.grad for v in leaves],
                 [0.0 if t.grad is None else t.grad.item() for t in t_leaves],
                 f"leaf grads of the program {described}", rel=1e-7, abs=1e-9,
                 hint="compare with the lesson's checklist: += not =, reverse topological "
                      "order, reflected ops")
