"""Specs for kata 10. Oracles: the closed-form schedule (worked by hand in the comments),
torch.optim.AdamW's own weight-decay rule, and torch.nn.utils.clip_grad_norm_."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from schedules import clip_grad_norm, lr_at, param_groups
from torch import nn

from harness.checks import expect, expect_close

# ---------------------------------------------------------------- the learning-rate schedule

# The reference run: max 1e-3, min 1e-4, warmup 100, 5,000 steps.
REF = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=100, max_steps=5000)


@pytest.mark.parametrize(
    "step,want,why",
    [
        (0, 0.0, "warmup starts from 0: 1e-3 * 0/100"),
        (50, 5e-4, "halfway through warmup: 1e-3 * 50/100"),
        (99, 9.9e-4, "last warmup step: 1e-3 * 99/100"),
        (100, 1e-3, "the first cosine step has p = 0, cos(0) = 1: max_lr"),
        (2550, 5.5e-4, "p = 0.5, cos(pi/2) = 0: halfway between 1e-3 and 1e-4"),
        (5000, 1e-4, "p = 1, cos(pi) = -1: min_lr"),
        (7000, 1e-4, "past max_steps the rate stays at min_lr"),
    ],
)
def test_worked_example(step, want, why):
    expect_close(lr_at(step, **REF), want, f"lr_at({step}) for max 1e-3, min 1e-4, warmup 100, "
                 "max_steps 5000", hint=why, rel=1e-9, abs=1e-15)


@st.composite
def schedules(draw, min_warmup=0):
    max_lr = draw(st.floats(1e-5, 1.0))
    min_lr = max_lr * draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0.0, 1.0))
    warmup = draw(st.integers(min_warmup, 300))
    max_steps = warmup + draw(st.integers(1, 3000))
    return dict(max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup, max_steps=max_steps)


@given(schedules(min_warmup=1))
def test_warmup_is_a_straight_line_from_zero(s):
    w = s["warmup_steps"]
    got = [lr_at(k, **s) for k in range(w)]
    want = [s["max_lr"] * k / w for k in range(w)]
    expect_close(got, want, f"lr_at(0..{w - 1}) with warmup {w}, max_lr {s['max_lr']:.3g}",
                 hint="during warmup lr = max_lr * step / warmup_steps, so step 0 gives 0 "
                      "(not max_lr / warmup: that is the (step + 1) off-by-one)", rel=1e-9)


@given(schedules())
def test_the_warmup_boundary_is_max_lr_and_continuous(s):
    w = s["warmup_steps"]
    at = lr_at(w, **s)
    expect_close(at, s["max_lr"], f"lr_at(warmup_steps={w})", rel=1e-9,
                 hint="the cosine phase starts with p = 0, cos(0) = 1: exactly max_lr")
    if w > 0:
        before = lr_at(w - 1, **s)
        expect(0 <= at - before <= s["max_lr"] / w * (1 + 1e-9),
               f"jump at the warmup boundary: lr_at({w - 1}) = {before:.6g}, lr_at({w}) = "
               f"{at:.6g}; one step may add at most max_lr/warmup = {s['max_lr'] / w:.6g}",
               hint="check the step where warmup hands over to the cosine (< versus <=)")
    after = lr_at(w + 1, **s)
    expect(after <= at, f"lr_at({w + 1}) = {after:.6g} is above max_lr = {at:.6g}",
           hint="after warmup the rate only goes down")


@given(schedules())
def test_warmup_rises_and_decay_falls(s):
    w, m = s["warmup_steps"], s["max_steps"]
    rates = [lr_at(k, **s) for k in range(m + 1)]
    for k in range(m):
        rising = k < w
        ok = rates[k + 1] > rates[k] if rising else rates[k + 1] <= rates[k] * (1 + 1e-12)
        expect(ok, f"lr_at({k}) = {rates[k]:.6g}, lr_at({k + 1}) = {rates[k + 1]:.6g}: the rate "
               f"should {'rise' if rising else 'not rise'} here (warmup {w}, max_steps {m})",
               hint="warmup climbs while step < warmup_steps; the cosine only falls")


@given(schedules(), st.integers(0, 3000))
def test_cosine_phase_follows_the_formula(s, offset):
    w, m = s["warmup_steps"], s["max_steps"]
    step = w + offset % (m - w)
    p = (step - w) / (m - w)
    want = s["min_lr"] + 0.5 * (s["max_lr"] - s["min_lr"]) * (1 + math.cos(math.pi * p))
    expect_close(lr_at(step, **s), want, f"lr_at({step}) with warmup {w}, max_steps {m}",
                 hint="p = (step - warmup) / (max_steps - warmup), not step / max_steps", rel=1e-9)


@given(schedules(), st.integers(0, 10**6))
def test_min_lr_from_max_steps_on(s, extra):
    step = s["max_steps"] + extra
    expect_close(lr_at(step, **s), s["min_lr"], f"lr_at({step}) with max_steps {s['max_steps']}",
                 hint="at and after max_steps the rate is min_lr (the cosine would climb back)",
                 rel=1e-9, abs=1e-15)


def test_a_run_that_is_all_warmup_ends_at_min_lr():
    # warmup_steps == max_steps: the warmup line up to the end, then min_lr (the end wins).
    got = [lr_at(k, 1e-3, 1e-4, 10, 10) for k in range(12)]
    want = [1e-3 * k / 10 for k in range(10)] + [1e-4, 1e-4]
    expect_close(got, want, "lr_at(0..11) with warmup_steps = max_steps = 10", rel=1e-9,
                 hint="warmup_steps may equal max_steps; check step >= max_steps first, so "
                      "lr_at(max_steps) is min_lr")


def test_no_warmup_starts_at_max_lr():
    expect_close(lr_at(0, 1e-3, 1e-4, 0, 100), 1e-3, "lr_at(0) with warmup_steps=0",
                 hint="with no warmup the cosine starts at step 0 (and nothing divides by 0)")


@pytest.mark.parametrize(
    "args, bad",
    [
        (dict(step=-1, max_lr=1e-3, min_lr=0.0, warmup_steps=10, max_steps=100), "step"),
        (dict(step=0, max_lr=1e-3, min_lr=0.0, warmup_steps=200, max_steps=100), "warmup_steps"),
        (dict(step=0, max_lr=1e-3, min_lr=0.0, warmup_steps=-1, max_steps=100), "warmup_steps"),
        (dict(step=0, max_lr=1e-3, min_lr=0.0, warmup_steps=0, max_steps=0), "max_steps"),
        (dict(step=0, max_lr=1e-3, min_lr=1e-2, warmup_steps=10, max_steps=100), "min_lr"),
    ],
    ids=["negative step", "warmup past max_steps", "negative warmup", "max_steps 0",
         "min_lr above max_lr"],
)
def test_bad_arguments_are_a_clear_error(args, bad):
    with pytest.raises(ValueError) as info:
        lr_at(**args)
    expect(bad in str(info.value), f"lr_at({args}) raised ValueError({str(info.value)!r}), "
           f"which does not name {bad}", hint="say which argument is wrong and what it must be, "
           "e.g. 'need 0 <= min_lr <= max_lr, got min_lr=0.01, max_lr=0.001'")


# ---------------------------------------------------------------- AdamW parameter groups


class Tiny(nn.Module):
    """Every kind of parameter a GPT has: embedding (tied to the head), linear with bias,
    norm gain and bias, a 3-D conv kernel, and a frozen buffer-like parameter."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.conv = nn.Conv1d(8, 8, 3)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied: one tensor, two names
        self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)


def _names(model, tensors):
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id.get(id(t), "<not a parameter of the model>") for t in tensors]


def test_groups_cover_every_trainable_parameter_once():
    model = Tiny()
    groups = param_groups(model, 0.1)
    expect(isinstance(groups, list) and len(groups) == 2,
           f"expected a list of 2 groups (decay, no decay), got {groups!r:.200}")
    listed = [p for g in groups for p in g["params"]]
    want = [p for p in model.parameters() if p.requires_grad]  # a tied tensor is listed once
    expect(len(listed) == len(want) and {id(p) for p in listed} == {id(p) for p in want},
           f"groups hold {sorted(_names(model, listed))}, expected each of "
           f"{sorted(_names(model, want))} exactly once",
           hint="a tied weight is one tensor: use named_parameters(), which yields it once; "
                "skip parameters with requires_grad=False")


def test_only_matrices_decay():
    model = Tiny()
    decay, no_decay = param_groups(model, 0.1)
    expect_close([decay["weight_decay"], no_decay["weight_decay"]], [0.1, 0.0],
                 "weight_decay of the (decay, no-decay) groups")
    got = sorted(_names(model, decay["params"]))
    expect(got == ["conv.weight", "emb.weight", "fc.weight"],
           f"decayed parameters: {got}; expected ['conv.weight', 'emb.weight', 'fc.weight']",
           hint="decay every parameter with p.dim() >= 2 (matrices, embeddings, conv kernels)")
    got = sorted(_names(model, no_decay["params"]))
    expect(got == ["conv.bias", "fc.bias", "norm.bias", "norm.weight"],
           f"parameters without decay: {got}; expected the biases and the norm gain",
           hint="biases and norm gains are 1-D: pulling them to 0 only fights the layer")


def test_each_group_keeps_model_order():
    # The optimizer's state_dict refers to parameters by position: a set, or a sort by size,
    # would make a saved optimizer state load onto the wrong tensors.
    model = Tiny()
    order = {id(p): i for i, p in enumerate(model.parameters())}
    for group in param_groups(model, 0.1):
        positions = [order[id(p)] for p in group["params"]]
        expect(positions == sorted(positions),
               f"group with weight_decay={group['weight_decay']} lists parameters in the order "
               f"{_names(model, group['params'])}", hint="append in named_parameters() order")


def test_adamw_decays_exactly_the_matrices():
    # With zero gradients an AdamW step only applies the decay: p *= 1 - lr * weight_decay.
    torch.manual_seed(0)
    model = Tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    torch.optim.AdamW(param_groups(model, 0.5), lr=0.1).step()
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if p.dim() >= 2 and p.requires_grad else 1.0
        expect_close(p.detach(), before[name] * factor, f"{name} after one AdamW step with zero "
                     "grads (lr 0.1, weight_decay 0.5)", rel=1e-6, abs=1e-7,
                     hint="matrices shrink by 1 - lr * wd = 0.95; biases and gains stay put")


# ---------------------------------------------------------------- gradient clipping


def _with_grads(grads):
    params = []
    for g in grads:
        p = nn.Parameter(torch.zeros(2) if g is None else torch.zeros_like(g))
        p.grad = None if g is None else g.clone()
        params.append(p)
    return params


@st.composite
def gradient_sets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    shapes = draw(st.lists(st.sampled_from([(3,), (2, 5), (4, 1, 3), ()]), min_size=1, max_size=5))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 10.0]))
    grads = [torch.randn(s, generator=g, dtype=torch.float64) * scale for s in shapes]
    missing = draw(st.lists(st.booleans(), min_size=len(grads), max_size=len(grads)))
    grads = [None if m else t for m, t in zip(missing, grads, strict=True)]
    max_norm = draw(st.sampled_from([0.01, 0.5, 1.0, 5.0]))
    return grads, max_norm


@given(gradient_sets())
def test_clipping_equals_torch(case):
    grads, max_norm = case
    ours, theirs = _with_grads(grads), _with_grads(grads)
    got = clip_grad_norm(ours, max_norm)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    expect(isinstance(got, torch.Tensor), f"clip_grad_norm returned {type(got).__name__}, "
           "expected a tensor (the norm before clipping)")
    expect_close(got, want, f"returned norm for max_norm {max_norm}", rel=1e-9, abs=1e-12,
                 hint="return the global norm measured BEFORE scaling")
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        expect((a.grad is None) == (b.grad is None), f"param {i}: grad None-ness changed",
               hint="skip parameters without a grad; do not give them one")
        if a.grad is not None:
            expect_close(a.grad, b.grad, f"grad of param {i} after clipping to {max_norm}",
                         rel=1e-9, abs=1e-12,
                         hint="one scale for all: min(1, max_norm / (norm + 1e-6))")


def test_the_norm_is_global_not_per_parameter():
    # Two gradients of norm 0.8 each: each is under 1.0, but together sqrt(0.8^2 * 2) = 1.1314.
    params = _with_grads([torch.tensor([0.8, 0.0]), torch.tensor([0.0, 0.8])])
    norm = clip_grad_norm(params, 1.0)
    expect_close(norm, math.sqrt(1.28), "global norm of [0.8, 0] and [0, 0.8]", rel=1e-6,
                 hint="sqrt of the sum of squares over ALL gradients")
    scale = 1.0 / (math.sqrt(1.28) + 1e-6)
    expect_close([params[0].grad, params[1].grad], [[0.8 * scale, 0.0], [0.0, 0.8 * scale]],
                 "grads after clipping to 1.0", rel=1e-6,
                 hint="clipping each gradient on its own leaves both untouched here")


def test_under_the_limit_nothing_changes():
    grads = [torch.tensor([0.3, -0.4]), torch.tensor([[0.1, 0.2]])]  # norm sqrt(0.3) = 0.5477
    params = _with_grads(grads)
    norm = clip_grad_norm(params, 1.0)
    expect_close(norm, math.sqrt(0.30), "norm of [0.3, -0.4] and [[0.1, 0.2]]", rel=1e-6)
    for p, g in zip(params, grads, strict=True):
        expect(torch.equal(p.grad, g), f"grad {g.tolist()} became {p.grad.tolist()} although "
               "the norm 0.548 is under max_norm 1.0",
               hint="never scale up: the factor is min(1, max_norm / (norm + 1e-6))")


def test_a_generator_of_parameters_is_clipped():
    # model.parameters() is a generator: walking it twice finds nothing the second time.
    model = nn.Linear(3, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    want = math.sqrt(8 * 100.0)
    norm = clip_grad_norm(model.parameters(), 1.0)
    expect_close(norm, want, "norm of 8 gradients of 10", rel=1e-6)
    clipped = math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))
    expect_close(clipped, 1.0, "global norm after clip_grad_norm(model.parameters(), 1.0)",
                 rel=1e-5, hint="make a list of the grads first; a generator runs only once")


def test_no_gradients_at_all():
    got = clip_grad_norm(_with_grads([None, None]), 1.0)
    expect(isinstance(got, torch.Tensor) and float(got) == 0.0,
           f"with no gradients the norm is tensor(0.), got {got!r}")
