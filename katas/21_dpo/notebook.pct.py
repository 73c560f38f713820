# %% [markdown]
# # Kata 21 · DPO, in pictures
#
# DPO trains on pairs (prompt, chosen, rejected) with one loss,
# −log σ(β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]). This notebook
# runs **your** `dpo_loss` and `dpo_step` from `katas/21_dpo/dpo.py` (the stored outputs come
# from the reference solution): the loss as a function of the margin, then a tiny model
# trained on three pairs.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("21")

# %%
import copy
import math

import matplotlib.pyplot as plt
import torch
from dpo import dpo_batch, dpo_loss, dpo_step, sequence_logprobs
from modern import ModernConfig, ModernGPT
from sft import ChatTokenizer

# %% [markdown]
# ## The loss and its pull, against the margin
#
# z = β·[(chosen log-ratio) − (rejected log-ratio)]. The loss −log σ(z) is log 2 at z = 0 (the
# policy is the reference), falls toward 0 as the pair is ranked right, and grows like −z
# when it is ranked wrong. Its slope, σ(−z) (times β per log-prob), is how hard a step pushes
# the pair: nearly 1 for a pair ranked wrong, fading for one already learned. Computed by
# your `dpo_loss`, fed margins up to ±10⁴ (the last line).

# %%
z = torch.linspace(-8, 8, 161, dtype=torch.float64, requires_grad=True)
zero = torch.zeros_like(z)
losses = torch.stack([dpo_loss(z[i:i + 1], zero[:1], zero[:1], zero[:1], beta=1.0)[0]
                      for i in range(len(z))])
(slope,) = torch.autograd.grad(losses.sum(), z)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(z.detach(), losses.detach(), label="loss  −log σ(z)")
ax.plot(z.detach(), -slope, label="pull  σ(−z) = −dL/dz")
ax.axhline(math.log(2), color="0.7", lw=0.8, ls="--")
ax.axvline(0, color="0.85", lw=0.8)
ax.set_xlabel("margin z")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
huge = torch.tensor([1e4, -1e4], dtype=torch.float64)
loss, _, _ = dpo_loss(huge, torch.zeros(2, dtype=torch.float64),
                      torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                      beta=1.0)
print(f"loss at z = 0: {losses[80].item():.6f} (log 2 = {math.log(2):.6f}); "
      f"mean loss at z = +1e4 and -1e4: {loss.item():.1f}")

# %% [markdown]
# ## A tiny model learns three preferences
#
# A small random ModernGPT stands in for the SFT model: it is the reference and, copied, the
# starting policy. Each step of `dpo_step` (Adam, β = 0.5) moves the policy's log-ratios,
# log π − log π_ref of each reply: the chosen ones go up, the rejected down. The loss starts
# at log 2 and the reward accuracy at 0 (all rewards 0, ties), as the lesson says. Watch the
# chosen replies too: DPO pushes the *difference* of the two log-ratios, and a chosen reply
# that shares most of its tokens with its rejected one ('ada' against 'aad') can barely rise
# while the margin still grows.

# %%
torch.set_num_threads(1)  # a model this small runs fastest on one thread
tok = ChatTokenizer()
pairs = [([("user", "reverse ada")], "ada", "aad"),
         ([("user", "count l in lilly")], "3", "12"),
         ([("user", "reverse bo")], "ob", "bo")]
torch.manual_seed(0)
config = ModernConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32)
reference = ModernGPT(config).eval().requires_grad_(False)
policy = copy.deepcopy(reference).requires_grad_(True)
batch = dpo_batch(tok, pairs)
optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)


def log_ratios():
    with torch.no_grad():
        xc, yc, xr, yr = batch
        return (sequence_logprobs(policy, xc, yc) - sequence_logprobs(reference, xc, yc),
                sequence_logprobs(policy, xr, yr) - sequence_logprobs(reference, xr, yr))


history = []
for _ in range(25):
    chosen, rejected = log_ratios()
    stats = dpo_step(policy, reference, optimizer, batch, beta=0.5)
    history.append((chosen, rejected, stats))

fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
for i in range(len(pairs)):
    left.plot([h[0][i] for h in history], color=f"C{i}", label=f"chosen {pairs[i][1]!r}")
    left.plot([h[1][i] for h in history], color=f"C{i}", ls="--",
              label=f"rejected {pairs[i][2]!r}")
left.axhline(0, color="0.8", lw=0.8)
left.set_title("log π − log π_ref")
left.set_xlabel("step")
left.legend(fontsize=7)
right.plot([h[2]["loss"] for h in history], label="loss")
right.plot([h[2]["reward_accuracy"] for h in history], label="reward accuracy")
right.axhline(math.log(2), color="0.7", lw=0.8, ls="--")
right.set_xlabel("step")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()
for step in (0, 1, 2, 5, 10, 24):
    chosen, rejected, stats = history[step]
    print(f"step {step:2d}: loss {stats['loss']:.4f}, reward accuracy "
          f"{stats['reward_accuracy']:.2f}, margin {stats['reward_margin']:+.3f}")
