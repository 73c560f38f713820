"""Specs for kata 18. Oracles, none of them the code under test:
- the polar factor U @ V.T of torch.linalg.svd in float64, which Newton-Schulz with the
  convergent coefficients (15/8, -10/8, 3/8) reaches;
- the quintic written on the singular values: for G = U S V.T the iteration only changes S,
  so 5 steps give U p5(S / ||G||) V.T with p5 the scalar polynomial applied 5 times (float64);
- the singular-value band of 5 quintic steps, [0.6818, 1.2024] for every normalized singular
  value >= 0.002 (the scalar polynomial on a grid of 200,001 points in float64);
- a Muon step written out below in float64 (momentum in both its sum and its average form);
- torch.optim.Muon (PyTorch 2.13), whose iteration runs in bfloat16: to its precision;
- torch.optim.AdamW in float64 for the AdamW groups.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from gpt import GPT, GPTConfig
from hypothesis import given
from hypothesis import strategies as st
from muon import Muon, muon_with_adamw, newton_schulz, shape_scale
from torch.overrides import TorchFunctionMode

from harness.checks import expect, expect_close, tensors_in

QUINTIC = (3.4445, -4.7750, 2.0315)
CONVERGENT = (15 / 8, -10 / 8, 3 / 8)
BAND = (0.6818, 1.2024)  # where 5 quintic steps leave every normalized sigma >= 0.002


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def orthogonalized(G, **kwargs):
    """The learner's newton_schulz(G), checked to be a real tensor of G's shape and dtype."""
    got = newton_schulz(G, **kwargs)
    what = type(got).__name__ if type(got) is not torch.Tensor else f"shape {tuple(got.shape)}"
    expect(type(got) is torch.Tensor and got.shape == G.shape,
           f"newton_schulz of a {tuple(G.shape)} matrix returned {what}",
           hint="a tall matrix (more rows than columns) is transposed for the iteration and "
                "transposed back at the end: the result has G's shape")
    expect(got.dtype == G.dtype, f"newton_schulz of a {G.dtype} matrix returned {got.dtype}",
           hint="compute in G's dtype (no .float() or .bfloat16() on the way)")
    return got


def polynomial(x, coefficients, steps):
    a, b, c = coefficients
    for _ in range(steps):
        x = a * x + b * x**3 + c * x**5
    return x


def ns_oracle(O, steps=5, coefficients=QUINTIC, eps=1e-7):
    """Newton-Schulz by way of the SVD: the same polynomial, on the singular values only."""
    U, S, Vh = torch.linalg.svd(O, full_matrices=False)
    return U @ torch.diag(polynomial(S / (torch.linalg.matrix_norm(O) + eps), coefficients,
                                     steps)) @ Vh


def scale_oracle(shape, adjust_lr_fn):
    rows, cols = shape
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1, rows / cols))


def muon_oracle(W, grads, lr, weight_decay, momentum, nesterov, adjust_lr_fn, form="sum",
                nesterov_used=None, decay_scaled=False):
    """The Muon steps written out. form "sum": B = mu B + G; "average": B = mu B + (1 - mu) G
    (torch.optim.Muon's), whose direction is (1 - mu) times the sum form's. The other two
    switches write the classic mistakes, to name them in a hint."""
    nesterov = nesterov if nesterov_used is None else nesterov_used
    W, B = W.clone(), torch.zeros_like(W)
    s = scale_oracle(tuple(W.shape), adjust_lr_fn)
    for G in grads:
        if form == "sum":
            B = momentum * B + G
            O = G + momentum * B if nesterov else B
        else:
            B = momentum * B + (1 - momentum) * G
            O = (1 - momentum) * G + momentum * B if nesterov else B
        W = W * (1 - lr * weight_decay * (s if decay_scaled else 1)) - lr * s * ns_oracle(O)
    return W


def run_muon(W0, grads, **kwargs):
    """W0 after one Muon step per gradient, through the learner's optimizer."""
    W = torch.nn.Parameter(W0.clone())
    optimizer = Muon([W], **kwargs)
    for G in grads:
        W.grad = G.clone()
        optimizer.step()
    return W.detach()


# --- Newton-Schulz ---


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (50, 50)], ids=str)
def test_convergent_coefficients_reach_the_polar_factor(shape):
    G = randn(*shape, seed=1)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    got = orthogonalized(G, steps=30, coefficients=CONVERGENT)
    hint = ("X = G / (||G||_F + eps) first, then 30 times A = X X.T; X = a X + (b A + c A A) X "
            "with (a, b, c) = (15/8, -10/8, 3/8): that converges to U V.T")
    if torch.isfinite(got).all() and abs(torch.linalg.matrix_norm(got).item() - 1) < 1e-6:
        hint = ("the result has Frobenius norm 1: you normalized AFTER the iteration. Normalize "
                "BEFORE it, so that every singular value starts at most 1")
    elif not torch.isfinite(got).all():
        hint = ("the iteration blew up: normalize G by its Frobenius norm BEFORE iterating "
                "(the polynomial sends singular values well above 1 to infinity)")
    expect_close(got, U @ Vh, f"newton_schulz(G {shape}, steps=30, coefficients=(15/8, -10/8, "
                 "3/8)) against U @ V.T from torch.linalg.svd, float64", rel=0, abs=1e-12,
                 hint=hint)


@given(rows=st.integers(1, 40), cols=st.integers(1, 40), steps=st.integers(0, 6),
       seed=st.integers(0, 2**31 - 1))
def test_quintic_is_its_polynomial_on_the_singular_values(rows, cols, steps, seed):
    G = 100 * randn(rows, cols, seed=seed)
    got = orthogonalized(G, steps=steps)
    hint = ("A = X X.T; X = a X + (b A + c A A) X changes only the singular values, each by "
            "a x + b x^3 + c x^5: check the order of the products and the coefficients")
    if rows > cols:
        hint += "; for a tall G, iterate on G.T and transpose the result back"
    expect_close(got, ns_oracle(G, steps), f"newton_schulz(G {rows}x{cols}, steps={steps}) "
                 "against U p(S / ||G||_F) V.T, the polynomial applied to G's singular values",
                 rel=1e-7, abs=1e-7, hint=hint)


def random_orthonormal(n, k, generator):
    """n x k with orthonormal columns (k <= n): the Q of a Gaussian matrix."""
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=generator, dtype=torch.float64))
    return q


@given(rows=st.integers(1, 48), cols=st.integers(1, 48), seed=st.integers(0, 2**31 - 1))
def test_five_quintic_steps_leave_singular_values_in_the_band(rows, cols, seed):
    """Every normalized singular value >= 0.002 ends in [0.6818, 1.2024], tall or wide."""
    generator = torch.Generator().manual_seed(seed)
    k = min(rows, cols)
    sigma = 1 + 49 * torch.rand(k, generator=generator, dtype=torch.float64)  # in [1, 50]
    # sigma_min / ||G||_F >= 1 / (50 sqrt(48)) > 0.002 for every shape drawn here
    G = (random_orthonormal(rows, k, generator) @ torch.diag(sigma)
         @ random_orthonormal(cols, k, generator).T)
    got = torch.linalg.svdvals(orthogonalized(G))
    low, high = got.min().item(), got.max().item()
    expect(BAND[0] - 1e-9 <= low and high <= BAND[1] + 1e-9,
           f"singular values of newton_schulz(G) for G {rows}x{cols} with singular values in "
           f"[1, 50]: expected all in [{BAND[0]}, {BAND[1]}], got [{low:.4f}, {high:.4f}]",
           hint="5 steps of X = a X + (b A + c A A) X with A = X X.T and (a, b, c) = (3.4445, "
                "-4.7750, 2.0315), after X = G / (||G||_F + eps)")


@pytest.mark.parametrize("factor", [1e-3, 1e4], ids=str)
def test_the_scale_of_G_does_not_matter(factor):
    G = randn(24, 40, seed=2)
    got = orthogonalized(factor * G, eps=1e-12)  # eps this small: only the scale is left
    hint = "divide by the Frobenius norm before iterating: then c * G gives what G gives"
    if not torch.isfinite(got).all():
        hint = "the iteration blew up on a large G: normalize BEFORE iterating, not after"
    expect_close(got, ns_oracle(G, eps=0), f"newton_schulz({factor:g} * G, eps=1e-12) against "
                 "newton_schulz(G) by the SVD", rel=1e-7, abs=1e-7, hint=hint)


class ShapesSeen(TorchFunctionMode):
    """Records the shape of every tensor that any torch operation returns."""

    def __init__(self):
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.shapes.update(tuple(t.shape) for t in tensors_in(out))
        return out


@pytest.mark.parametrize("shape", [(96, 8), (8, 96)], ids=str)
def test_the_gram_matrix_is_the_small_one(shape):
    G = randn(*shape, seed=3)
    with ShapesSeen() as seen:
        got = newton_schulz(G)
    big = max(shape)
    expect((big, big) not in seen.shapes, f"newton_schulz of a {shape[0]}x{shape[1]} matrix "
           f"made a {big}x{big} matrix: the Gram matrix should be {min(shape)}x{min(shape)}",
           hint="transpose a tall G (more rows than columns) before iterating, so that "
                "A = X @ X.T is the small square, and transpose the result back")
    orthogonalized(G)  # and the shape is right
    expect_close(got, ns_oracle(G), f"newton_schulz(G {shape})", rel=1e-7, abs=1e-7)


def test_G_is_left_as_it_was():
    G = randn(16, 8, seed=4)
    before = G.clone()
    orthogonalized(G)
    expect(torch.equal(G, before), "newton_schulz(G) changed G",
           hint="G is the momentum buffer in Muon: X = G / (norm + eps) makes a new tensor, "
                "G.div_(...) would scale the buffer itself")


def test_a_zero_matrix_gives_zeros():
    got = orthogonalized(torch.zeros(5, 3, dtype=torch.float64))
    expect(torch.equal(got, torch.zeros(5, 3, dtype=torch.float64)),
           f"newton_schulz(zeros(5, 3)) returned {got.tolist()}",
           hint="eps in the denominator, G / (||G||_F + eps), keeps 0 / 0 from making NaN")


@pytest.mark.parametrize("shape", [(7,), (2, 3, 4)], ids=str)
def test_newton_schulz_rejects_what_is_not_a_matrix(shape):
    with pytest.raises(ValueError) as info:
        newton_schulz(torch.ones(shape))
    expect("G" in str(info.value) and str(tuple(shape)) in str(info.value),
           f"newton_schulz of a tensor of shape {shape} raised ValueError({str(info.value)!r}), "
           f"which does not name G and its shape {tuple(shape)}",
           hint="e.g. f'G must be a 2-D matrix, got a tensor of shape {tuple(G.shape)}'")


# --- the shape scale ---


@pytest.mark.parametrize("shape,adjust_lr_fn,want", [
    ((64, 16), None, 2.0),  # sqrt(64 / 16)
    ((64, 16), "original", 2.0),
    ((16, 64), "original", 1.0),  # a wide matrix is not scaled down
    ((32, 32), "original", 1.0),
    ((64, 16), "match_rms_adamw", 1.6),  # 0.2 * sqrt(64)
    ((16, 64), "match_rms_adamw", 1.6),
    ((384, 1536), "match_rms_adamw", 0.2 * math.sqrt(1536)),
], ids=str)
def test_shape_scale(shape, adjust_lr_fn, want):
    got = shape_scale(torch.Size(shape), adjust_lr_fn)
    expect(type(got) is float, f"shape_scale({shape}, {adjust_lr_fn!r}) returned {got!r} "
           f"({type(got).__name__}); expected a float", hint="math.sqrt returns a float")
    hint = ("'original' (and None): sqrt(max(1, rows / cols)); 'match_rms_adamw': "
            "0.2 * sqrt(max(rows, cols)); rows = shape[0]")
    expect_close(got, want, f"shape_scale({shape}, {adjust_lr_fn!r})", rel=1e-12, hint=hint)


def test_shape_scale_rejects_an_unknown_name():
    with pytest.raises(ValueError) as info:
        shape_scale((4, 4), "spectral")
    expect("adjust_lr_fn" in str(info.value) and "spectral" in str(info.value),
           f"shape_scale((4, 4), 'spectral') raised ValueError({str(info.value)!r}), which does "
           "not name adjust_lr_fn and its value", hint="e.g. \"adjust_lr_fn must be None, "
           "'original' or 'match_rms_adamw', got 'spectral'\"")


# --- the Muon step ---

STEP_CASES = [((48, 12), True, None), ((48, 12), False, "original"),
              ((12, 48), True, "match_rms_adamw"), ((20, 20), False, "match_rms_adamw"),
              ((12, 48), True, "original")]


@pytest.mark.parametrize("shape,nesterov,adjust_lr_fn", STEP_CASES, ids=str)
def test_muon_steps_follow_the_formula(shape, nesterov, adjust_lr_fn):
    W0 = randn(*shape, seed=5)
    grads = [10 * randn(*shape, seed=10 + i) for i in range(4)]
    kwargs = dict(lr=0.05, weight_decay=0.2, momentum=0.9, nesterov=nesterov,
                  adjust_lr_fn=adjust_lr_fn)
    got = run_muon(W0, grads, **kwargs)
    forms = {form: muon_oracle(W0, grads, **kwargs, form=form) for form in ("sum", "average")}
    best = min(forms.values(), key=lambda want: (got - want).abs().max().item())

    def close(want):
        return torch.allclose(got, want, rtol=1e-6, atol=1e-6)

    hint = ("per step: B = mu B + G; O = G + mu B with nesterov, else B; "
            "W = W (1 - lr wd) - lr shape_scale(W.shape) newton_schulz(O)")
    mistakes = {
        "no Nesterov although nesterov=True: the direction is G + mu B, not B":
            dict(nesterov_used=False),
        "Nesterov although nesterov=False: the direction is B itself": dict(nesterov_used=True),
        "the shape scale went on the weight decay too: W (1 - lr wd), with the plain lr":
            dict(decay_scaled=True),
    }
    for mistake, change in mistakes.items():
        if any(close(muon_oracle(W0, grads, **kwargs, form=f, **change)) for f in forms):
            hint = mistake
    expect_close(got, best, f"W after 4 Muon steps (W {shape[0]}x{shape[1]}, lr 0.05, "
                 f"weight_decay 0.2, momentum 0.9, nesterov={nesterov}, "
                 f"adjust_lr_fn={adjust_lr_fn!r}), float64", rel=1e-6, abs=1e-6, hint=hint)


@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
def test_weight_decay_is_not_scaled_by_the_shape(adjust_lr_fn):
    W0 = randn(64, 16, seed=6)  # shape scale 2 ("original") or 1.6
    got = run_muon(W0, [torch.zeros(64, 16, dtype=torch.float64)], lr=0.1, weight_decay=0.5,
                   adjust_lr_fn=adjust_lr_fn)
    hint = "W = W * (1 - lr * weight_decay): decoupled decay with the plain lr"
    if torch.allclose(got, W0 * (1 - 0.1 * 0.5 * scale_oracle((64, 16), adjust_lr_fn))):
        hint = "the shape scale went on the weight decay: only the orthogonalized update has it"
    elif torch.allclose(got, W0):
        hint = "no weight decay: multiply W by (1 - lr * weight_decay) each step"
    expect_close(got, W0 * 0.95, f"a 64x16 matrix after one Muon step with a zero gradient, "
                 f"lr 0.1, weight_decay 0.5, adjust_lr_fn={adjust_lr_fn!r}", rel=1e-12, hint=hint)


def test_momentum_is_kept_per_parameter():
    shapes = [(8, 8), (8, 8), (6, 10)]
    W0 = [randn(*s, seed=20 + i) for i, s in enumerate(shapes)]
    grads = [[randn(*s, seed=30 + 3 * i + t) for t in range(3)] for i, s in enumerate(shapes)]
    params = [torch.nn.Parameter(w.clone()) for w in W0]
    optimizer = Muon([{"params": params[:2]}, {"params": params[2:]}], lr=0.05, momentum=0.9)
    for t in range(3):
        for p, g in zip(params, grads):
            p.grad = g[t].clone()
        optimizer.step()
    for i, p in enumerate(params):
        alone = muon_oracle(W0[i], grads[i], 0.05, 0.1, 0.9, True, None)
        expect_close(p.detach(), alone, f"parameter {i} of 3 (shape {shapes[i]}) after 3 steps "
                     "with the others, against the same steps alone", rel=1e-6, abs=1e-6,
                     hint="each parameter has its own momentum buffer: keep it in "
                          "self.state[p] (the `state` argument), never on the optimizer or "
                          "the group, where parameters would share it")


@pytest.mark.parametrize("shape,nesterov,adjust_lr_fn", [
    ((64, 32), True, "original"), ((32, 64), False, "original"),
    ((64, 32), False, "match_rms_adamw"), ((32, 64), True, "match_rms_adamw"),
], ids=str)
def test_matches_torch_optim_muon_to_bfloat16_precision(shape, nesterov, adjust_lr_fn):
    torch.manual_seed(7)
    W0 = torch.randn(*shape)
    grads = [torch.randn(*shape) for _ in range(3)]
    kwargs = dict(lr=0.02, weight_decay=0.5, momentum=0.95, nesterov=nesterov,
                  adjust_lr_fn=adjust_lr_fn)
    W = torch.nn.Parameter(W0.clone())
    reference = torch.optim.Muon([W], **kwargs)
    for G in grads:
        W.grad = G.clone()
        reference.step()
    got = run_muon(W0, grads, **kwargs)
    step = 0.02 * scale_oracle(shape, adjust_lr_fn)
    # torch.optim.Muon iterates in bfloat16 (8 bits of mantissa): over 3 steps its W differs
    # from a float32 iteration by up to 0.017 of one step's size (measured); allow 0.04.
    expect_close(got, W.detach(), f"W {shape[0]}x{shape[1]} after 3 steps against "
                 f"torch.optim.Muon(lr=0.02, weight_decay=0.5, nesterov={nesterov}, "
                 f"adjust_lr_fn={adjust_lr_fn!r}), float32", rel=0, abs=0.04 * step,
                 hint="the same formula as torch.optim.Muon: momentum, Nesterov, "
                      "newton_schulz, decay with the plain lr, the step with the shape scale")


# --- the AdamW groups ---


def test_adamw_groups_match_torch_adamw():
    torch.manual_seed(8)
    shapes = [(6, 4), (4,)]
    start = [torch.randn(*s, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(*s, dtype=torch.float64) for s in shapes] for _ in range(4)]
    mine = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    optimizer = Muon([{"params": mine, "use_muon": False}], lr=0.01, weight_decay=0.3,
                     betas=(0.8, 0.99), adamw_eps=1e-6)
    reference = torch.optim.AdamW(theirs, lr=0.01, weight_decay=0.3, betas=(0.8, 0.99),
                                  eps=1e-6)
    for step_grads in grads:
        for p, q, g in zip(mine, theirs, step_grads):
            p.grad, q.grad = g.clone(), g.clone()
        optimizer.step()
        reference.step()
    for i, (p, q) in enumerate(zip(mine, theirs)):
        expect_close(p.detach(), q.detach(), f"parameter {i} ({tuple(shapes[i])}) of a group "
                     "with use_muon=False after 4 steps, against torch.optim.AdamW(lr=0.01, "
                     "weight_decay=0.3, betas=(0.8, 0.99), eps=1e-6), float64", rel=1e-10,
                     abs=1e-12, hint="m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; "
                     "p = p (1 - lr wd); p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + "
                     "eps): decoupled decay, bias corrections with the group's own step count")


# --- the whole model: routing, resuming, training ---


def tiny_gpt(tied=True, bias=True):
    torch.manual_seed(9)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16,
                          bias=bias))
    if not tied:
        model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.detach().clone())
    return model


def where_each_parameter_went(model, optimizer):
    """{name: [(use_muon, weight_decay, lr), ...]} over every group that holds it."""
    found = {name: [] for name, _ in model.named_parameters()}
    names = {id(p): name for name, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            found.setdefault(names.get(id(p), f"<not in the model: {tuple(p.shape)}>"), []).append(
                (group["use_muon"], group["weight_decay"], group["lr"]))
    return found


def hidden_matrix(name):
    return name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))


def wanted_route(name, p, wd, lr, adamw_lr):
    if hidden_matrix(name):
        return (True, wd, lr)
    return (False, wd if p.ndim >= 2 else 0.0, adamw_lr)


def why(name, p, got, want):
    if got and got[0][0] and not want[0]:
        if "wte" in name or "wpe" in name:
            return "Muon on an embedding: embeddings (nn.Embedding) go to AdamW"
        if "lm_head" in name:
            return "Muon on the output head: lm_head goes to AdamW, tied or not"
        return "Muon takes 2-D hidden matrices only: norm gains and biases go to AdamW"
    if got and not got[0][0] and want[0]:
        return "the attention and MLP matrices (nn.Linear weights) go to Muon"
    if len(got) > 1:
        return "each parameter in one group only (named_parameters() yields a tied one once)"
    return ("Muon group: weight_decay and lr as given; AdamW: weight_decay for 2-D "
            "(embeddings, head), 0.0 for 1-D (gains, biases), lr = adamw_lr (default lr)")


@pytest.mark.parametrize("tied", [True, False], ids=["tied head", "untied head"])
def test_muon_with_adamw_routes_each_parameter(tied):
    model = tiny_gpt(tied=tied)
    optimizer = muon_with_adamw(model, lr=0.02, weight_decay=0.1, adamw_lr=0.003)
    expect(isinstance(optimizer, Muon), f"muon_with_adamw returned {type(optimizer).__name__}",
           hint="one Muon optimizer whose groups say use_muon True or False")
    found = where_each_parameter_went(model, optimizer)
    for name, p in model.named_parameters():
        want = wanted_route(name, p, 0.1, 0.02, 0.003)
        got = found.pop(name)
        expect(got == [want], f"{name} {tuple(p.shape)} ({'tied' if tied else 'untied'} head): "
               f"expected one group (use_muon, weight_decay, lr) = {want}, got {got}",
               hint=why(name, p, got, want))
    expect(not found, f"groups hold tensors that are not parameters of the model: {found}")


def test_muon_with_adamw_defaults_and_options():
    model = tiny_gpt(bias=False)
    model.transformer.wpe.weight.requires_grad_(False)
    optimizer = muon_with_adamw(model, lr=0.01, weight_decay=0.05, momentum=0.8)
    found = where_each_parameter_went(model, optimizer)
    expect(found["transformer.wpe.weight"] == [], "a frozen parameter (requires_grad False) is "
           f"in groups {found['transformer.wpe.weight']}", hint="leave frozen parameters out")
    for name, p in model.named_parameters():
        if p.requires_grad:
            want = wanted_route(name, p, 0.05, 0.01, 0.01)
            expect(found[name] == [want], f"{name}: expected (use_muon, weight_decay, lr) = "
                   f"{want}, got {found[name]}", hint="adamw_lr defaults to lr")
    for group in optimizer.param_groups:
        if group["use_muon"] and group["params"]:
            expect(group["adjust_lr_fn"] == "match_rms_adamw" and group["momentum"] == 0.8,
                   f"the Muon group: adjust_lr_fn {group['adjust_lr_fn']!r}, momentum "
                   f"{group['momentum']}", hint="adjust_lr_fn defaults to 'match_rms_adamw', so "
                   "one learning rate suits both halves; other options go to Muon(...)")


def train_steps(model, optimizer, steps, seed=0):
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx = torch.randint(11, (4, 9), generator=generator)
        _, loss = model(idx[:, :-1].contiguous(), idx[:, 1:].contiguous())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_state_dict_resumes_exactly():
    model = tiny_gpt()
    optimizer = muon_with_adamw(model, lr=0.01)
    train_steps(model, optimizer, 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    n_params = sum(1 for _ in model.parameters())
    expect(len(saved["optimizer"]["state"]) == n_params, f"optimizer.state_dict() holds state "
           f"for {len(saved['optimizer']['state'])} of {n_params} parameters after 3 steps",
           hint="keep every buffer in self.state[p] (the `state` argument), which "
                "state_dict() saves: momentum for Muon, step and moments for AdamW")
    resumed = tiny_gpt()
    resumed.load_state_dict(saved["model"])
    again = muon_with_adamw(resumed, lr=0.01)
    again.load_state_dict(saved["optimizer"])
    train_steps(model, optimizer, 2, seed=1)
    train_steps(resumed, again, 2, seed=1)
    for (name, p), q in zip(model.named_parameters(), resumed.parameters()):
        expect(torch.equal(p, q), f"{name} after 3 steps, a save and 2 more steps differs from "
               f"3 + 2 steps without the save (max difference {(p - q).abs().max().item():.3g})",
               hint="all state between steps lives in self.state[p]; nothing on self, nothing "
                    "recomputed from scratch")


def test_a_tiny_gpt_learns_with_it():
    model = tiny_gpt()
    optimizer = muon_with_adamw(model, lr=0.02, weight_decay=0.0)
    generator = torch.Generator().manual_seed(3)
    idx = torch.randint(11, (4, 9), generator=generator)
    losses = []
    for _ in range(30):  # one batch, learned by heart
        _, loss = model(idx[:, :-1].contiguous(), idx[:, 1:].contiguous())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    expect(losses[-1] < 0.5 * losses[0], f"30 Muon steps on one batch: loss {losses[0]:.3f} -> "
           f"{losses[-1]:.3f}, expected below half", hint="p.add_(update, alpha=-lr * scale): "
           "a minus sign, as in every descent step")
