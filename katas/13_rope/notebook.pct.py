# %% [markdown]
# # Kata 13 · rotary positions, in pictures
#
# RoPE turns each pair of numbers of a query or key by the angle m · theta_i, where m is the
# token's position and theta_i = 10000^(−2i/d) the pair's speed. This notebook runs **your**
# `apply_rope` from `katas/13_rope/rope.py` (the stored outputs come from the reference
# solution) and draws two things: the turning itself, and what it does to attention scores.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("13")

# %%
import math

import matplotlib.pyplot as plt
import torch
from rope import RMSNorm, apply_rope

# %% [markdown]
# ## RMSNorm on the lesson's example
#
# x = [1, 2, 3, 4] has mean(x²) = 7.5, so RMSNorm divides by √7.5 = 2.7386. LayerNorm would
# first subtract the mean 2.5.

# %%
# NBVAL_CHECK_OUTPUT
x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
print("RMSNorm  ", [round(v, 4) for v in RMSNorm(4)(x)[0].tolist()])
print("LayerNorm", [round(v, 4) for v in torch.nn.LayerNorm(4)(x)[0].tolist()])

# %% [markdown]
# ## The turning
#
# A head of dimension 8 has four pairs, with speeds theta = 1, 0.1, 0.01 and 0.001 radians
# per position. Start every pair at (1, 0) and turn it to positions 0 … 12: pair 0 goes round
# the circle twice, pair 1 a fifth of the way, pairs 2 and 3 hardly move. Fast pairs tell
# neighbours apart; slow pairs still differ between tokens thousands of positions apart.

# %%
positions = torch.arange(13)
start_vector = torch.tensor([1.0, 0.0] * 4).expand(13, 8)  # every pair (1, 0)
turned = apply_rope(start_vector, positions).view(13, 4, 2)

fig, axes = plt.subplots(1, 4, figsize=(8, 2.3))
circle = torch.linspace(0, 2 * math.pi, 200)
for i, ax in enumerate(axes):
    ax.plot(circle.cos(), circle.sin(), color="0.85", lw=1)
    ax.scatter(turned[:, i, 0], turned[:, i, 1], c=positions, cmap="viridis", s=18, zorder=2)
    for m in (0, 1, 2, 12):
        ax.annotate(str(m), turned[m, i].tolist(), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_title(f"pair {i}: θ = {10000 ** (-2 * i / 8):g}")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Scores depend on the distance only
#
# One query q and one key k (random, head dimension 64). Put q at position m and k at
# position n and compute the score (R(m) q) · (R(n) k) for every m, n in 0 … 63. The picture
# is constant along every diagonal m − n = constant: attention with RoPE sees how far back a
# key is, not where it is. The right panel reads the score off along three diagonals, starting
# at different positions: the three lines lie on top of each other.

# %%
torch.manual_seed(0)
q, k = torch.randn(2, 64)
n_pos = 64
rq = apply_rope(q.expand(n_pos, 64), torch.arange(n_pos))  # row m: q turned to position m
rk = apply_rope(k.expand(n_pos, 64), torch.arange(n_pos))
scores = rq @ rk.T  # scores[m, n]

fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
image = left.imshow(scores, cmap="RdBu_r", origin="lower")
left.set_xlabel("key position n")
left.set_ylabel("query position m")
left.set_title("q·k after RoPE")
fig.colorbar(image, ax=left, shrink=0.8)
distance = torch.arange(40)
for first, style in ((0, "-"), (10, "--"), (20, ":")):
    m = first + distance
    right.plot(distance, scores[m, first], style, lw=2, label=f"key at {first}")
right.set_xlabel("distance m − n")
right.set_title("the same curve wherever it starts")
right.legend(fontsize=7)
fig.tight_layout()
plt.show()
