"""Specs for kata 06. The oracle is torch in float64 on the same weights: F.rms_norm (eps 1e-5,
no weight), F.scaled_dot_product_attention(is_causal=True) and an MLP with ReLU; the worked
example is closed-form arithmetic."""

import math

import pytest
import torch
import torch.nn.functional as F
from block import block, feed_forward, rmsnorm
from hypothesis import assume, given
from hypothesis import strategies as st
from value import Value

from harness.checks import expect, expect_close

EPS = 1e-5

# --- helpers: the same numbers as tensors (oracle) and as Values (code under test) ---


def to_values(t: torch.Tensor):
    """A float64 tensor as (nested lists of) Values."""
    if t.dim() == 1:
        return [Value(float(a)) for a in t]
    return [to_values(row) for row in t]


def grads_of(vs):
    return [grads_of(v) for v in vs] if isinstance(vs, list) else vs.grad


def randn(g: torch.Generator, *shape: int, std: float = 1.0) -> torch.Tensor:
    return std * torch.randn(*shape, generator=g, dtype=torch.float64)


def weighted_sum(outputs, coef: torch.Tensor) -> Value:
    """sum of coef * outputs, so that every output gets a different upstream gradient."""
    return sum(o * float(c) for o, c in zip(outputs, coef.flatten().tolist()))


def t_rmsnorm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), eps=EPS)  # no weight: no learned gain


def t_attention(x, wq, wk, wv, wo, n_head):
    T, C = x.shape

    def heads(w):  # (T, C) -> (1, n_head, T, hd), as view(B, T, n_head, hd) in a GPT
        return (x @ w.T).view(1, T, n_head, C // n_head).transpose(1, 2)

    y = F.scaled_dot_product_attention(heads(wq), heads(wk), heads(wv), is_causal=True)
    return y.transpose(1, 2).reshape(T, C) @ wo.T


def t_feed_forward(x, fc1, fc2):
    return torch.relu(x @ fc1.T) @ fc2.T


def t_block(x, L, n_head):
    x = x + t_attention(t_rmsnorm(x), L["attn_wq"], L["attn_wk"], L["attn_wv"], L["attn_wo"],
                        n_head)
    return x + t_feed_forward(t_rmsnorm(x), L["mlp_fc1"], L["mlp_fc2"])


def make_layer(g: torch.Generator, n_embd: int = 16, std: float = 0.3) -> dict:
    layer = {name: randn(g, n_embd, n_embd, std=std)
             for name in ("attn_wq", "attn_wk", "attn_wv", "attn_wo")}
    layer["mlp_fc1"] = randn(g, 4 * n_embd, n_embd, std=std)
    layer["mlp_fc2"] = randn(g, n_embd, 4 * n_embd, std=std)
    return layer


def run_block(X: torch.Tensor, layer: dict, n_head: int):
    """Feed the rows of X one position at a time through block with one shared cache."""
    xs = to_values(X)
    vlayer = {name: to_values(w) for name, w in layer.items()}
    keys, values = [], []
    outs = [block(x, vlayer, keys, values, n_head) for x in xs]
    return xs, vlayer, outs, keys


RMS_HINT = "rmsnorm(x) = x * (mean(x**2) + 1e-5) ** -0.5: mean of the SQUARES, eps inside the root"

# --- rmsnorm ---


def test_rmsnorm_worked_example():
    # mean of squares of [1, 2, 3, 4] is (1 + 4 + 9 + 16) / 4 = 7.5
    got = rmsnorm([Value(1.0), Value(2.0), Value(3.0), Value(4.0)])
    inv_rms = (7.5 + EPS) ** -0.5  # 0.3651481...
    expect_close(got, [1 * inv_rms, 2 * inv_rms, 3 * inv_rms, 4 * inv_rms],
                 "rmsnorm([1, 2, 3, 4]) = [0.36515, 0.73030, 1.09544, 1.46059]", hint=RMS_HINT)


@pytest.mark.parametrize("n", [1, 3, 16])
def test_rmsnorm_values_and_gradients_match_torch(n):
    g = torch.Generator().manual_seed(n)
    x, coef = randn(g, n, std=2.0), randn(g, n)
    xt = x.clone().requires_grad_()
    want = t_rmsnorm(xt)
    (want * coef).sum().backward()

    xs = to_values(x)
    got = rmsnorm(xs)
    expect_close(got, want, f"rmsnorm of {n} numbers", rel=1e-9, abs=1e-12, hint=RMS_HINT)
    weighted_sum(got, coef).backward()
    expect_close(grads_of(xs), xt.grad, f"gradient through rmsnorm of {n} numbers",
                 rel=1e-7, abs=1e-10,
                 hint="build the mean square and its root from Value operations, so the "
                      "gradient also flows through the normaliser")


def test_rmsnorm_eps_keeps_small_vectors_finite():
    try:
        zeros = rmsnorm([Value(0.0) for _ in range(4)])
    except ZeroDivisionError:
        pytest.fail("rmsnorm of an all-zero vector divided by zero: add eps = 1e-5 to the mean "
                    "of squares before taking the root", pytrace=False)
    expect_close(zeros, [0.0] * 4, "rmsnorm([0, 0, 0, 0])")
    # mean of squares 1e-6, so the scale is (1e-6 + 1e-5) ** -0.5 = 301.51..., not 1000
    tiny = rmsnorm([Value(1e-3) for _ in range(4)])
    expect_close(tiny, [1e-3 * (1e-6 + EPS) ** -0.5] * 4, "rmsnorm([0.001] * 4)",
                 hint="eps goes inside the root, added to the mean of squares: "
                      "(mean(x**2) + 1e-5) ** -0.5; not 1/(rms + eps) and not left out")


vectors = st.lists(st.floats(-100, 100), min_size=1, max_size=20)


@given(vectors)
def test_rmsnorm_output_has_unit_rms(x):
    mean_square = sum(v * v for v in x) / len(x)
    assume(mean_square > 1e-2)  # well above eps, so the result is within 1e-3 of unit RMS
    out = [v.data for v in rmsnorm([Value(v) for v in x])]
    rms = math.sqrt(sum(v * v for v in out) / len(out))
    expect_close(rms, 1.0, f"root-mean-square of rmsnorm({x})", rel=1e-3, hint=RMS_HINT)


@given(vectors, st.floats(0.1, 1000.0))
def test_rmsnorm_is_invariant_to_positive_scaling(x, c):
    assume(sum(v * v for v in x) / len(x) > 1.0)  # even c*x stays far above eps
    once = rmsnorm([Value(v) for v in x])
    scaled = rmsnorm([Value(c * v) for v in x])
    expect_close(scaled, once, f"rmsnorm({c:.4g} * x) vs rmsnorm(x) for x = {x}",
                 rel=1e-3, abs=1e-6,
                 hint="dividing by the root of the mean of SQUARES cancels any c > 0; the mean "
                      "of x (or no root) does not")


# --- feed-forward ---


def test_feed_forward_matches_torch():
    g = torch.Generator().manual_seed(6)
    x, coef = randn(g, 16), randn(g, 16)
    fc1, fc2 = randn(g, 64, 16, std=0.3), randn(g, 16, 64, std=0.3)
    ts = [t.clone().requires_grad_() for t in (x, fc1, fc2)]
    want = t_feed_forward(*ts)
    (want * coef).sum().backward()
    expect((ts[0] @ ts[1].T < 0).any() and (ts[0] @ ts[1].T > 0).any(),
           "test set-up: the hidden layer should have units on both sides of 0")

    xs, w1, w2 = to_values(x), to_values(fc1), to_values(fc2)
    got = feed_forward(xs, w1, w2)
    hint = "linear(x, fc1) (64 x 16) widens, relu, then linear(., fc2) (16 x 64) narrows; no bias"
    expect_close(got, want, "feed_forward 16 -> 64 -> ReLU -> 16", rel=1e-9, abs=1e-12, hint=hint)
    weighted_sum(got, coef).backward()
    for name, vs, t in (("x", xs, ts[0]), ("fc1", w1, ts[1]), ("fc2", w2, ts[2])):
        expect_close(grads_of(vs), t.grad, f"gradient of {name} through feed_forward",
                     rel=1e-7, abs=1e-10, hint=hint)


# --- the block ---


def test_block_matches_torch_values_and_gradients():
    g = torch.Generator().manual_seed(7)
    T, n_embd, n_head = 6, 16, 4  # microGPT's shape
    X, coef, layer = randn(g, T, n_embd), randn(g, T, n_embd), make_layer(g, n_embd)
    Xt = X.clone().requires_grad_()
    Lt = {name: w.clone().requires_grad_() for name, w in layer.items()}
    want = t_block(Xt, Lt, n_head)
    (want * coef).sum().backward()

    xs, vlayer, outs, _ = run_block(X, layer, n_head)
    hint = ("x = x + attention(rmsnorm(x), ...); then x = x + feed_forward(rmsnorm(x), ...): "
            "normalise what goes INTO each sublayer, add its output to the un-normalised x")
    for t in range(T):
        expect_close(outs[t], want[t], f"block output at position {t}", rel=1e-9, abs=1e-12,
                     hint=hint)
    weighted_sum([o for out in outs for o in out], coef).backward()
    for name in layer:
        expect_close(grads_of(vlayer[name]), Lt[name].grad, f"gradient of {name}",
                     rel=1e-7, abs=1e-10, hint=hint)
    expect_close(grads_of(xs), Xt.grad, "gradient of the block's inputs", rel=1e-7, abs=1e-10,
                 hint=hint)


def test_zero_weights_make_the_block_the_identity():
    g = torch.Generator().manual_seed(8)
    X = randn(g, 3, 8)
    layer = {name: torch.zeros_like(w) for name, w in make_layer(g, 8).items()}
    _, _, outs, _ = run_block(X, layer, n_head=2)
    for t in range(3):
        expect_close(outs[t], X[t], f"block output at position {t} when every weight is 0",
                     hint="both sublayers output 0 here, so only the residual connections "
                          "remain: return x + attention(...) and x + feed_forward(...)")


def test_attention_reads_the_normalised_input():
    g = torch.Generator().manual_seed(9)
    X, layer = randn(g, 3, 8, std=5.0), make_layer(g, 8)
    _, _, _, keys = run_block(X, layer, n_head=2)
    expect(len(keys) == 3, f"the cache holds {len(keys)} keys after 3 positions, expected 3",
           hint="pass the layer's keys and values lists on to attention")
    for t in range(3):
        expect_close(keys[t], layer["attn_wk"] @ t_rmsnorm(X[t]), f"cached key of position {t}",
                     rel=1e-9, abs=1e-12,
                     hint="attention gets rmsnorm(x), not x: the key is wk . rmsnorm(x_t)")


def test_weights_out_is_passed_to_attention():
    g = torch.Generator().manual_seed(10)
    X, layer = randn(g, 2, 8), make_layer(g, 8)
    vlayer = {name: to_values(w) for name, w in layer.items()}
    keys, values = [], []
    for x in to_values(X):
        weights = []
        block(x, vlayer, keys, values, 2, weights_out=weights)
    expect(len(weights) == 2 and all(len(row) == 2 for row in weights),
           f"weights_out after the block at position 1 holds {weights}, expected 2 heads x 2 "
           "positions", hint="pass weights_out on to attention")
    for h, row in enumerate(weights):
        expect_close(sum(row), 1.0, f"sum of head {h}'s attention weights")


def test_a_layer_with_a_missing_weight_is_a_clear_error():
    g = torch.Generator().manual_seed(11)
    layer = make_layer(g, 8)
    del layer["mlp_fc2"], layer["attn_wk"]
    vlayer = {name: to_values(w) for name, w in layer.items()}
    with pytest.raises(KeyError) as info:
        block(to_values(randn(g, 8)), vlayer, [], [], 2)
    unnamed = [name for name in ("attn_wk", "mlp_fc2") if name not in str(info.value)]
    expect(not unnamed, f"the KeyError says {str(info.value)!r}, which does not name the "
           f"missing {unnamed}", hint="check every name in LAYER_KEYS first and name all the "
           "missing ones, e.g. 'layer is missing attn_wk, mlp_fc2'")
