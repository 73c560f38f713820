"""Specs for kata 19. Oracles, all written here in float64: top-k by numpy's argsort and the
gate softmax by exp/sum; the Switch loss E * sum f_i P_i and the z-loss mean(logsumexp^2)
from their formulas, and the loss a second way (one-hot per slot, averaged over tokens, as
Hugging Face's Mixtral `load_balancing_loss_func` computes it, then divided by top_k); the
dense loop over every token and slot for dispatch; kata 14's SwiGLU for E = k = 1; parameter
counts in closed form; kata 16's generate without a cache for generation with one."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from modern import PRESETS, ModernConfig, ModernGPT, generate
from moe import (
    MoE,
    MoEConfig,
    MoEGPT,
    bias_update,
    dispatch,
    expert_load,
    load_balancing_loss,
    moe_like,
    route,
    router_z_loss,
)
from swiglu import SwiGLU

from harness.checks import expect, expect_close


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def is_int_tensor(t):
    return isinstance(t, torch.Tensor) and t.dtype in (torch.int64, torch.int32)


def routed(logits, k, bias=None):
    """The learner's route, with its return value checked before anything is compared."""
    got = route(logits, k) if bias is None else route(logits, k, bias)
    want = (*logits.shape[:-1], k)
    ok = (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], torch.Tensor)
          and got[0].is_floating_point() and tuple(got[0].shape) == want
          and is_int_tensor(got[1]) and tuple(got[1].shape) == want)
    expect(ok, f"route(logits of shape {tuple(logits.shape)}, top_k={k}) returned "
           f"{describe_value(got)}; expected (gates, experts): a float tensor and an int64 "
           f"tensor, both of shape {want}",
           hint="experts = scores.topk(top_k, dim=-1).indices; gates = the softmax over the "
                "top_k logits those experts have")
    return got


def describe_value(v):
    if isinstance(v, torch.Tensor):
        return f"a {v.dtype} tensor of shape {tuple(v.shape)}"
    if isinstance(v, tuple):
        return "(" + ", ".join(describe_value(x) for x in v) + ")"
    return type(v).__name__


def scalar(t, what):
    expect(isinstance(t, torch.Tensor) and t.dim() == 0 and t.is_floating_point(),
           f"{what} returned {describe_value(t)}; expected a 0-dimensional float tensor",
           hint="a loss is one number, kept as a tensor so that it has a gradient")
    return t


# --- the float64 oracles ---


def oracle_route(logits, k, bias=None):
    """(gates, experts) by sorting: the k highest logits + bias, softmax of their logits."""
    flat = logits.detach().reshape(-1, logits.size(-1)).numpy()
    scores = flat if bias is None else flat + bias.detach().numpy()
    experts = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    chosen = np.take_along_axis(flat, experts, axis=-1)
    e = np.exp(chosen - chosen.max(axis=-1, keepdims=True))
    gates = e / e.sum(axis=-1, keepdims=True)
    shape = (*logits.shape[:-1], k)
    return (torch.tensor(gates).reshape(shape),
            torch.tensor(experts, dtype=torch.int64).reshape(shape))


def by_expert(gates, experts, n_expert):
    """(tokens, n_expert) matrix: each token's gate on each expert (0 where not chosen), so
    two routings compare whatever order their k slots come in."""
    g = gates.detach().reshape(-1, gates.size(-1)).double()
    e = experts.reshape(-1, experts.size(-1)).long()
    return torch.zeros(g.size(0), n_expert, dtype=torch.float64).scatter_add(1, e, g)


def oracle_load(experts, n_expert):
    counts = np.bincount(experts.reshape(-1).numpy(), minlength=n_expert)
    return torch.tensor(counts / experts.numel(), dtype=torch.float64)


def oracle_aux(logits, experts):
    n_expert = logits.size(-1)
    z = logits.reshape(-1, n_expert)
    p = torch.exp(z - z.max(-1, keepdim=True).values)
    probs = (p / p.sum(-1, keepdim=True)).mean(0)  # P_i: softmax over all E, mean over tokens
    return n_expert * (oracle_load(experts, n_expert) * probs).sum()


def oracle_lse(logits):
    z = logits.reshape(-1, logits.size(-1))
    m = z.max(-1).values
    return m + torch.log(torch.exp(z - m[:, None]).sum(-1))


def oracle_z(logits):
    return (oracle_lse(logits) ** 2).mean()


def dense_loop(x, gates, experts, modules):
    """Every token, every slot, one at a time: the definition of the MoE output."""
    rows = []
    for n in range(x.size(0)):
        row = torch.zeros_like(x[n])
        for j in range(experts.size(1)):
            row = row + gates[n, j] * modules[int(experts[n, j])](x[n:n + 1])[0]
        rows.append(row)
    return torch.stack(rows)


# --- route: top-k, then a softmax over the k chosen logits ---


routings = st.integers(1, 8).flatmap(lambda e: st.tuples(
    st.integers(1, 20), st.just(e), st.integers(1, e), st.integers(0, 10_000)))


@given(routing=routings)
def test_route_picks_the_top_k_and_gates_sum_to_one(routing):
    n, e, k, seed = routing
    logits = randn(n, e, seed=seed) * 2
    gates, experts = routed(logits, k)
    want_gates, want_experts = oracle_route(logits, k)
    expect(torch.equal(experts.long().sort(-1).values, want_experts.sort(-1).values),
           f"route(logits of shape ({n}, {e}), top_k={k}): chose experts "
           f"{experts[:3].tolist()} for the first tokens; the {k} highest logits are "
           f"{want_experts[:3].tolist()}",
           hint="logits.topk(top_k, dim=-1).indices picks the k largest (in any order)")
    sums = gates.double().sum(-1)
    hint = "gates = softmax over the k chosen logits (equivalently: softmax over all E, then " \
           "divided by its sum over the chosen k)"
    if k < e and torch.allclose(by_expert(gates, experts, e),
                                by_expert(torch.softmax(logits, -1).gather(-1, want_experts),
                                          want_experts, e)):
        hint = "your gates are the softmax over all E experts, not renormalized: over the " \
               "chosen k they sum to less than 1. " + hint
    expect_close(sums, torch.ones(n, dtype=torch.float64), "each token's gates, summed",
                 hint=hint, rel=1e-6)
    expect_close(by_expert(gates, experts, e), by_expert(want_gates, want_experts, e),
                 f"gates of route(logits of shape ({n}, {e}), top_k={k}), placed at their "
                 "experts", hint=hint, rel=1e-6, abs=1e-9)


def test_route_keeps_leading_dimensions_and_the_gradient():
    logits = randn(2, 3, 5, seed=1).requires_grad_()
    gates, experts = routed(logits, 2)
    c = randn(2, 3, 2, seed=2)
    (gates * c).sum().backward()
    expect(logits.grad is not None, "no gradient reached the router logits through the gates",
           hint="compute the gates from logits with torch ops (gather, softmax): the router "
                "learns only through them")
    # d/dz of sum_j c_j softmax(z_chosen)_j: s_j (c_j - sum_m s_m c_m) on the chosen, 0 elsewhere
    want_gates, want_experts = oracle_route(logits, 2)
    c_by = torch.zeros(6, 5, dtype=torch.float64).scatter(
        1, experts.reshape(6, 2).long(), c.reshape(6, 2))  # c at the learner's slots
    s = by_expert(want_gates, want_experts, 5)
    want = s * (c_by - (s * c_by).sum(-1, keepdim=True))
    expect_close(logits.grad.reshape(6, 5), want, "d sum(gates * c) / d logits, float64",
                 hint="the chosen logits get softmax's gradient, the others none; a .detach() "
                      "or a hard 0/1 weight cuts it", rel=1e-6, abs=1e-9)


def test_route_bias_picks_the_experts_but_stays_out_of_the_gates():
    logits = randn(16, 6, seed=3)
    bias = torch.tensor([0.0, 3.0, 0.0, -3.0, 0.0, 1.0], dtype=torch.float64)
    gates, experts = routed(logits, 2, bias)
    want_gates, want_experts = oracle_route(logits, 2, bias)
    expect(torch.equal(experts.long().sort(-1).values, want_experts.sort(-1).values),
           "route(logits, 2, bias): the chosen experts must be the top 2 of logits + bias; "
           f"got {experts[:3].tolist()} for the first tokens, expected "
           f"{want_experts[:3].tolist()}", hint="experts = (logits + bias).topk(top_k).indices")
    hint = "gates = softmax of the chosen experts' logits WITHOUT the bias"
    biased, _ = oracle_route(logits + bias, 2)
    if torch.allclose(by_expert(gates, experts, 6), by_expert(biased, want_experts, 6)):
        hint = "the bias went into the gates: DeepSeek-V3 adds it only to choose the experts; " \
               + hint
    expect_close(by_expert(gates, experts, 6), by_expert(want_gates, want_experts, 6),
                 "gates of route(logits, 2, bias) placed at their experts", hint=hint,
                 rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("k", [0, 5, 2.0])
def test_route_rejects_a_bad_top_k(k):
    with pytest.raises(ValueError, match="top_k") as info:
        route(randn(3, 4), k)
    expect(str(k) in str(info.value), f"the message {str(info.value)!r} does not give top_k's "
           f"value {k!r}", hint="e.g. 'top_k must be an int from 1 to n_expert=4, got 5'")


# --- the load and the Switch auxiliary loss ---


@given(routing=routings)
def test_expert_load_counts_token_slot_assignments(routing):
    n, e, k, seed = routing
    _, experts = oracle_route(randn(n, e, seed=seed), k)
    got = expert_load(experts, e)
    expect(isinstance(got, torch.Tensor) and got.is_floating_point() and got.shape == (e,),
           f"expert_load(experts of shape ({n}, {k}), {e}) returned {describe_value(got)}; "
           f"expected a float tensor of shape ({e},)", hint="bincount, then divide")
    hint = "f_i = (assignments to expert i) / (tokens * top_k): the fractions sum to 1"
    if k > 1 and torch.allclose(got.double(), oracle_load(experts, e) * k):
        hint = "you divided by the number of tokens: each token makes top_k assignments, " \
               "so divide by tokens * top_k. " + hint
    expect_close(got, oracle_load(experts, e), f"expert_load for {n} tokens, top_k={k}, "
                 f"{e} experts", hint=hint, rel=1e-6, abs=1e-9)


@given(routing=routings)
def test_load_balancing_loss_is_e_times_sum_f_p(routing):
    n, e, k, seed = routing
    logits = randn(n, e, seed=seed) * 1.5
    _, experts = oracle_route(logits, k)
    got = scalar(load_balancing_loss(logits, experts), "load_balancing_loss")
    want = oracle_aux(logits, experts)
    hint = "L_aux = E * sum_i f_i * P_i; f_i: fraction of the (token, slot) assignments to " \
           "expert i; P_i: mean over tokens of softmax(logits over all E)_i"
    topk_probs = by_expert(torch.softmax(logits, -1).gather(-1, experts), experts, e).mean(0)
    topk_gates = by_expert(oracle_route(logits, k)[0], experts, e).mean(0)
    if k > 1 and math.isclose(got.item(), k * want.item(), rel_tol=1e-6):
        hint = "your value is top_k times too big: f counted per token, not per (token, " \
               "slot) (that is Hugging Face Mixtral's number). " + hint
    elif k < e and any(math.isclose(got.item(), e * (oracle_load(experts, e) * p).sum().item(),
                                    rel_tol=1e-6) for p in (topk_probs, topk_gates)):
        hint = "P_i must be the softmax over all E experts, not only the chosen k. " + hint
    expect_close(got, want, f"load_balancing_loss for {n} tokens, {e} experts, top_k={k}",
                 hint=hint, rel=1e-6, abs=1e-12)


def test_uniform_routing_gives_one_and_hugging_face_gives_top_k():
    e = 4
    logits = torch.zeros(8, e, dtype=torch.float64)  # P_i = 1/4 for every expert
    experts = torch.tensor([[n % e, (n + 1) % e] for n in range(8)])  # f_i = 1/4 each
    got = scalar(load_balancing_loss(logits, experts), "load_balancing_loss")
    expect_close(got, 1.0, "load_balancing_loss under perfectly uniform routing (E=4, k=2)",
                 hint="E * sum_i (1/E) * (1/E) = 1; 2.0 means f was counted per token "
                      "(Hugging Face Mixtral's load_balancing_loss_func returns top_k times "
                      "the Switch loss)", rel=1e-9)
    # The second way: one-hot of each slot, averaged over tokens, against P, then / top_k.
    logits = randn(10, 5, seed=4)
    _, experts = oracle_route(logits, 3)
    mask = F.one_hot(experts, 5).double()  # (tokens, k, E)
    per_slot = mask.mean(0)  # (k, E): the fraction of tokens whose slot j went to expert i
    probs = torch.softmax(logits, -1).mean(0)
    hugging_face = 5 * (per_slot * probs).sum()
    got = scalar(load_balancing_loss(logits, experts), "load_balancing_loss")
    expect_close(got * 3, hugging_face, "3 * load_balancing_loss (top_k = 3) against the "
                 "per-slot formulation of Hugging Face's Mixtral", rel=1e-6,
                 hint="f_i sums to 1 over the experts; Hugging Face's per-slot fractions sum "
                      "to top_k")
    # Everything to expert 0, the router sure of it: close to the worst case, E.
    logits = torch.tensor([[20.0, 0, 0, 0]] * 6, dtype=torch.float64)
    experts = torch.zeros(6, 1, dtype=torch.int64)
    got = scalar(load_balancing_loss(logits, experts), "load_balancing_loss")
    expect_close(got, 4.0, "load_balancing_loss when every token goes to expert 0 (E=4)",
                 rel=1e-6, hint="f_0 = 1 and P_0 ≈ 1, so E * f_0 * P_0 ≈ E")


def test_aux_loss_gradient_flows_through_p_only():
    logits = randn(12, 4, seed=5).requires_grad_()
    _, experts = oracle_route(logits, 2)
    scalar(load_balancing_loss(logits, experts), "load_balancing_loss").backward()
    ref = logits.detach().clone().requires_grad_()
    oracle_aux(ref, experts).backward()  # f is a count: a constant
    expect(logits.grad is not None, "no gradient reached the logits from load_balancing_loss",
           hint="P_i comes from softmax(logits): keep it in torch")
    expect_close(logits.grad, ref.grad, "d load_balancing_loss / d logits, float64",
                 hint="only P_i carries a gradient: E * sum_i f_i * dP_i", rel=1e-6, abs=1e-12)


@given(routing=routings, scale=st.sampled_from([0.1, 1.0, 30.0]))
def test_router_z_loss_is_mean_logsumexp_squared(routing, scale):
    n, e, _, seed = routing
    logits = randn(3, n, e, seed=seed) * scale
    got = scalar(router_z_loss(logits), "router_z_loss")
    want = oracle_z(logits)
    hint = "z-loss = mean over tokens of logsumexp(logits over the E experts)^2"
    if math.isclose(got.item(), oracle_lse(logits).mean().item(), rel_tol=1e-6):
        hint = "square each token's logsumexp before the mean. " + hint
    expect_close(got, want, f"router_z_loss of logits of shape (3, {n}, {e}), scale {scale}",
                 hint=hint, rel=1e-6, abs=1e-12)


def test_router_z_loss_is_finite_for_huge_logits():
    logits = torch.tensor([[1000.0, 999.0, -5.0]])
    got = scalar(router_z_loss(logits), "router_z_loss")
    want = (1000 + math.log(1 + math.exp(-1) + math.exp(-1005))) ** 2
    expect_close(got, want, "router_z_loss([[1000, 999, -5]]) in float32", rel=1e-5,
                 hint="torch.logsumexp subtracts the max first; log(exp(...).sum()) overflows")


# --- DeepSeek-V3's bias balancing ---


def test_bias_update_moves_against_the_load():
    bias = torch.tensor([0.5, 0.0, -0.2, 0.1])
    load = torch.tensor([0.4, 0.25, 0.1, 0.25])  # mean 0.25: expert 0 over, expert 2 under
    got = bias_update(bias, load, 0.01)
    expect(isinstance(got, torch.Tensor) and got.shape == (4,),
           f"bias_update returned {describe_value(got)}; expected a tensor of shape (4,)")
    hint = "b_i - gamma * sign(load_i - mean load): an overloaded expert gets a LOWER bias"
    if torch.allclose(got, bias + 0.01 * torch.sign(load - load.mean())):
        hint = "the sign is backwards: " + hint
    expect_close(got, [0.49, 0.0, -0.19, 0.1], "bias_update([0.5, 0, -0.2, 0.1], load "
                 "[0.4, 0.25, 0.1, 0.25], gamma=0.01)", hint=hint, rel=1e-6, abs=1e-7)
    expect(torch.equal(bias, torch.tensor([0.5, 0.0, -0.2, 0.1])),
           "bias_update changed the bias it was given", hint="return a new tensor")
    with pytest.raises(ValueError, match="gamma"):
        bias_update(bias, load, -0.1)


def test_bias_balancing_lowers_a_planted_imbalance():
    e = 8
    logits = randn(512, e, seed=6) + torch.linspace(2, 0, e, dtype=torch.float64)  # 0 favoured
    bias = torch.zeros(e, dtype=torch.float64)
    start = None
    for _ in range(100):
        _, experts = routed(logits, 2, bias)
        load = expert_load(experts, e).double()
        start = load if start is None else start
        bias = bias_update(bias, load, 0.02)
    _, experts = routed(logits, 2, bias)
    end = oracle_load(experts, e)
    expect(start.max() * e > 2 and end.max() * e < 1.25,
           f"100 rounds of route -> expert_load -> bias_update (gamma 0.02) on logits that "
           f"favour expert 0: the busiest expert's load went from {start.max().item() * e:.2f}"
           f" to {end.max().item() * e:.2f} times the uniform share 1/{e}; expected below 1.25",
           hint="route chooses by logits + bias; bias_update lowers the bias of experts above "
                "the mean load, which sends their tokens elsewhere")


# --- dispatch: each expert sees only its own tokens ---


class Recording:
    """An expert that is a fixed float64 function and counts the rows it was given."""

    def __init__(self, d, seed):
        self.w = randn(d, d, seed=seed)
        self.rows, self.row_sum = 0, 0.0

    def __call__(self, x):
        self.rows += x.shape[0]
        self.row_sum = self.row_sum + x.detach().sum(0)
        return torch.tanh(x @ self.w) + 0.5


dispatches = st.integers(1, 6).flatmap(lambda e: st.tuples(
    st.integers(1, 12), st.just(e), st.integers(1, e), st.integers(1, 5), st.integers(0, 9999)))


@given(case=dispatches)
def test_dispatch_equals_the_dense_loop(case):
    n, e, k, d, seed = case
    x = randn(n, d, seed=seed).requires_grad_()
    _, experts = oracle_route(randn(n, e, seed=seed + 1), k)
    gates = (randn(n, k, seed=seed + 2).abs() + 0.1).requires_grad_()
    modules = [Recording(d, seed + 10 + i) for i in range(e)]
    got = dispatch(x, gates, experts, modules)
    expect(isinstance(got, torch.Tensor) and got.shape == (n, d),
           f"dispatch(x of shape ({n}, {d}), ...) returned {describe_value(got)}; expected a "
           f"tensor of shape ({n}, {d})")
    want = dense_loop(x, gates, experts, [Recording(d, seed + 10 + i) for i in range(e)])
    expect_close(got, want, f"dispatch for {n} tokens, {e} experts, top_k={k}, float64",
                 hint="out[token] = sum over its slots of gate * expert(x[token]): gather each "
                      "expert's rows, run it once, multiply by their gates, index_add_ back",
                 rel=1e-9, abs=1e-12)
    g = randn(n, d, seed=seed + 3)
    got_grads = torch.autograd.grad((got * g).sum(), (x, gates))
    want_grads = torch.autograd.grad((want * g).sum(), (x, gates))
    for name, a, b in zip(("x", "gates"), got_grads, want_grads):
        expect_close(a, b, f"d sum(dispatch(...) * g) / d {name}", rel=1e-9, abs=1e-12,
                     hint="stay in torch (index_add_ or index_add, no .detach())")
    for i, m in enumerate(modules):
        chosen = (experts == i).any(-1)
        expect(m.rows == int(chosen.sum()),
               f"expert {i} was run on {m.rows} rows, but {int(chosen.sum())} of the {n} "
               f"tokens chose it", hint="a dense loop runs every expert on every token: give "
                                         "each expert only x[tokens that chose it]")
        if m.rows:
            expect_close(m.row_sum, x.detach()[chosen].sum(0), f"the rows expert {i} was given"
                         " (summed)", hint="x[token] for each token that chose the expert",
                         rel=1e-9, abs=1e-12)


# --- the MoE layer ---


def random_moe(d=6, e=5, k=2, hidden=7, seed=0, **options):
    torch.manual_seed(seed)
    layer = MoE(d, e, k, hidden=hidden, **options).double()
    with torch.no_grad():
        for i, p in enumerate(layer.parameters()):
            p.copy_(randn(*p.shape, seed=100 + 10 * seed + i) * 0.6)
    return layer


def layer_out(layer, x):
    got = layer(x)
    expect(isinstance(got, torch.Tensor) and got.shape == x.shape,
           f"MoE on x of shape {tuple(x.shape)} returned {describe_value(got)}; expected the "
           "same shape", hint="flatten to (tokens, n_embd), dispatch, reshape back")
    return got


def test_moe_layer_parts_and_names():
    layer = MoE(16, 4, 2, hidden=24)
    got = {name: tuple(t.shape) for name, t in layer.state_dict().items()}
    want = {"router.weight": (4, 16), "expert_bias": (4,)}
    for i in range(4):
        want |= {f"experts.{i}.w1.weight": (24, 16), f"experts.{i}.w3.weight": (24, 16),
                 f"experts.{i}.w2.weight": (16, 24)}
    expect(got == want, f"MoE(16, 4, 2, hidden=24).state_dict():\n  expected {want}\n  got     "
           f" {got}", hint="router = nn.Linear(n_embd, n_expert, bias=False); experts = "
                           "nn.ModuleList of SwiGLU(n_embd, hidden, dropout); expert_bias a "
                           "buffer (register_buffer) of zeros, saved with the weights")
    expect(torch.equal(layer.expert_bias, torch.zeros(4)), "expert_bias must start at zero")
    expect(not any(p is layer.expert_bias for p in layer.parameters()),
           "expert_bias is a parameter: the optimizer would move it by the gradient",
           hint="register_buffer: only bias_update moves it")


def test_one_expert_top_one_is_the_dense_swiglu():
    torch.manual_seed(1)
    dense = SwiGLU(8, 12).double()
    layer = random_moe(d=8, e=1, k=1, hidden=12)
    with torch.no_grad():
        for name, p in dense.named_parameters():
            layer.experts[0].get_parameter(name).copy_(p)
    x = randn(2, 5, 8, seed=7)
    expect_close(layer_out(layer, x), dense(x), "MoE(n_expert=1, top_k=1) against kata 14's "
                 "SwiGLU with the same weights", rel=1e-10, abs=1e-12,
                 hint="one expert, one slot: its gate is softmax of one logit = 1")


def test_moe_layer_against_the_dense_oracle():
    layer = random_moe(balance="bias")
    layer.eval()
    with torch.no_grad():
        layer.expert_bias.copy_(torch.tensor([0.0, 2.0, -1.0, 0.5, 0.0]))
    x = randn(2, 3, 6, seed=8)
    got = layer_out(layer, x)
    flat = x.reshape(6, 6)
    logits = flat @ layer.router.weight.detach().T
    gates, experts = oracle_route(logits, 2, layer.expert_bias)
    want = dense_loop(flat, gates, experts, list(layer.experts)).reshape(2, 3, 6)
    hint = "logits = router(x); experts by logits + expert_bias; gates: softmax over the " \
           "chosen logits (no bias); out = sum of gate * expert(x)"
    b_gates, _ = oracle_route(logits + layer.expert_bias, 2)
    if torch.allclose(got, dense_loop(flat, b_gates, experts, list(layer.experts))
                      .reshape(2, 3, 6)):
        hint = "the bias went into the gates. " + hint
    expect_close(got, want, "MoE(6, 5 experts, top_k=2) with expert_bias set, eval mode, "
                 "float64", hint=hint, rel=1e-9, abs=1e-12)


def test_moe_layer_leaves_its_losses_and_load():
    layer = random_moe(seed=2)
    x = randn(4, 6, seed=9)
    layer_out(layer, x)
    logits = x @ layer.router.weight.detach().T
    _, experts = oracle_route(logits, 2)
    for name, want in (("aux_loss", oracle_aux(logits, experts)), ("z_loss", oracle_z(logits))):
        got = getattr(layer, name, None)
        scalar(got, f"layer.{name} after a forward")
        expect(got.requires_grad, f"layer.{name} has no gradient",
               hint="keep it in the graph: the model adds it to the loss")
        expect_close(got, want, f"layer.{name} after a forward of 4 tokens", rel=1e-6,
                     hint="aux_loss = load_balancing_loss(logits, experts); z_loss = "
                          "router_z_loss(logits), with logits = router(x)")
    load = getattr(layer, "load", None)
    expect(isinstance(load, torch.Tensor) and load.shape == (5,),
           f"layer.load after a forward is {describe_value(load)}; expected a tensor of shape "
           "(5,)", hint="self.load = expert_load(experts, n_expert), detached")
    expect_close(load, oracle_load(experts, 5), "layer.load after a forward", rel=1e-6)


def test_an_unchosen_expert_changes_nothing():
    layer = random_moe(seed=3)
    x = randn(10, 6, seed=10)
    before = layer_out(layer, x).detach()
    _, experts = oracle_route(x @ layer.router.weight.detach().T, 2)
    unchosen = next(i for i in range(5) if i not in experts[0].tolist())
    with torch.no_grad():
        for p in layer.experts[unchosen].parameters():
            p.zero_()
    after = layer_out(layer, x).detach()
    expect_close(after[0], before[0], f"token 0's output after zeroing expert {unchosen}, "
                 f"which token 0 did not choose (it chose {sorted(experts[0].tolist())})",
                 rel=1e-12, abs=1e-12, hint="only the chosen experts may contribute")
    users = (experts == unchosen).any(-1)
    if users.any():
        expect(not torch.allclose(after[users], before[users]),
               f"zeroing expert {unchosen} did not change the tokens that chose it",
               hint="each chosen expert's output, times its gate, goes into the sum")


def test_bias_moves_in_training_only_and_only_with_bias_balance():
    x = randn(3, 4, 6, seed=11)
    layer = random_moe(seed=4, balance="bias", bias_gamma=0.05)
    logits = x.reshape(12, 6) @ layer.router.weight.detach().T
    load = oracle_load(oracle_route(logits, 2)[1], 5)
    layer.train()
    layer_out(layer, x)
    expect_close(layer.expert_bias, -0.05 * torch.sign(load - load.mean()),
                 "expert_bias after one training forward with balance='bias', gamma 0.05",
                 rel=1e-6, abs=1e-9, hint="in training, after routing: expert_bias <- "
                 "bias_update(expert_bias, load, bias_gamma), under torch.no_grad()")
    kept = layer.expert_bias.clone()
    layer.eval()
    layer_out(layer, x)
    expect(torch.equal(layer.expert_bias, kept), "expert_bias moved in eval mode",
           hint="only training forwards update it (self.training)")
    layer = random_moe(seed=4, balance="aux")
    layer.train()
    layer_out(layer, x)
    expect(torch.equal(layer.expert_bias, torch.zeros(5, dtype=torch.float64)),
           "expert_bias moved with balance='aux'", hint="the bias is DeepSeek's switch: "
                                                         "balance='bias' only")


@pytest.mark.parametrize("args,name", [((8, 0, 1), "n_expert"), ((8, 4, 5), "top_k"),
                                       ((8, 4, 0), "top_k")], ids=str)
def test_moe_rejects_bad_sizes(args, name):
    with pytest.raises(ValueError, match=name):
        MoE(*args)
    with pytest.raises(ValueError, match="balance"):
        MoE(8, 4, 2, balance="loss")


# --- the model ---


TINY = MoEConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, mlp_hidden=8,
                 n_kv_head=1, n_expert=4, top_k=2, aux_alpha=0.5, z_alpha=0.1)


def make_model(config=TINY, seed=0):
    torch.manual_seed(seed)
    model = MoEGPT(config).double()
    expect(all(isinstance(b.mlp, MoE) for b in model.transformer.h),
           "MoEGPT's blocks must hold an MoE as block.mlp",
           hint="after ModernGPT.__init__, replace each block's mlp by an MoE")
    return model


def captured_router_logits(model):
    """Each MoE layer's router logits, recomputed here from what the layer was given."""
    seen = []
    hooks = [b.mlp.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach().reshape(-1, args[0].size(-1))
                                    @ m.router.weight.detach().T)) for b in model.transformer.h]
    return seen, hooks


@pytest.mark.parametrize("balance", ["aux", "bias"])
def test_the_training_loss_adds_the_balancing_terms(balance):
    config = MoEConfig(**{**vars(TINY), "balance": balance})
    model = make_model(config)
    idx = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(2))
    for mode in ("train", "eval"):
        getattr(model, mode)()
        seen, hooks = captured_router_logits(model)
        bias = [b.mlp.expert_bias.clone() for b in model.transformer.h]
        logits, loss = model(idx, targets)
        for h in hooks:
            h.remove()
        ce = F.cross_entropy(logits.reshape(16, 11), targets.reshape(16))
        aux = torch.stack([oracle_aux(r, oracle_route(r, 2, b)[1]) for r, b in zip(seen, bias)])
        z = torch.stack([oracle_z(r) for r in seen])
        extra = 0.1 * z.mean() + (0.5 * aux.mean() if balance == "aux" else 0)
        want = ce + extra if mode == "train" else ce
        hint = ("training loss = cross-entropy + z_alpha * mean z-loss over layers" +
                (" + aux_alpha * mean aux loss over layers" if balance == "aux" else
                 " (with balance='bias' the aux loss is not added)") if mode == "train" else
                "in eval mode the loss is the cross-entropy alone, comparable with the dense "
                "model's validation loss")
        if mode == "train" and math.isclose(loss.item(), ce.item(), rel_tol=1e-9):
            hint = "the balancing terms were not added: without them nothing balances the " \
                   "experts. " + hint
        elif mode == "train" and math.isclose(loss.item(), (ce + 2 * extra).item(),
                                              rel_tol=1e-9):
            hint = "you summed over the layers: take the mean. " + hint
        expect_close(loss, want, f"MoEGPT loss in {mode} mode, balance={balance!r} "
                     "(aux_alpha 0.5, z_alpha 0.1)", hint=hint, rel=1e-9, abs=1e-12)


def test_the_model_keeps_its_config_and_generates_with_a_cache():
    model = make_model(seed=3)
    expect(model.config is TINY or model.config == TINY,
           f"model.config is {model.config!r}; expected the MoEConfig it was built with",
           hint="set self.config = config after ModernGPT.__init__ (the trainer saves it)")
    for block in model.transformer.h:
        expect(len(block.mlp.experts) == 4 and block.mlp.top_k == 2,
               "each block's MoE must have n_expert experts and top_k from the config")
    prompt = torch.tensor([[1, 2, 3]])
    cached = generate(model, prompt, 12, top_k=1)
    fresh = generate(model, prompt, 12, top_k=1, use_cache=False)
    expect(torch.equal(cached, fresh), f"greedy generation with kata 16's cache gave "
           f"{cached.tolist()}, without it {fresh.tolist()}",
           hint="forward(idx, targets, kv_cache) must pass kv_cache on to ModernGPT.forward")


def test_active_and_total_parameters():
    model = make_model(seed=4)
    d, h, e, k, layers = 16, 8, 4, 2, 2
    dense = ModernGPT(TINY.dense()).num_params()  # kata 16's: one SwiGLU of width 8 a block
    expert = 3 * d * h
    total = dense + layers * ((e - 1) * expert + d * e)  # + 3 more experts and a router
    active = total - layers * (e - k) * expert
    expect(model.num_params() == total, f"MoEGPT(TINY).num_params() = {model.num_params():,};"
           f" expected {total:,}", hint="every expert and the router are parameters")
    got = model.active_params()
    expect(type(got) is int and got == active,
           f"MoEGPT(TINY).active_params() = {got!r}; expected {active:,} (all parameters but "
           f"the {e - k} skipped experts per layer, {expert} each)",
           hint="num_params() - n_layer * (n_expert - top_k) * (parameters of one expert)")
    config = moe_like(PRESETS["tiny"], n_expert=8, top_k=2)
    active = MoEGPT(config).active_params()
    want = 439_040  # kata 16's tiny preset (a comment there; count_params gives it)
    expect(abs(active - want) < 0.01 * want,
           f"moe_like(tiny, 8 experts, top-2): {active:,} active parameters; the dense model "
           f"has {want:,}", hint="active_params counts top_k experts per layer, and the router")


def test_an_moe_config_is_a_modern_config_with_mlp_moe():
    expect(TINY.mlp == "moe" and isinstance(TINY, ModernConfig),
           "MoEConfig is given: do not change it")
    model = make_model(seed=5)
    state = model.state_dict()
    want = {"transformer.h.0.mlp.router.weight", "transformer.h.1.mlp.expert_bias",
            "transformer.h.1.mlp.experts.3.w2.weight"}
    expect(want <= set(state) and "transformer.h.0.mlp.w2.weight" not in state,
           f"MoEGPT's state_dict lacks {sorted(want - set(state))} or still holds the dense "
           "SwiGLU", hint="block.mlp = MoE(...): the dense SwiGLU is replaced, not kept")
    std = state["transformer.h.0.mlp.experts.0.w2.weight"].std().item()
    expect(abs(std - 0.01) < 0.004, f"the experts' w2 weights have std {std:.4f}; kata 16's "
           "init gives the residual projections 0.02 / sqrt(2 * n_layer) = 0.01 here",
           hint="after the swap, initialize the new weights: normal(0, 0.02), and each "
                "expert's w2 (it writes to the residual stream) with 0.02 / sqrt(2 n_layer)")
