# %% [markdown]
# # Kata 14 · SwiGLU, in pictures
#
# SwiGLU replaces the GELU MLP by a gated one: out = w2(silu(w1 x) ⊙ w3 x). This notebook
# runs **your** `silu`, `swiglu_hidden` and `SwiGLU` from `katas/14_swiglu/swiglu.py` (the
# stored outputs come from the reference solution): the three activations side by side, what
# a gate does to one hidden unit, and the parameter-parity table.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("14")

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from swiglu import SwiGLU, silu, swiglu_hidden

# %% [markdown]
# ## SiLU, GELU and ReLU
#
# SiLU(z) = z · sigmoid(z) and GELU are smooth versions of ReLU; for z > 2 all three are
# almost z. Below zero SiLU dips further (its minimum is −0.278 at z = −1.278) and comes back
# to 0 more slowly, so small negative inputs still pass a gradient. Right: the slopes, which
# is what backpropagation sees.

# %%
z = torch.linspace(-5, 3, 401, requires_grad=True)
curves = {"ReLU": F.relu, "GELU": F.gelu, "SiLU (yours)": silu}
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
for name, fn in curves.items():
    y = fn(z)
    (slope,) = torch.autograd.grad(y.sum(), z)
    left.plot(z.detach(), y.detach(), label=name)
    right.plot(z.detach(), slope, label=name)
left.set_title("activation")
right.set_title("slope")
for ax in (left, right):
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set_xlabel("z")
left.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the gate does to one hidden unit
#
# A hidden unit of the GELU MLP outputs gelu(a), a function of one projection a = w·x. A unit
# of SwiGLU outputs silu(a) · b, a product of two projections: b passes when the gate a is
# open (large and positive), is blocked when a is very negative, and is flipped and shrunk in
# between. Its level lines bend (roughly hyperbolas, as for a product); a function of a alone
# has straight, horizontal ones.

# %%
a, b = torch.meshgrid(torch.linspace(-4, 4, 161), torch.linspace(-4, 4, 161), indexing="ij")
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
for ax, values, title in ((left, F.gelu(a), "GELU MLP unit: gelu(a)"),
                          (right, silu(a) * b, "SwiGLU unit: silu(a) · b")):
    image = ax.contourf(b, a, values, levels=21, cmap="RdBu_r", vmin=-12, vmax=12)
    ax.set_xlabel("up projection b = w3·x")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
left.set_ylabel("gate projection a = w1·x")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Parameter parity
#
# Three matrices of n_embd × h hold as many numbers as GELU's two of n_embd × 4·n_embd when
# h = 8·n_embd/3; `swiglu_hidden` rounds that up to a multiple of 64. Counted from your module:

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'n_embd':>6} {'GELU MLP':>11} {'hidden':>7} {'SwiGLU':>11} {'difference':>10}")
for n_embd in (128, 256, 384, 768):
    gelu_params = 2 * n_embd * 4 * n_embd
    swiglu_params = sum(p.numel() for p in SwiGLU(n_embd).parameters())
    extra = swiglu_params / gelu_params - 1
    print(f"{n_embd:>6} {gelu_params:>11,} {swiglu_hidden(n_embd):>7} {swiglu_params:>11,} "
          f"{extra:>+10.1%}")
