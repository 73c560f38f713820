"""Specs for kata 13. Oracles: torch.nn.RMSNorm and a float64 formula for the norm; for RoPE a
second formulation through complex numbers (torch.view_as_complex, float64: pair i of a
vector is the complex number x[2i] + j·x[2i+1], and turning it is a multiplication by
e^(j·m·theta_i)), plain float64 attention written here, and the properties the lesson states
(position 0 is the identity, lengths are kept, scores depend on m − n only)."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from rope import RMSNorm, apply_rope, rope_angles, rope_attention

from harness.checks import expect, expect_close, on_meta

HINT_PAIRING = ("this kata pairs ADJACENT numbers: (x[0], x[1]), (x[2], x[3]), ... and turns "
                "pair i by m * theta_i")


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def expect_like(got, x, what):
    """The learner's output must be a tensor of x's shape before anything else is compared."""
    shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
    expect(isinstance(got, torch.Tensor) and got.shape == x.shape,
           f"{what}: expected a tensor of shape {tuple(x.shape)}, got {shape}",
           hint="the output has the input's shape: (..., T, head_dim) for RoPE and attention, "
                "(..., dim) for RMSNorm")
    return got


def rotated(x, positions, base=10000.0):
    return expect_like(apply_rope(x, positions, base=base), x,
                       f"apply_rope(x of shape {tuple(x.shape)}, positions {positions.tolist()})")


def attended(q, k, v, positions):
    return expect_like(rope_attention(q, k, v, positions), q,
                       f"rope_attention(q, k, v of shape {tuple(q.shape)})")


def normed(norm, x):
    return expect_like(norm(x), x, f"RMSNorm on x of shape {tuple(x.shape)}")


# --- oracles ---


def oracle_rmsnorm(x, weight, eps=1e-5):
    x = x.double()
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.double()


def oracle_angles(positions, head_dim, base=10000.0, exponent=2.0, offset=0):
    """float64 angles (T, head_dim // 2): (m + offset) * base ** (-exponent * i / head_dim)."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    theta = base ** (-exponent * i / head_dim)
    return (positions.double()[:, None] + offset) * theta


def complex_rope(x, angles):
    """Adjacent pairs as complex numbers, each multiplied by e^(j * angle), in float64."""
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2).contiguous())
    turned = pairs * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(turned).reshape(x.shape)


def halves_rope(x, angles):
    """The other pairing, (i, i + head_dim/2): GPT-NeoX's and Hugging Face's rotate_half."""
    x = x.double()
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def mistakes(x, positions, base):
    """What the usual wrong rotations give for x, each with the hint that fixes it."""
    head_dim, T = x.shape[-1], x.shape[-2]
    angles = oracle_angles(positions, head_dim, base)
    found = {
        "halves": (halves_rope(x, angles),
                   "you paired x[i] with x[i + head_dim/2] (the rotate_half form); "
                   f"{HINT_PAIRING} (`make hint K=13` shows both forms)"),
        "exponent": (complex_rope(x, oracle_angles(positions, head_dim, base, exponent=1.0)),
                     "theta_i = base ** (-2i / head_dim): the exponent has a 2 (i counts "
                     "pairs, 2i is the index of the pair's first number)"),
        "plus one": (complex_rope(x, oracle_angles(positions, head_dim, base, offset=1)),
                     "the token at position m turns by m * theta_i: position 0 is not turned "
                     "at all (do not count positions from 1)"),
        "clockwise": (complex_rope(x, -angles),
                      "you turned the other way: (a, b) -> (a cos - b sin, a sin + b cos)"),
        "not rotated": (x.double(), "x came back unchanged: turn every pair"),
        "from zero": (complex_rope(x, oracle_angles(torch.arange(T), head_dim, base)),
                      "use the positions you are given, not torch.arange(T): with a KV cache "
                      "the new tokens sit at positions start .. start + T - 1"),
    }
    if base != 10000.0:
        found["base"] = (complex_rope(x, oracle_angles(positions, head_dim)),
                         f"use the base you are given ({base}), not 10000")
    return found


def expect_rotation(got, x, positions, base, what, tol=1e-4):
    """got must equal the complex-number oracle; name the mistake when it is a known one."""
    want = complex_rope(x, oracle_angles(positions, x.shape[-1], base))
    expect(isinstance(got, torch.Tensor) and got.shape == x.shape,
           f"{what}: expected a tensor of shape {tuple(x.shape)}, got "
           f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}",
           hint="apply_rope returns x's shape: (..., T, head_dim)")
    hint = HINT_PAIRING + "; theta_i = base ** (-2i / head_dim), angle m * theta_i"
    if not torch.allclose(got.double(), want, rtol=tol, atol=tol):
        for wrong, fix in mistakes(x, positions, base).values():
            if torch.allclose(got.double(), wrong, rtol=tol, atol=tol):
                hint = fix
                break
    expect_close(got, want, what, hint=hint, rel=tol, abs=tol)


# --- RMSNorm ---


def test_rmsnorm_gain_is_a_learnable_parameter_starting_at_one():
    norm = RMSNorm(6)
    params = dict(norm.named_parameters())
    expect(list(params) == ["weight"],
           f"RMSNorm(6) has the parameters {list(params)}; expected exactly ['weight']",
           hint="one learned gain self.weight = nn.Parameter(torch.ones(dim)); RMSNorm has no "
                "bias (that is one of the savings over LayerNorm)")
    weight = params["weight"]
    expect(tuple(weight.shape) == (6,) and weight.requires_grad,
           f"RMSNorm(6).weight has shape {tuple(weight.shape)}, requires_grad="
           f"{weight.requires_grad}; expected (6,) and True")
    expect_close(weight, [1.0] * 6, "RMSNorm(6).weight at initialisation",
                 hint="the gain starts at 1, so a fresh RMSNorm only normalises")


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 16), (64,)], ids=str)
def test_rmsnorm_matches_torch_rmsnorm(shape):
    x = randn(*shape, seed=1) * 2 + 0.5  # a non-zero mean: centring would show
    norm = RMSNorm(shape[-1]).double()
    with torch.no_grad():
        norm.weight.copy_(randn(shape[-1], seed=2) * 0.5 + 1)
    oracle = nn.RMSNorm(shape[-1], eps=1e-5).double()
    with torch.no_grad():
        oracle.weight.copy_(norm.weight)
        got, want = normed(norm, x), oracle(x)
    hint = "y = x / sqrt(mean(x**2, last dim) + eps) * weight"
    x64, w = x.double(), norm.weight.detach().double()
    centred = x64 - x64.mean(-1, keepdim=True)
    wrong = [
        (centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + 1e-5) * w,
         "you subtracted the mean: that is LayerNorm. RMSNorm divides x itself by its root "
         "mean square, with no centring"),
        *[(x64 / x64.std(-1, keepdim=True, correction=c) * w,
           "you divided by the standard deviation (x.std()); RMSNorm divides by "
           "sqrt(mean(x**2) + eps), with no mean taken away") for c in (0, 1)],
        (x64 / x64.abs().mean(-1, keepdim=True) * w,
         "you divided by mean(|x|); the root mean square is sqrt(mean(x**2))"),
        (oracle_rmsnorm(x, torch.ones(shape[-1])),
         "the gain self.weight is not applied: multiply the normalised x by it"),
    ]
    for candidate, fix in wrong:
        if got.shape == candidate.shape and torch.allclose(got.double(), candidate, atol=1e-4):
            hint = fix
            break
    expect_close(got, want, f"RMSNorm({shape[-1]}) on x of shape {shape}, float64, random gain, "
                 "against torch.nn.RMSNorm", hint=hint, rel=1e-9, abs=1e-12)


def test_rmsnorm_eps_goes_inside_the_square_root():
    x = torch.full((1, 4), 1e-3, dtype=torch.float64)  # mean(x²) = 1e-6, tiny beside eps
    got = normed(RMSNorm(4).double(), x)
    want = 1e-3 / math.sqrt(1e-6 + 1e-5)
    hint = "x / sqrt(mean(x**2) + eps): eps is added under the root, eps = 1e-5 by default"
    if torch.allclose(got, torch.ones_like(got), atol=1e-3):
        hint = "without eps a tiny x is blown up to 1 (and an all-zero x divides by zero); " + hint
    expect_close(got, [want] * 4, "RMSNorm(4) of x = [0.001] * 4", hint=hint, rel=1e-6)
    got = normed(RMSNorm(4, eps=0.5).double(), x)
    expect_close(got, [1e-3 / math.sqrt(1e-6 + 0.5)] * 4, "RMSNorm(4, eps=0.5) of [0.001] * 4",
                 hint="use the eps you are given (self.eps = eps)", rel=1e-6)
    zeros = normed(RMSNorm(4), torch.zeros(2, 4))
    expect(bool(torch.isfinite(zeros).all()), f"RMSNorm of zeros gave {zeros.tolist()}",
           hint="eps under the root keeps an all-zero row finite")


def test_rmsnorm_gain_learns():
    x = randn(3, 5, seed=3)
    norm = RMSNorm(5).double()
    g = randn(3, 5, seed=4)
    (normed(norm, x) * g).sum().backward()
    grad = norm.weight.grad
    expect(grad is not None, "RMSNorm.weight.grad is None after backward",
           hint="use self.weight in forward (an nn.Parameter), not a copy or a plain tensor")
    want = (oracle_rmsnorm(x, torch.ones(5)) * g).sum(0)
    expect_close(grad, want, "d(sum(RMSNorm(x) * g)) / d weight", rel=1e-9, abs=1e-12,
                 hint="the gain multiplies the normalised x elementwise: its gradient is "
                      "sum over rows of g * x / rms(x)")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_rmsnorm_computes_in_float32_for_half_precision_input(dtype):
    # Values in the hundreds: x² passes fp16's largest number (65504) in the first row.
    x = torch.cat([randn(1, 256, seed=5) * 400, randn(31, 256, seed=6) * 3]).to(dtype)
    got = normed(RMSNorm(256), x)
    expect(got.dtype == dtype, f"RMSNorm(256) of a {dtype} input returned {got.dtype}",
           hint="return the input's dtype: compute in float32, then .to(x.dtype) at the end")
    want = oracle_rmsnorm(x, torch.ones(256)).to(dtype)
    hint = ("compute mean(x**2) and the division in float32 (x.float()), then cast back: in "
            "half precision x**2 overflows (fp16 tops out at 65504) and the rounding of every "
            "step adds up")
    expect(bool(torch.isfinite(got).all()),
           f"RMSNorm(256) of a {dtype} input with values near 1000 returned "
           f"{int((~torch.isfinite(got)).sum())} non-finite numbers", hint=hint)
    matches = (got == want).double().mean().item()
    expect(matches > 0.97,
           f"RMSNorm(256) on {dtype} input: expected the float64 result rounded to {dtype} "
           f"(all but rare ties), got it for {matches:.1%} of the numbers", hint=hint)


@pytest.mark.parametrize("weights", ["float32", "same"], ids=["float32 gain", "gain in x's dtype"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_rmsnorm_multiplies_the_gain_in_float32_and_rounds_once(dtype, weights):
    # A gain that is not 1: normalise and multiply by the gain in float32, then round to the
    # input's dtype once. Rounding the normalised x first and multiplying after rounds twice.
    norm = RMSNorm(256)
    with torch.no_grad():
        norm.weight.copy_(0.5 + 1.5 * torch.rand(256, generator=torch.Generator().manual_seed(7)))
    if weights == "same":
        norm = norm.to(dtype)
    x = (randn(32, 256, seed=8) * 3).to(dtype)
    got = normed(norm, x)
    expect(got.dtype == dtype, f"RMSNorm(256) ({weights} gain) of a {dtype} input returned "
           f"{got.dtype}", hint="return x's dtype: .to(x.dtype) once, at the very end")
    want = oracle_rmsnorm(x, norm.weight.detach()).to(dtype)
    matches = (got == want).double().mean().item()
    expect(matches > 0.97,
           f"RMSNorm(256) with a random gain ({weights}) on {dtype} input: expected the float64 "
           f"result rounded to {dtype} (all but rare ties), got it for {matches:.1%} of the "
           "numbers", hint="multiply by the gain in float32 too, (x_f32 * rsqrt(...) * "
                           "weight.float()).to(x.dtype): casting before the gain rounds twice")


# --- rope_angles ---


@pytest.mark.parametrize("head_dim,base", [(8, 10000.0), (16, 500.0)])
def test_rope_angles(head_dim, base):
    positions = torch.tensor([0, 1, 2, 7, 100])
    got = rope_angles(positions, head_dim, base)
    want = oracle_angles(positions, head_dim, base)
    expect(isinstance(got, torch.Tensor) and tuple(got.shape) == (5, head_dim // 2),
           f"rope_angles(positions of shape (5,), head_dim={head_dim}): expected shape "
           f"(5, {head_dim // 2}), got "
           f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}",
           hint="one row per position, one column per pair (head_dim // 2)")
    hint = "angle[m, i] = m * base ** (-2i / head_dim), i = 0 .. head_dim/2 - 1"
    if torch.allclose(got.double(), oracle_angles(positions, head_dim, base, 1.0), rtol=1e-5):
        hint = "theta_i = base ** (-2i / head_dim): you wrote -i / head_dim; " + hint
    elif torch.allclose(got.double(), oracle_angles(positions, head_dim, base, offset=1),
                        rtol=1e-5):
        hint = "position m has angle m * theta_i (position 0: angle 0), not (m + 1) * theta_i"
    expect_close(got, want, f"rope_angles({positions.tolist()}, head_dim={head_dim}, "
                 f"base={base})", hint=hint, rel=1e-5, abs=1e-7)


def test_rope_angles_are_computed_in_the_dtype_asked_for():
    positions = torch.tensor([0, 1, 999, 54321, 100_000])
    got = rope_angles(positions, 64, 10000.0, dtype=torch.float64)
    expect(isinstance(got, torch.Tensor) and got.dtype == torch.float64,
           f"rope_angles(..., dtype=torch.float64) returned "
           f"{got.dtype if isinstance(got, torch.Tensor) else type(got).__name__}",
           hint="build i with torch.arange(head_dim // 2, dtype=dtype) and turn positions "
                "into dtype before multiplying")
    expect_close(got, oracle_angles(positions, 64), "rope_angles(positions up to 100,000, "
                 "head_dim=64, dtype=torch.float64) against float64 angles", rel=1e-12, abs=1e-12,
                 hint="every step in `dtype`: an arange or a theta left in float32 rounds "
                      "100,000 * theta_i at the 7th digit")


def test_the_default_base_is_10000():
    positions = torch.tensor([0, 3, 250, 1000])
    expect_close(rope_angles(positions, 64, dtype=torch.float64), oracle_angles(positions, 64),
                 "rope_angles(positions, 64, dtype=torch.float64) with the default base",
                 rel=1e-12, abs=1e-12, hint="the default is base=10000.0, as in RoFormer")
    x = randn(2, 4, 64, seed=21)
    expect_close(apply_rope(x, positions), apply_rope(x, positions, base=10000.0),
                 "apply_rope(x, positions) against apply_rope(x, positions, base=10000.0)",
                 rel=1e-9, abs=1e-9, hint="the default is base=10000.0")
    q, k, v = (randn(1, 4, 64, seed=s) for s in (22, 23, 24))
    expect_close(rope_attention(q, k, v, positions),
                 rope_attention(q, k, v, positions, base=10000.0),
                 "rope_attention(q, k, v, positions) against the same with base=10000.0",
                 rel=1e-9, abs=1e-9, hint="the default is base=10000.0")


def test_rope_follows_positions_to_their_device():
    positions = torch.arange(5, device="meta")  # the meta device stands in for a GPU
    hint = ("make every new tensor on the device of the tensors you were given, e.g. "
            "torch.arange(head_dim // 2, dtype=dtype, device=positions.device); otherwise "
            "training on a GPU fails")
    for what, call in (
        ("rope_angles(positions on 'meta', 8)", lambda: rope_angles(positions, 8)),
        ("apply_rope(x and positions on 'meta')",
         lambda: apply_rope(torch.zeros(2, 5, 8, device="meta"), positions)),
    ):
        on_meta(what, call, hint)


def test_rope_angles_rejects_an_odd_head_dim():
    with pytest.raises(ValueError, match="head_dim"):
        rope_angles(torch.arange(3), 7)


# --- apply_rope ---


@pytest.mark.parametrize("positions,base", [
    ([0, 1, 2, 3, 4, 5], 10000.0),
    ([9, 0, 17, 3, 250, 1], 10000.0),
    ([0, 1, 2, 3, 4, 5], 100.0),
], ids=["0..5", "any order", "base 100"])
def test_apply_rope_agrees_with_complex_numbers(positions, base):
    x = randn(2, 3, 6, 8, seed=7)  # (batch, heads, T, head_dim)
    positions = torch.tensor(positions)
    got = rotated(x, positions, base=base)
    expect_rotation(got, x, positions, base,
                    f"apply_rope(x of shape (2, 3, 6, 8), positions={positions.tolist()}, "
                    f"base={base}) against a float64 rotation through complex numbers")


def test_position_zero_is_the_identity():
    x = randn(4, 3, 10, seed=8)
    got = rotated(x, torch.zeros(3, dtype=torch.long))
    hint = "at position 0 every angle is 0: cos 1, sin 0, nothing turns"
    if torch.allclose(got, complex_rope(x, oracle_angles(torch.zeros(3), 10, offset=1))):
        hint = "you turned position 0 by theta_i: count positions from 0, not 1"
    elif torch.allclose(got, complex_rope(x, oracle_angles(torch.arange(3), 10))):
        hint = "you turned the tokens to 0, 1, 2: use the positions you are given (all 0 here)"
    expect_close(got, x, "apply_rope(x, positions=[0, 0, 0])", hint=hint, rel=1e-6, abs=1e-9)


@given(m=st.integers(0, 4096), head_dim=st.sampled_from([2, 4, 8, 64]),
       seed=st.integers(0, 100))
def test_rotation_keeps_the_length_of_every_pair(m, head_dim, seed):
    x = randn(1, head_dim, seed=seed)
    got = rotated(x, torch.tensor([m])).double()
    pair_norms = got.reshape(-1, 2).norm(dim=-1)
    want = x.reshape(-1, 2).norm(dim=-1)
    expect_close(pair_norms, want, f"lengths of the pairs (2i, 2i+1) after turning to position "
                 f"{m} (head_dim={head_dim})", rel=1e-5, abs=1e-6,
                 hint="a rotation keeps lengths: pair i becomes (a cos - b sin, a sin + b cos) "
                      "with the same angle in both lines; " + HINT_PAIRING)


@given(m=st.integers(0, 2048), n=st.integers(0, 2048), shift=st.integers(-2048, 2048),
       seed=st.integers(0, 100))
def test_scores_depend_only_on_the_distance(m, n, shift, seed):
    shift = max(shift, -min(m, n))  # positions stay >= 0
    q, k = randn(2, 16, seed=seed).unbind(0)

    def score(i, j):
        rotated_q = rotated(q[None], torch.tensor([i]))[0].double()
        rotated_k = rotated(k[None], torch.tensor([j]))[0].double()
        return (rotated_q @ rotated_k).item()

    # float32 angles near position 4096 are good to ~2.5e-4 radians; a real mistake is O(1).
    expect_close(score(m + shift, n + shift), score(m, n),
                 f"q·k for positions ({m + shift}, {n + shift}) against ({m}, {n}) (same "
                 f"distance {m - n})", rel=1e-3, abs=1e-3 * float(q.norm() * k.norm()),
                 hint="turn q and k by the same rule (apply_rope at their own positions); the "
                      "angle must be m * theta_i, linear in the position")


def test_new_tokens_with_a_kv_cache_are_turned_at_their_absolute_positions():
    x = randn(2, 2, 12, 8, seed=9)
    full = rotated(x, torch.arange(12))
    for start, T in [(5, 1), (11, 1), (4, 3)]:
        part = x[:, :, start:start + T]
        got = rotated(part, torch.arange(start, start + T))
        hint = ("apply_rope(x[..., s:s+T, :], arange(s, s+T)) equals the same rows of the "
                "full sequence's rotation")
        if torch.allclose(got.double(), complex_rope(part, oracle_angles(torch.arange(T), 8)),
                          atol=1e-6):
            hint = ("the new tokens were turned as if they sat at 0 .. T-1: use the positions "
                    "you are given, not torch.arange(T)")
        expect_close(got, full[:, :, start:start + T],
                     f"apply_rope of the {T} token(s) at positions {start}..{start + T - 1} "
                     "against those rows of apply_rope on all 12", hint=hint, rel=1e-6, abs=1e-7)


def test_positions_past_any_block_size():
    x = randn(3, 32, seed=10)
    positions = torch.tensor([1000, 4096, 5000])
    expect_rotation(rotated(x, positions), x, positions, 10000.0,
                    "apply_rope at positions [1000, 4096, 5000] (there is no position table)",
                    tol=2e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_apply_rope_keeps_dtype_and_turns_accurately(dtype):
    x = randn(2, 4, 64, seed=11).to(dtype)
    positions = torch.tensor([3, 700, 2000, 4000])
    got = rotated(x, positions)
    expect(got.dtype == dtype, f"apply_rope of a {dtype} x returned {got.dtype}",
           hint="return x's dtype (.to(x.dtype) at the end); compute the angles in float32")
    tol = {torch.float32: 1e-3, torch.bfloat16: 2e-2, torch.float16: 4e-3}[dtype]
    want = complex_rope(x, oracle_angles(positions, 64))
    hint = ("compute m * theta_i, cos and sin in float32 at least: bf16 keeps 8 bits, so the "
            "angle 4000 * theta_0 would be off by up to 8 radians")
    in_float32 = rotated(x.double().float(), positions).double()
    if not torch.allclose(in_float32, want, atol=1e-3):
        hint = ("the rotation is wrong in float32 as well: make "
                "test_apply_rope_agrees_with_complex_numbers pass first")
    expect_close(got.double(), want, f"apply_rope of a {dtype} x at positions 3 .. 4000",
                 rel=tol, abs=tol, hint=hint)


def test_apply_rope_leaves_x_untouched_and_passes_gradients():
    x = randn(2, 5, 6, seed=12).requires_grad_()
    before = x.detach().clone()
    out = rotated(x, torch.arange(5))
    expect(torch.equal(x.detach(), before), "apply_rope changed the x it was given",
           hint="build a new tensor (torch.stack / torch.cat), do not write into x in place")
    g = randn(2, 5, 6, seed=13)
    (out.double() * g).sum().backward()
    expect(x.grad is not None, "no gradient reached x through apply_rope",
           hint="stay in torch (no .detach(), .numpy() or torch.no_grad()): q and k are learned")
    # The gradient of a rotation is the rotation the other way.
    want = complex_rope(g, -oracle_angles(torch.arange(5), 6))
    expect_close(x.grad, want, "d(sum(apply_rope(x) * g)) / dx", rel=1e-5, abs=1e-7,
                 hint="the gradient of a turn by +angle is a turn by -angle; a gradient that "
                      "differs means the forward is not a rotation of each pair")


@pytest.mark.parametrize("positions", [torch.arange(4), torch.arange(5)[None, :],
                                       torch.arange(10).view(2, 5), torch.tensor(3)],
                         ids=["(4,) for T=5", "(1, 5)", "(2, 5)", "a 0-d tensor"])
def test_apply_rope_rejects_positions_that_are_not_T(positions):
    with pytest.raises(ValueError) as info:
        apply_rope(randn(2, 5, 8), positions)
    shape = tuple(positions.shape)
    expect("positions" in str(info.value) and (str(shape) in str(info.value)
                                               or str(list(shape)) in str(info.value)),
           f"apply_rope(x of shape (2, 5, 8), positions of shape {shape}) raised ValueError("
           f"{str(info.value)!r}), which does not name positions and give its shape",
           hint="positions must be one number per token: shape (T,) = (5,), exactly 1-D (check "
                "positions.dim() == 1, not only its last size); e.g. 'positions must be (T,) = "
                "(5,), got shape (1, 5)'")


def test_apply_rope_rejects_x_without_a_time_axis():
    with pytest.raises(ValueError) as info:
        apply_rope(randn(8), torch.arange(1))
    expect("8" in str(info.value), f"apply_rope(x of shape (8,)) raised "
           f"ValueError({str(info.value)!r}), which does not give x's shape",
           hint="e.g. 'x must be (..., T, head_dim), got shape (8,)'")


# --- rope_attention: queries and keys are turned, values are not ---


def oracle_attention(q, k, v, positions, rotate_values=False, base=10000.0):
    angles = oracle_angles(positions, q.shape[-1], base)
    q, k = complex_rope(q, angles), complex_rope(k, angles)
    v = complex_rope(v, angles) if rotate_values else v.double()
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return F.softmax(scores, dim=-1) @ v


def test_rope_attention_turns_queries_and_keys_but_not_values():
    q, k, v = (randn(2, 2, 7, 8, seed=s) for s in (14, 15, 16))
    positions = torch.arange(3, 10)
    got = attended(q, k, v, positions)
    hint = ("turn q and k with apply_rope at `positions`, then causal scaled dot-product "
            "attention (F.scaled_dot_product_attention(q, k, v, is_causal=True))")
    if torch.allclose(got.double(), oracle_attention(q, k, v, positions, True), atol=1e-6):
        hint = ("you turned the values too: RoPE encodes positions in the SCORES q·k; the "
                "values v are what attention averages, and stay as they are")
    expect_close(got, oracle_attention(q, k, v, positions),
                 "rope_attention(q, k, v, positions 3..9) against float64 attention",
                 hint=hint, rel=1e-5, abs=1e-6)  # float32 angles are fine
    got = rope_attention(q, k, v, positions, base=100.0)
    expect_close(got, oracle_attention(q, k, v, positions, base=100.0),
                 "rope_attention(q, k, v, positions 3..9, base=100.0) against float64 attention",
                 hint="pass base on to apply_rope for both q and k", rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_rope_attention_returns_the_dtype_of_q(dtype):
    q, k, v = (randn(2, 6, 8, seed=s).to(dtype) for s in (20, 21, 22))
    got = attended(q, k, v, torch.arange(6))
    expect(got.dtype == dtype, f"rope_attention of {dtype} q, k, v returned {got.dtype}",
           hint="apply_rope hands back x's dtype; attend in it, so the output has q's dtype "
                "(compute inside in float32 if you like, then cast back)")
    tolerance = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 5e-2}[dtype]
    expect_close(got.double(), oracle_attention(q, k, v, torch.arange(6)),
                 f"rope_attention of {dtype} q, k, v against float64 attention", rel=tolerance,
                 abs=tolerance, hint="turn q and k at `positions`, then causal attention")


@given(shift=st.integers(1, 3000))
def test_rope_attention_sees_only_relative_positions(shift):
    q, k, v = (randn(1, 5, 8, seed=s) for s in (17, 18, 19))
    at_zero = attended(q, k, v, torch.arange(5))
    shifted = attended(q, k, v, torch.arange(shift, shift + 5))
    expect_close(shifted, at_zero,
                 f"rope_attention with every position moved by {shift} against positions 0..4",
                 rel=1e-3, abs=1e-3,
                 hint="moving every token by the same amount leaves each q·k, and so the "
                      "output, unchanged, unless the values were turned as well: turn q and "
                      "k only")
