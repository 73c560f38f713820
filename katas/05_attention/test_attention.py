"""Specs for kata 05. The oracle is torch in float64: F.scaled_dot_product_attention with
is_causal=True on the same weights, or a masked softmax written out in torch; the worked
example is closed-form arithmetic."""

import math

import pytest
import torch
import torch.nn.functional as F
from attention import attention
from hypothesis import given
from hypothesis import strategies as st
from value import Value

from harness.checks import expect, expect_close

# --- helpers: the same numbers as tensors (oracle) and as Values (code under test) ---


def to_values(t: torch.Tensor):
    """A float64 tensor as (nested lists of) Values."""
    if t.dim() == 1:
        return [Value(float(a)) for a in t]
    return [to_values(row) for row in t]


def grads_of(vs):
    return [grads_of(v) for v in vs] if isinstance(vs, list) else vs.grad


def make_case(seed: int, T: int, n_embd: int, std: float = 0.7):
    """Inputs X (T x n_embd) and weights {q, k, v, o} (n_embd x n_embd) from a seeded torch RNG."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(T, n_embd, generator=g, dtype=torch.float64)
    W = {name: std * torch.randn(n_embd, n_embd, generator=g, dtype=torch.float64)
         for name in "qkvo"}
    return X, W


def run_ours(X, W, n_head):
    """Feed the rows of X one position at a time through attention with one shared cache."""
    xs = to_values(X)
    ws = {name: to_values(w) for name, w in W.items()}
    keys, values = [], []
    outs = [attention(x, ws["q"], ws["k"], ws["v"], ws["o"], keys, values, n_head)
            for x in xs]
    return xs, ws, outs


def split_heads(t: torch.Tensor, n_head: int) -> torch.Tensor:
    """(T, C) -> (1, n_head, T, hd), exactly as a GPT does with view(B, T, n_head, hd)."""
    T, C = t.shape
    return t.view(1, T, n_head, C // n_head).transpose(1, 2)


def reference(X, W, n_head, scale=None, project=True):
    """Causal multi-head self-attention in torch (scale=None means 1/sqrt(head_dim))."""
    T, C = X.shape
    q, k, v = (split_heads(X @ W[name].T, n_head) for name in "qkv")
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    y = y.transpose(1, 2).reshape(T, C)  # heads side by side: head 0's dims first
    return y @ W["o"].T if project else y


def reference_weights(X, W, n_head):
    """The attention matrix per head, (n_head, T, T), by a masked softmax written out."""
    T, C = X.shape
    q, k = split_heads(X @ W["q"].T, n_head)[0], split_heads(X @ W["k"].T, n_head)[0]
    scores = q @ k.transpose(-1, -2) / math.sqrt(C // n_head)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


HEADS_HINT = ("head h owns dims h*hd:(h+1)*hd of q, k and v (hd = n_embd // n_head), and the "
              "head outputs are concatenated in the order h = 0, 1, ...")

# --- the worked example from the lesson ---


def test_worked_example():
    # n_embd 2, one head, identity weights: q = k = v = x and wo leaves the result alone.
    eye = [[Value(1.0), Value(0.0)], [Value(0.0), Value(1.0)]]
    keys, values = [], []
    out0 = attention([Value(1.0), Value(0.0)], eye, eye, eye, eye, keys, values, 1)
    out1 = attention([Value(0.0), Value(1.0)], eye, eye, eye, eye, keys, values, 1)
    expect_close(out0, [1.0, 0.0], "output at position 0 (it can only see itself)",
                 hint="append this position's k and v to the cache before attending")
    # position 1: scores [k0.q1, k1.q1] / sqrt(2) = [0, 1/sqrt(2)]; softmax -> weights
    w1 = math.exp(1 / math.sqrt(2)) / (1 + math.exp(1 / math.sqrt(2)))
    expect_close(out1, [1 - w1, w1], "output at position 1 = 0.3302*v0 + 0.6698*v1",
                 hint="scores are q.k / sqrt(head_dim); without the scale you would get "
                      "[0.2689, 0.7311]")


# --- the cache ---


def test_each_call_appends_this_positions_key_and_value():
    X, W = make_case(seed=1, T=4, n_embd=6)
    xs = to_values(X)
    ws = {name: to_values(w) for name, w in W.items()}
    keys, values = [], []
    for t, x in enumerate(xs):
        attention(x, ws["q"], ws["k"], ws["v"], ws["o"], keys, values, 2)
        expect(len(keys) == t + 1 and len(values) == t + 1,
               f"after {t + 1} calls the cache holds {len(keys)} keys and {len(values)} values, "
               f"expected {t + 1} of each",
               hint="each call appends exactly one key and one value, to the caller's lists")
        for s in range(t + 1):
            expect_close(keys[s], W["k"] @ X[s], f"keys[{s}] after {t + 1} calls",
                         hint="keys[s] is linear(x_s, wk): append at the end (position order), "
                              "and keys get wk, values get wv")
            expect_close(values[s], W["v"] @ X[s], f"values[{s}] after {t + 1} calls",
                         hint="values[s] is linear(x_s, wv): append at the end, in position order")


def test_position_0_attends_only_to_itself():
    X, W = make_case(seed=2, T=1, n_embd=8)
    try:
        _, _, outs = run_ours(X, W, n_head=2)
    except (ValueError, ZeroDivisionError, IndexError) as err:
        pytest.fail(f"attention at position 0 raised {err!r}. Position t attends over 0..t, "
                    "itself included: append k and v to the cache BEFORE computing the scores.",
                    pytrace=False)
    expect_close(outs[0], W["o"] @ (W["v"] @ X[0]), "output at position 0",
                 hint="the only visible position is 0 itself, so its weight is 1 and the "
                      "output is wo . (wv . x0), whatever wq and wk are")


# --- equality with torch ---

SHAPES = [(4, 1), (8, 2), (16, 4), (6, 3), (4, 4)]  # (n_embd, n_head); (16, 4) is microGPT's


@pytest.mark.parametrize("n_embd,n_head", SHAPES, ids=[f"{c}d-{h}h" for c, h in SHAPES])
def test_outputs_match_torch_sdpa(n_embd, n_head):
    X, W = make_case(seed=10 + n_embd + n_head, T=6, n_embd=n_embd)
    _, _, outs = run_ours(X, W, n_head)
    want = reference(X, W, n_head)
    for t in range(len(outs)):
        expect_close(outs[t], want[t],
                     f"attention output at position {t} (n_embd {n_embd}, n_head {n_head})",
                     rel=1e-9, abs=1e-12,
                     hint="check the 1/sqrt(head_dim) scale, that position t sees 0..t, and "
                          + HEADS_HINT)


@pytest.mark.parametrize("n_embd,n_head", [(8, 2), (16, 4)], ids=["8d-2h", "16d-4h"])
def test_gradients_match_torch_sdpa(n_embd, n_head):
    T = 5
    X, W = make_case(seed=20 + n_embd, T=T, n_embd=n_embd)
    coef = torch.randn(T, n_embd, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    # torch: loss = sum of coef * outputs, so every output gets a different upstream gradient
    Xt = X.clone().requires_grad_()
    Wt = {name: w.clone().requires_grad_() for name, w in W.items()}
    (reference(Xt, Wt, n_head) * coef).sum().backward()

    xs, ws, outs = run_ours(X, W, n_head)
    loss = sum(o * float(c) for out, row in zip(outs, coef) for o, c in zip(out, row))
    loss.backward()

    hint = ("if the outputs match torch but a gradient does not, build everything from Value "
            "operations (or kata 04's linear/softmax) so every path is recorded, including the "
            "cached keys and values that later positions read")
    for name in "qkvo":
        expect_close(grads_of(ws[name]), Wt[name].grad, f"gradient of w{name}",
                     rel=1e-7, abs=1e-10, hint=hint)
    expect_close(grads_of(xs), Xt.grad, "gradient of the inputs x_0..x_4", rel=1e-7, abs=1e-10,
                 hint=hint)


@pytest.mark.parametrize("n_embd,n_head", [(16, 1), (32, 4)],
                         ids=["1-head-of-16", "4-heads-of-8"])
def test_scores_are_scaled_by_one_over_sqrt_head_dim(n_embd, n_head):
    head_dim = n_embd // n_head
    X, W = make_case(seed=4, T=5, n_embd=n_embd, std=1.0)
    _, _, outs = run_ours(X, W, n_head)
    got = torch.tensor([[o.data for o in out] for out in outs], dtype=torch.float64)
    diagnoses = [(1.0, "no scale at all"), (1 / head_dim, "divided by head_dim, not its root")]
    if n_head > 1:
        diagnoses.append((1 / math.sqrt(n_embd), "sqrt(n_embd) used instead of sqrt(head_dim)"))
    for scale, mistake in diagnoses:
        wrong = reference(X, W, n_head, scale=scale)
        expect(not torch.allclose(got, wrong, rtol=1e-9, atol=1e-12),
               f"the outputs are those of scores scaled by {scale:.4g}: {mistake}",
               hint=f"scores[s] = q_h . k_s / sqrt(head_dim), here / sqrt({head_dim})")
    expect_close(got, reference(X, W, n_head), f"outputs with {n_head} head(s) of {head_dim} dims",
                 rel=1e-9, abs=1e-12, hint=f"scores[s] = q_h . k_s / sqrt({head_dim})")


def test_heads_are_concatenated_in_view_order():
    # wo = identity, so the output is the concatenation of the heads itself.
    n_embd, n_head = 8, 4
    X, W = make_case(seed=5, T=4, n_embd=n_embd, std=1.0)
    W["o"] = torch.eye(n_embd, dtype=torch.float64)
    _, _, outs = run_ours(X, W, n_head)
    want = reference(X, W, n_head, project=False)
    for t in range(len(outs)):
        expect_close(outs[t], want[t], f"concatenated head outputs at position {t} (wo = identity, "
                     f"{n_head} heads of 2 dims)", rel=1e-9, abs=1e-12,
                     hint=HEADS_HINT + "; e.g. head 1 reads q[2:4], k[2:4], v[2:4] and writes "
                                       "output dims 2:4 (not dims 1, 5 or head 2's place)")


# --- attention weights (weights_out) ---


def weights_per_position(X, W, n_head):
    """Run the positions of X in order; yield what weights_out received at each one."""
    ws = {name: to_values(w) for name, w in W.items()}
    keys, values = [], []
    for x in to_values(X):
        weights = []
        attention(x, ws["q"], ws["k"], ws["v"], ws["o"], keys, values, n_head, weights_out=weights)
        yield weights


def test_weights_out_match_a_masked_softmax():
    n_embd, n_head, T = 8, 2, 5
    X, W = make_case(seed=6, T=T, n_embd=n_embd, std=0.5)
    want = reference_weights(X, W, n_head)
    for t, weights in enumerate(weights_per_position(X, W, n_head)):
        expect(len(weights) == n_head,
               f"weights_out got {len(weights)} lists at position {t}, expected one per head "
               f"({n_head})", hint="append one list per head, head 0 first")
        for h in range(n_head):
            expect_close(weights[h], want[h, t, : t + 1],
                         f"attention weights of head {h} at position {t} (over positions 0..{t})",
                         rel=1e-9, abs=1e-12,
                         hint="softmax over s = 0..t of q_h . k_s / sqrt(head_dim), as floats")


@given(seed=st.integers(0, 2**31 - 1), n_head=st.sampled_from([1, 2, 3]),
       head_dim=st.integers(1, 3), T=st.integers(1, 6), std=st.floats(0.1, 3.0))
def test_attention_weights_are_a_distribution_over_0_to_t(seed, n_head, head_dim, T, std):
    X, W = make_case(seed, T=T, n_embd=n_head * head_dim, std=std)
    for t, weights in enumerate(weights_per_position(X, W, n_head)):
        expect(len(weights) == n_head, f"{len(weights)} weight lists for {n_head} heads")
        for h, row in enumerate(weights):
            expect(len(row) == t + 1,
                   f"head {h} at position {t} has {len(row)} weights, expected {t + 1} "
                   f"(positions 0..{t})", hint="position t sees itself and every earlier one")
            expect(all(w >= 0 for w in row), f"negative attention weight: {row}",
                   hint="weights come out of a softmax")
            expect_close(sum(row), 1.0, f"sum of head {h}'s weights at position {t}", rel=1e-12,
                         hint="the weights are a softmax over positions 0..t")


# --- causality ---


@given(seed=st.integers(0, 2**31 - 1), n_head=st.sampled_from([1, 2]),
       head_dim=st.integers(1, 3), T=st.integers(2, 6), data=st.data())
def test_later_positions_do_not_change_earlier_outputs(seed, n_head, head_dim, T, data):
    n_embd = n_head * head_dim
    X, W = make_case(seed, T=T, n_embd=n_embd)
    t = data.draw(st.integers(0, T - 2), label="t")
    future = data.draw(st.lists(st.lists(st.floats(-5, 5), min_size=n_embd, max_size=n_embd),
                                min_size=T - 1 - t, max_size=T - 1 - t), label="new rows after t")
    X2 = X.clone()
    X2[t + 1:] = torch.tensor(future, dtype=torch.float64)
    _, _, outs = run_ours(X, W, n_head)
    _, _, outs2 = run_ours(X2, W, n_head)
    for s in range(t + 1):
        expect_close(outs2[s], outs[s], f"output at position {s} after changing positions "
                     f"{t + 1}..{T - 1}", rel=1e-12, abs=0.0,
                     hint="position s may only read the cache up to s")
    expect_close(outs[t], reference(X, W, n_head)[t], f"output at position {t}", rel=1e-9,
                 abs=1e-12)


# --- bad input ---


def test_n_head_must_divide_n_embd():
    X, W = make_case(seed=7, T=1, n_embd=6)
    with pytest.raises(ValueError) as info:
        run_ours(X, W, n_head=4)
    message = str(info.value)
    expect("6" in message and "4" in message,
           f"the ValueError says {message!r}, which does not name n_embd=6 and n_head=4",
           hint="say what was wrong: e.g. 'n_embd=6 must split evenly into n_head=4 heads'")
    try:
        run_ours(X, W, n_head=0)
    except ValueError:
        pass
    except ZeroDivisionError:
        raise AssertionError("n_head=0 raised ZeroDivisionError\n  hint: check n_head >= 1 "
                             "before dividing by it, and raise a ValueError that says so") from None
    else:
        raise AssertionError("n_head=0 did not raise\n  hint: no heads is no attention: raise "
                             "a ValueError for n_head < 1")


def test_a_cache_out_of_step_is_a_clear_error():
    X, W = make_case(seed=8, T=1, n_embd=4)
    ws = {name: to_values(w) for name, w in W.items()}
    keys, values = [to_values(X[0])], []
    with pytest.raises(ValueError) as info:
        attention(to_values(X[0]), ws["q"], ws["k"], ws["v"], ws["o"], keys, values, 2)
    expect("1" in str(info.value) and "0" in str(info.value),
           f"the ValueError says {str(info.value)!r}: give both lengths (1 key, 0 values)")
