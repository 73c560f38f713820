# %% [markdown]
# # Kata 18 · Muon, in pictures
#
# Muon steps along the momentum with every singular value set to about 1, computed by a
# Newton–Schulz iteration. This notebook runs **your** `newton_schulz`, `shape_scale` and
# `muon_with_adamw` from `katas/18_muon/muon.py` (the stored outputs come from the reference
# solution): the polynomial behind the iteration, what it does to a real gradient of the GPT
# on tiny Shakespeare, the size of the update under both shape scales, and what the
# benchmark measured.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("18", "09", "02", data=("tinyshakespeare.txt",))  # 09, 02: the GPT and its tokens

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from gpt import GPT, GPTConfig
from muon import (
    CONVERGENT_COEFFICIENTS,
    NS_COEFFICIENTS,
    muon_with_adamw,
    newton_schulz,
    shape_scale,
)
from tokenizer import CharTokenizer

from harness.katas import ROOT

# %% [markdown]
# ## The polynomial, and where five steps take each singular value
#
# For X = U S Vᵀ one step maps every singular value σ to p(σ) = aσ + bσ³ + cσ⁵ and leaves U
# and V alone. Left: p for both coefficient sets. Jordan's quintic rises 3.4 times faster from
# 0 and overshoots 1; the classic one creeps up to its fixed point at 1. Right: where five
# steps of **your** `newton_schulz` take a singular value, from 10⁻⁴ to 1 after the
# normalization (each one the first entry of a 2 × 2 diagonal matrix of Frobenius norm 1).
# The grey band is [0.68, 1.20], where the quintic leaves every starting value ≥ 0.002.

# %%
sigma = torch.logspace(-4, 0, 400, dtype=torch.float64)
x = torch.linspace(0, 1, 200, dtype=torch.float64)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
for name, (a, b, c) in (("quintic (Jordan)", NS_COEFFICIENTS),
                        ("convergent (15/8, -10/8, 3/8)", CONVERGENT_COEFFICIENTS)):
    left.plot(x, a * x + b * x**3 + c * x**5, label=name)
    # diag(s, sqrt(1 - s^2)) has Frobenius norm 1: its normalized singular values are s and
    # sqrt(1 - s^2), and the [0, 0] entry of the output is where s went
    out = [newton_schulz(torch.diag(torch.stack([s, (1 - s**2).sqrt()])),
                         coefficients=(a, b, c), eps=0.0)[0, 0] for s in sigma]
    right.semilogx(sigma, out, label=name)
left.plot(x, x, color="0.7", lw=0.8, ls="--")
left.set_xlabel("σ")
left.set_title("one step: p(σ)")
right.axhspan(0.68, 1.20, color="0.9")
right.set_xlabel("σ / ‖G‖_F before")
right.set_title("after 5 steps of newton_schulz")
left.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A real gradient, before and after
#
# The gradient of one MLP matrix (`c_fc`, 512 × 128) of the cpu preset's GPT on a batch of
# tiny Shakespeare, freshly initialized. Its singular values span orders of magnitude: SGD or
# momentum would spend the step on the first few directions. After `newton_schulz` they all sit
# near 1: every direction gets a step of about the same size. (The last one is 0 either way:
# LayerNorm's output has mean 0 over its 128 features, so this gradient has rank 127; the
# spreads in the title leave it out.)

# %%
text = (ROOT / "data" / "tinyshakespeare.txt").read_text()[:20000]
tokenizer = CharTokenizer(text)
ids = torch.tensor(tokenizer.encode(text))
torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4,
                      n_embd=128))
starts = torch.randint(len(ids) - 65, (12,), generator=torch.Generator().manual_seed(0))
xb = torch.stack([ids[s:s + 64] for s in starts])
yb = torch.stack([ids[s + 1:s + 65] for s in starts])
_, loss = model(xb, yb)
loss.backward()
G = model.transformer.h[1].mlp.c_fc.weight.grad
before = torch.linalg.svdvals(G)
after = torch.linalg.svdvals(newton_schulz(G))
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.semilogy(before / before.max(), label="gradient (divided by its largest)")
ax.semilogy(after, label="newton_schulz(gradient)")
ax.set_xlabel("singular value number")
ax.legend(fontsize=8)
ax.set_title(f"c_fc gradient {tuple(G.shape)}: {before[0] / before[-2]:.0f}x spread "
             f"-> {after.max() / after[-2]:.1f}x")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The size of the update, per matrix
#
# The RMS of one step of lr = 1 for each hidden matrix of that model, under both shape scales
# (the same gradient as above for each shape; `muon_with_adamw` picks the matrices). An
# orthogonal r × c matrix has entries of RMS 1/√max(r, c); Jordan's scale only makes up for
# tall shapes, Moonshot's brings every matrix near the RMS of AdamW's steps, about 0.2, so
# AdamW's learning rate carries over. (Here a little under: these gradients have small
# singular values that five steps do not lift all the way to 1.)

# %%
optimizer = muon_with_adamw(model, lr=1.0)
names = {id(p): n for n, p in model.named_parameters()}
print(f"{'matrix':36} {'shape':>11} {'original':>9} {'match_rms_adamw':>16}")
for group in optimizer.param_groups:
    if not group["use_muon"]:
        continue
    for p in group["params"][:4]:  # layer 0; the other layers repeat the shapes
        O = newton_schulz(p.grad)
        rms = O.pow(2).mean().sqrt().item()
        print(f"{names[id(p)]:36} {str(tuple(p.shape)):>11} "
              f"{rms * shape_scale(p.shape, 'original'):9.3f} "
              f"{rms * shape_scale(p.shape, 'match_rms_adamw'):16.3f}")

# %% [markdown]
# ## What the benchmark measured
#
# `python bench/muon.py` trains the same GPT with AdamW and with Muon, each at the best of a
# small learning-rate sweep (faint: the other rates), and writes `bench/results/muon.json`,
# drawn here. The dotted line is the val loss the tuned AdamW run ends at.

# %%
results = ROOT / "bench" / "results" / "muon.json"
if not results.is_file():
    print("no bench/results/muon.json yet: run python bench/muon.py")
else:
    saved = json.loads(results.read_text())
    best = saved["compare"]["best_lr"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, by_lr in saved["runs"].items():
        for lr, run in by_lr.items():
            on = lr == best[name]
            ax.plot([p["step"] for p in run["curve"]], [p["val"] for p in run["curve"]],
                    color="tab:blue" if name == "adamw" else "tab:red",
                    alpha=1 if on else 0.25, lw=2 if on else 1,
                    label=f"{name}, lr {lr}" if on else None)
    ax.axhline(saved["compare"]["target_val"], color="gray", ls=":")
    ax.set_ylim(top=2.8)
    ax.set_xlabel("step")
    ax.set_ylabel("val loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
