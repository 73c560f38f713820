"""Specs for kata 14. Oracles: torch's F.silu and the closed-form derivative of SiLU in
float64; the SwiGLU output and every gradient worked out by hand below (plain matrix products,
no autograd); parameter counts and hidden widths worked out by hand (d = 384: h = 1024)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from swiglu import SwiGLU, silu, swiglu_hidden

from harness.checks import expect, expect_close


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def expect_like(got, x, what):
    """The learner's output must be a tensor of x's shape before anything else is compared."""
    shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
    expect(isinstance(got, torch.Tensor) and got.shape == x.shape,
           f"{what}: expected a tensor of shape {tuple(x.shape)}, got {shape}",
           hint="silu is elementwise and SwiGLU maps (..., n_embd) to (..., n_embd)")
    return got


def activated(x):
    return expect_like(silu(x), x, f"silu of a tensor of shape {tuple(x.shape)}")


def run(mlp, x):
    return expect_like(mlp(x), x, f"SwiGLU on x of shape {tuple(x.shape)}")


def sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def silu_derivative(x):
    """d/dx x·σ(x) = σ(x) + x·σ(x)(1 − σ(x)), by the product rule."""
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


# --- SiLU ---


@given(values=st.lists(st.floats(-60, 60, allow_nan=False), min_size=1, max_size=20))
def test_silu_matches_torch_in_float64(values):
    x = torch.tensor(values, dtype=torch.float64)
    got = activated(x)
    expect(isinstance(got, torch.Tensor) and got.dtype == torch.float64,
           f"silu of a float64 tensor returned "
           f"{got.dtype if isinstance(got, torch.Tensor) else type(got).__name__}",
           hint="x * torch.sigmoid(x) keeps x's dtype")
    hint = "silu(x) = x * sigmoid(x)"
    if torch.allclose(got, F.gelu(x), atol=1e-9):
        hint = "that is GELU, x * Phi(x) with the normal CDF; SiLU uses the logistic sigmoid"
    elif torch.allclose(got, torch.sigmoid(x), atol=1e-9):
        hint = "that is the sigmoid alone: SiLU multiplies it by x"
    expect_close(got, F.silu(x), f"silu({values[:4]}...)", hint=hint, rel=1e-12, abs=1e-300)


def test_silu_stays_finite_far_out_and_keeps_dtype():
    x = torch.tensor([-1000.0, -100.0, 0.0, 100.0, 1000.0])
    got = activated(x)
    expect_close(got, [0.0, -100 * math.exp(-100), 0.0, 100.0, 1000.0],
                 "silu([-1000, -100, 0, 100, 1000]) in float32", rel=1e-5, abs=1e-30,
                 hint="silu(x) = x * torch.sigmoid(x); torch.sigmoid is safe at any x, while "
                      "exp(-x) written by hand overflows to inf for very negative x")
    for dtype in (torch.bfloat16, torch.float16):
        expect(activated(x.to(dtype)).dtype == dtype, f"silu of a {dtype} tensor changed its dtype")


def test_silu_gradient_is_the_product_rule():
    x = torch.linspace(-8, 8, 33, dtype=torch.float64, requires_grad=True)
    activated(x).sum().backward()
    expect(x.grad is not None, "no gradient reached x through silu",
           hint="stay in torch (no .detach(), .item(), numpy)")
    expect_close(x.grad, silu_derivative(x.detach()),
                 "d silu(x) / dx at -8 .. 8 against sigmoid(x) * (1 + x * (1 - sigmoid(x)))",
                 rel=1e-10, abs=1e-12,
                 hint="silu(x) = x * torch.sigmoid(x) gives autograd the right derivative")


# --- the hidden width ---


@pytest.mark.parametrize("n_embd,multiple_of,want", [
    (384, 64, 1024),  # 8 * 384 / 3 = 1024 exactly: parity to the parameter
    (128, 64, 384),  # 341.3 -> 384
    (256, 64, 704),  # 682.7 -> 704
    (768, 64, 2048),  # 2048 exactly
    (4096, 256, 11008),  # LLaMA 7B: 10922.7 -> 11008
    (10, 1, 27),  # 26.7 -> 27
])
def test_swiglu_hidden_examples(n_embd, multiple_of, want):
    got = swiglu_hidden(n_embd, multiple_of)
    exact = 8 * n_embd / 3
    hint = (f"8 * {n_embd} / 3 = {exact:.1f}, rounded UP to a multiple of {multiple_of}: "
            "multiple_of * ceil(8 * n_embd / (3 * multiple_of))")
    if got == multiple_of * math.floor(exact / multiple_of):
        # Here the nearest multiple is the lower one too: 256 (682.7 -> 704 up, 640 down)
        # tells rounding to the nearest from rounding down.
        try:
            nearest = swiglu_hidden(256, 64) == 704
        except Exception:
            nearest = False
        hint = ("you rounded to the nearest multiple (here the lower one): round UP, so SwiGLU "
                "never has fewer parameters than GELU; " if nearest else
                "you rounded down: round UP, so SwiGLU never has fewer parameters than GELU; "
                ) + hint
    elif got == multiple_of * round(exact / multiple_of):
        hint = "you rounded to the nearest multiple: round UP; " + hint
    expect(isinstance(got, int) and not isinstance(got, bool),
           f"swiglu_hidden({n_embd}, {multiple_of}) returned {got!r} ({type(got).__name__}); "
           "expected an int", hint="a Linear layer's width is an int: use integer arithmetic")
    expect(got == want, f"swiglu_hidden({n_embd}, {multiple_of}):\n  expected {want}\n  got      "
           f"{got}", hint=hint)


@given(n_embd=st.integers(1, 5000), multiple_of=st.sampled_from([1, 8, 32, 64, 100, 256]))
def test_swiglu_hidden_is_the_smallest_multiple_at_or_above_8d_over_3(n_embd, multiple_of):
    got = swiglu_hidden(n_embd, multiple_of)
    # In integers: 3 * h >= 8 * d, and one multiple fewer would fall short.
    expect(got % multiple_of == 0 and 3 * got >= 8 * n_embd > 3 * (got - multiple_of),
           f"swiglu_hidden({n_embd}, {multiple_of}) = {got}: expected the smallest multiple of "
           f"{multiple_of} that is >= 8 * {n_embd} / 3 = {8 * n_embd / 3:.2f}",
           hint="-(-8 * n_embd // (3 * multiple_of)) * multiple_of rounds up without floats")


@pytest.mark.parametrize("args", [(0,), (-4,), (384, 0), (2.5,), (384, 6.4), (True,),
                                  (384, True)], ids=str)
def test_swiglu_hidden_rejects_bad_sizes(args):
    with pytest.raises(ValueError) as info:
        swiglu_hidden(*args)
    bad, name = args[-1], "n_embd" if len(args) == 1 else "multiple_of"
    expect(str(bad) in str(info.value) and name in str(info.value), f"swiglu_hidden{args} "
           f"raised ValueError({str(info.value)!r}), which does not name {name} and its value "
           f"{bad!r}", hint="e.g. 'multiple_of must be a positive int, got 6.4'; a bool is "
                            "not a size (isinstance(True, int) is True: test for bool first)")


# --- the module: names, sizes, parameter parity ---


def test_three_linear_layers_without_bias():
    got = {name: tuple(t.shape) for name, t in SwiGLU(384).state_dict().items()}
    want = {"w1.weight": (1024, 384), "w3.weight": (1024, 384), "w2.weight": (384, 1024)}
    expect(got == want, f"SwiGLU(384).state_dict():\n  expected {want}\n  got      {got}",
           hint="w1 and w3: nn.Linear(n_embd, hidden, bias=False); w2: nn.Linear(hidden, "
                "n_embd, bias=False); hidden = swiglu_hidden(n_embd) when not given")
    got = {name: tuple(t.shape) for name, t in SwiGLU(16, hidden=40).state_dict().items()}
    want = {"w1.weight": (40, 16), "w3.weight": (40, 16), "w2.weight": (16, 40)}
    expect(got == want, f"SwiGLU(16, hidden=40).state_dict():\n  expected {want}\n  got      "
           f"{got}", hint="use the hidden width you are given")


@pytest.mark.parametrize("n_embd,swiglu_params", [
    (384, 1_179_648),  # h = 1024: exactly the GELU MLP's 2 * 384 * 1536 = 1,179,648
    (128, 147_456),  # h = 384: GELU has 131,072 (+12.5%, the price of rounding up at small d)
    (256, 540_672),  # h = 704: GELU has 524,288 (+3.1%)
    (768, 4_718_592),  # h = 2048: GELU has 4,718,592
])
def test_parameter_parity_with_the_gelu_mlp(n_embd, swiglu_params):
    got = sum(p.numel() for p in SwiGLU(n_embd).parameters())
    gelu_params = 2 * n_embd * 4 * n_embd  # c_fc and c_proj of kata 09's MLP, no biases
    expect(got == swiglu_params,
           f"SwiGLU({n_embd}) has {got:,} parameters; expected {swiglu_params:,} (three "
           f"{n_embd} x {swiglu_params // (3 * n_embd)} matrices; the GELU MLP has "
           f"{gelu_params:,})",
           hint="hidden = swiglu_hidden(n_embd): 8 * n_embd / 3 rounded up to a multiple of 64, "
                "so that three matrices hold about what GELU's two of n_embd x 4 n_embd do")


# --- the forward pass and its gradients, against a formula written out here ---


def random_swiglu(n_embd=6, hidden=10, seed=0):
    torch.manual_seed(seed)
    mlp = SwiGLU(n_embd, hidden=hidden).double()
    with torch.no_grad():
        for i, p in enumerate(mlp.parameters()):  # a different matrix for each layer
            p.copy_(randn(*p.shape, seed=100 * seed + i) * 0.7)
    return mlp


def weights_of(mlp):
    params = dict(mlp.named_parameters())
    missing = sorted({"w1.weight", "w2.weight", "w3.weight"} - set(params))
    expect(not missing, f"SwiGLU has no parameter(s) {missing}; it has {sorted(params)}",
           hint="name the layers w1 (gate), w3 (up) and w2 (down)")
    return (params[f"w{i}.weight"].detach() for i in (1, 2, 3))


def oracle_forward(x, w1, w2, w3, gate=F.silu, on="w1"):
    a, b = x @ w1.T, x @ w3.T
    if on == "w3":
        a, b = b, a
    return (gate(a) * b) @ w2.T


def test_forward_is_w2_of_silu_gate_times_up():
    mlp = random_swiglu()
    x = randn(3, 4, 6, seed=1)
    w1, w2, w3 = weights_of(mlp)
    got = run(mlp, x)
    want = oracle_forward(x, w1, w2, w3)
    wrong = [
        (oracle_forward(x, w1, w2, w3, gate=F.gelu),
         "your gate is GELU: SwiGLU puts SiLU (x * sigmoid(x)) on the gate"),
        (oracle_forward(x, w1, w2, w3, on="w3"),
         "SiLU went on the up branch w3(x): the gate is w1, so silu(w1(x)) * w3(x)"),
        ((F.silu(x @ w1.T)) @ w2.T,
         "there is no gate: multiply silu(w1(x)) by the up projection w3(x) before w2"),
        (((x @ w1.T) * (x @ w3.T)) @ w2.T,
         "you left out SiLU: the gate is silu(w1(x))"),
    ]
    hint = "out = w2(silu(w1(x)) * w3(x))"
    if any(name.endswith("bias") for name, _ in mlp.named_parameters()):
        wrong = [(got, "SwiGLU has no biases: bias=False on w1, w3 and w2")]
    elif not torch.allclose(activated(x), F.silu(x), atol=1e-9):
        wrong = [(got, "your silu is wrong: make the silu specs pass first")]
    for candidate, fix in wrong:
        if got.shape == candidate.shape and torch.allclose(got, candidate, atol=1e-9):
            hint = fix
            break
    expect_close(got, want, "SwiGLU(6, hidden=10) on x of shape (3, 4, 6), float64",
                 hint=hint, rel=1e-10, abs=1e-12)


def test_gradients_match_the_chain_rule_by_hand():
    mlp = random_swiglu(seed=2)
    x = randn(5, 6, seed=3).requires_grad_()
    g = randn(5, 6, seed=4)  # the upstream gradient dL/dout
    (run(mlp, x) * g).sum().backward()
    w1, w2, w3 = weights_of(mlp)
    x0 = x.detach()
    a, b = x0 @ w1.T, x0 @ w3.T  # gate and up, before the product
    s = a * sigmoid(a)  # silu(a)
    dh = g @ w2  # dL/d(s * b)
    da, db = dh * b * silu_derivative(a), dh * s
    want = {"x": da @ w1 + db @ w3, "w1": da.T @ x0, "w3": db.T @ x0, "w2": g.T @ (s * b)}
    params = dict(mlp.named_parameters())
    got = {"x": x.grad, "w1": params["w1.weight"].grad, "w3": params["w3.weight"].grad,
           "w2": params["w2.weight"].grad}
    for name in ("w2", "w1", "w3", "x"):
        expect(got[name] is not None, f"no gradient reached {name}",
               hint="use the layers in forward and stay in torch (no .detach(), numpy)")
        expect_close(got[name], want[name], f"dL/d{name} for L = sum(SwiGLU(x) * g), float64",
                     rel=1e-9, abs=1e-12,
                     hint="with out = w2(silu(w1 x) * w3 x) autograd gets every gradient right; "
                          "a wrong gradient means the forward computes something else")


def test_dropout_acts_on_the_output_in_training_only():
    torch.manual_seed(5)
    mlp = SwiGLU(16, hidden=32, dropout=0.5).double()
    x = randn(64, 16, seed=6)
    mlp.eval()
    clean = run(mlp, x)
    expect(torch.equal(run(mlp, x), clean), "SwiGLU(dropout=0.5) in eval mode gave two different "
           "outputs for the same x", hint="use nn.Dropout, which does nothing in eval mode")
    mlp.train()
    noisy = run(mlp, x)
    dropped = noisy == 0
    kept_ok = torch.allclose(noisy[~dropped], 2 * clean[~dropped], rtol=1e-9, atol=1e-12)
    share = dropped.double().mean().item()
    expect(kept_ok and 0.4 < share < 0.6,
           f"SwiGLU(dropout=0.5) in training: expected each output either 0 or twice the eval "
           f"output, about half of them 0; got {share:.0%} zeros, the rest "
           f"{'twice' if kept_ok else 'not twice'} the eval output",
           hint="one nn.Dropout on the output: self.dropout(self.w2(...)), as in kata 09's MLP")
