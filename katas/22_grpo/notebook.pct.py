# %% [markdown]
# # Kata 22 · GRPO, in pictures
#
# GRPO samples a group of replies per prompt, scores them with a program, and pushes up the
# replies that beat their group's average, through PPO's clipped ratio. This notebook runs
# **your** `group_advantages`, `grpo_loss`, `k3_kl` and `grpo_step` from
# `katas/22_grpo/grpo.py` (the stored outputs come from the reference solution).

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("22")

# %%
import copy

import matplotlib.pyplot as plt
import torch
from grpo import group_advantages, grpo_loss, grpo_step, k3_kl
from modern import ModernConfig, ModernGPT
from sft import ChatTokenizer
from tasks import Task

torch.set_num_threads(1)  # tiny tensors: one thread is fastest

# %% [markdown]
# ## The advantages of a group of eight
#
# k of the 8 replies are right (reward 1), the rest wrong (0). With the std division (GRPO)
# a lone right reply gets a large push, 2.65, and the push shrinks as right replies become
# common; 0 and 8 right give no signal at all. Without it (Dr. GRPO, `scale=False`) the
# advantages are r − mean: the right reply gets 1 − k/8, whatever the spread.

# %%
# NBVAL_CHECK_OUTPUT
G = 8
rows = torch.tensor([[1.0] * k + [0.0] * (G - k) for k in range(G + 1)])
scaled, centered = group_advantages(rows), group_advantages(rows, scale=False)
print(" k right | A right  A wrong (GRPO) | A right  A wrong (Dr. GRPO)")
for k in range(G + 1):
    right = f"{scaled[k, 0]:7.3f}" if k else "      -"
    wrong = f"{scaled[k, -1]:7.3f}" if k < G else "      -"
    c_right = f"{centered[k, 0]:7.3f}" if k else "      -"
    c_wrong = f"{centered[k, -1]:7.3f}" if k < G else "      -"
    print(f"{k:8d} | {right}  {wrong}        | {c_right}  {c_wrong}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ks = torch.arange(1, G)
ax.plot(ks, scaled[1:G, 0], "o-", label="right reply, GRPO")
ax.plot(ks, scaled[1:G, -1], "o-", label="wrong reply, GRPO")
ax.plot(ks, centered[1:G, 0], "s--", label="right reply, Dr. GRPO")
ax.plot(ks, centered[1:G, -1], "s--", label="wrong reply, Dr. GRPO")
ax.axhline(0, color="0.8", lw=0.8)
ax.set_xlabel("right replies in the group of 8")
ax.set_ylabel("advantage")
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The clipped objective, as a function of the ratio
#
# One token, ρ = exp(logp − old_logp), objective = −grpo_loss. For A > 0 the objective
# rises with ρ until 1 + ε = 1.2, then is flat: no gradient pushes a good token further
# once it moved 20%. For A < 0 it is flat below 0.8 and keeps falling above 1.2: a bad token
# that became *more* likely is always pushed back. The dashed lines are the gradients.

# %%
rhos = torch.linspace(0.3, 1.8, 301, dtype=torch.float64)
fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
for ax, A in zip(axes, (1.0, -1.0)):
    values, slopes = [], []
    for rho in rhos:
        logp = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
        old = -rho.log().reshape(1, 1)
        loss = grpo_loss(logp, old, None, torch.tensor([A], dtype=torch.float64),
                         torch.ones(1, 1, dtype=torch.bool))
        (grad,) = torch.autograd.grad(loss, logp)
        values.append(-loss.item())
        slopes.append(-grad.item() / rho.item())  # d objective / d rho
    ax.plot(rhos, values, label="objective")
    ax.plot(rhos, slopes, "--", label="d objective / d rho")
    ax.axvspan(0.8, 1.2, color="0.92")
    ax.set_title(f"A = {A:+.0f}")
    ax.set_xlabel("rho")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## k3 against the log ratio
#
# With d = log(π_ref / π) for one sampled token, −d alone (k1) is an unbiased estimate of the
# KL but is negative half the time; k3 = e^d − d − 1 is also unbiased and never negative.

# %%
d = torch.linspace(-2, 2, 201, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(d, k3_kl(torch.zeros_like(d), d), label="k3 = exp(d) - d - 1 (yours)")
ax.plot(d, -d, "--", label="k1 = -d")
ax.axhline(0, color="0.8", lw=0.8)
ax.set_xlabel("d = ref_logp - logp")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A short run
#
# The learning spec's setting: a one-layer model of 16 dimensions, the prompt "count a in
# banana" and the answer `3`, one token that the random model says about 1 time in 18. Each
# step samples 16 replies; 30 steps take about a second.

# %%
tok = ChatTokenizer("abcinotu 0123")
torch.manual_seed(0)
policy = ModernGPT(ModernConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=1, n_head=2,
                                n_embd=16))
reference = copy.deepcopy(policy)
optimizer = torch.optim.Adam(policy.parameters(), lr=0.01)
generator = torch.Generator().manual_seed(0)
task = Task("count", "count a in banana", "3")
curve = [grpo_step(policy, reference, optimizer, tok, [task], group_size=16, max_new_tokens=1,
                   generator=generator)["reward"] for _ in range(30)]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(1, 31), curve, "o-")
ax.set_xlabel("GRPO step")
ax.set_ylabel("mean reward of 16 replies")
ax.set_ylim(-0.05, 1.05)
fig.tight_layout()
plt.show()
