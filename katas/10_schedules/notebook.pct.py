# %% [markdown]
# # Kata 10 · the learning-rate schedule and gradient clipping, in pictures
#
# The training loop of kata 12 asks your `lr_at` for the learning rate of every step, and
# clips the gradients with your `clip_grad_norm` before each update. This notebook draws what
# **your** code from `katas/10_schedules/schedules.py` does. (The stored outputs come from the
# reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("10")

# %%
import matplotlib.pyplot as plt
import torch
from schedules import clip_grad_norm, lr_at, param_groups
from torch import nn

# %% [markdown]
# ## Warmup, then cosine
#
# The Shakespeare run's settings: `max_lr` 1e-3, `min_lr` 1e-4, 100 warmup steps, 5,000 steps.
# The rate climbs in a straight line from 0, peaks at step 100, follows half a cosine down to
# `min_lr` at step 5,000 and stays there.

# %%
MAX_LR, MIN_LR, WARMUP, MAX_STEPS = 1e-3, 1e-4, 100, 5000
steps = range(0, 6001)
lrs = [lr_at(s, MAX_LR, MIN_LR, WARMUP, MAX_STEPS) for s in steps]

fig, (whole, zoom) = plt.subplots(1, 2, figsize=(9, 3), width_ratios=[2, 1])
whole.plot(steps, lrs)
whole.axvline(WARMUP, color="gray", ls=":", lw=1)
whole.axvline(MAX_STEPS, color="gray", ls=":", lw=1)
whole.set_xlabel("step")
whole.set_ylabel("learning rate")
whole.set_title("lr_at over a run (dotted: warmup_steps, max_steps)")
near = range(90, 111)
zoom.plot(near, [lrs[s] for s in near], marker="o", ms=3)
zoom.axvline(WARMUP, color="gray", ls=":", lw=1)
zoom.set_xlabel("step")
zoom.set_title("around the warmup boundary")
fig.tight_layout()
plt.show()

# %% [markdown]
# The endpoints are exact and there is no jump at the boundary: step 99 is one small step
# below the peak, step 100 is the peak, step 101 has barely started down.

# %%
# NBVAL_CHECK_OUTPUT
for step in [0, 1, 50, 99, 100, 101, 2550, 4999, 5000, 6000]:
    print(f"step {step:5}: lr = {lr_at(step, MAX_LR, MIN_LR, WARMUP, MAX_STEPS):.6e}")

# %% [markdown]
# ## Clipping: shrink long gradients onto the sphere, leave short ones alone
#
# Each arrow is the whole gradient of a model with two parameters. `clip_grad_norm` with
# `max_norm=1` rescales every arrow longer than 1 to length 1, keeping its direction, and
# leaves shorter ones exactly as they were.

# %%
torch.manual_seed(0)
gradients = torch.randn(14, 2) * 1.2
fig, ax = plt.subplots(figsize=(3.8, 3.8))
ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="gray", ls="--"))
for g in gradients:
    param = torch.zeros(2, requires_grad=True)
    param.grad = g.clone()
    norm = clip_grad_norm([param], max_norm=1.0)
    clipped = param.grad
    if norm > 1.0:
        ax.annotate("", xy=tuple(g), xytext=(0, 0),
                    arrowprops={"arrowstyle": "->", "color": "tab:red", "alpha": 0.35})
    ax.annotate("", xy=tuple(clipped), xytext=(0, 0),
                arrowprops={"arrowstyle": "->", "color": "tab:blue"})
ax.set_xlim(-3, 3)
ax.set_ylim(-3, 3)
ax.set_aspect("equal")
ax.set_title("before (red) and after (blue)")
plt.show()

# %% [markdown]
# The norm is global: over *all* parameters together, so clipping scales every gradient by the
# same factor and the direction of the whole update is kept.

# %%
# NBVAL_CHECK_OUTPUT
a, b = torch.zeros(3, requires_grad=True), torch.zeros(4, requires_grad=True)
a.grad, b.grad = torch.full((3,), 2.0), torch.full((4,), 1.5)
norm = clip_grad_norm([a, b], max_norm=1.0)
print(f"norm before: {norm.item():.4f}  (sqrt(3 * 2^2 + 4 * 1.5^2) = {(12 + 9) ** 0.5:.4f})")
print(f"norm after:  {torch.cat([a.grad, b.grad]).norm().item():.4f}")
print(f"ratio a/b kept: {a.grad[0].item() / b.grad[0].item():.4f}")

# %% [markdown]
# ## Which weights decay
#
# AdamW's weight decay pulls weights towards zero. Your `param_groups` decays the matrices
# (≥ 2-D: linear weights, embeddings) and spares the vectors (biases, norm gains).

# %%
# NBVAL_CHECK_OUTPUT
model = nn.Sequential(nn.Embedding(65, 8), nn.LayerNorm(8), nn.Linear(8, 65))
names = {id(p): name for name, p in model.named_parameters()}
for group in param_groups(model, weight_decay=0.1):
    members = ", ".join(f"{names[id(p)]} {tuple(p.shape)}" for p in group["params"])
    print(f"weight_decay={group['weight_decay']}: {members}")
