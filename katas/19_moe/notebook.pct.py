# %% [markdown]
# # Kata 19 · a mixture of experts, in pictures
#
# This notebook runs **your** `moe.py` from `katas/19_moe/` (the stored outputs come from
# the reference solution): one token's route through the router, DeepSeek-V3's bias
# balancing a planted imbalance, and where the parameters of a dense and an MoE model go.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("19")

# %%
import matplotlib.pyplot as plt
import torch
from modern import PRESETS, ModernConfig, count_params, modern_like
from moe import bias_update, count_moe_params, expert_load, load_balancing_loss, moe_like, route

# %% [markdown]
# ## One token's route
#
# Eight experts, top-2. The router's logits (left); the two highest are chosen, and their
# gates are the softmax over those two logits only (right), which sum to 1. The other six
# experts never run for this token.

# %%
# NBVAL_CHECK_OUTPUT
logits = torch.tensor([0.4, -1.1, 1.7, 0.2, 1.2, -0.3, 0.9, -0.6])
gates, experts = route(logits[None], 2)
print("chosen experts", experts[0].tolist(), "gates", [round(g, 3) for g in gates[0].tolist()])

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 2.6))
chosen = set(experts[0].tolist())
left.bar(range(8), logits, color=["tab:orange" if i in chosen else "0.7" for i in range(8)])
left.set_title("router logits (orange: the top 2)", fontsize=9)
weights = torch.zeros(8).index_put((experts[0],), gates[0])
right.bar(range(8), weights, color="tab:orange")
right.set_title("gates: softmax over the chosen logits", fontsize=9)
for ax in (left, right):
    ax.set_xticks(range(8))
    ax.set_xlabel("expert")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Bias balancing, round by round
#
# 512 tokens whose logits favour the low-numbered experts (a slope from +2 to 0 is added).
# Each round routes them by logits + bias, measures the load and takes one `bias_update`
# step (γ = 0.02). The bias never touches the gates: it only changes which experts are
# chosen. The busiest expert's load falls to about its fair share, and the Switch loss
# (of the logits the choice sees) falls toward 1.

# %%
# NBVAL_CHECK_OUTPUT
E = 8
g = torch.Generator().manual_seed(6)
logits = torch.randn(512, E, generator=g, dtype=torch.float64) + torch.linspace(2, 0, E,
                                                                                 dtype=torch.float64)
bias = torch.zeros(E, dtype=torch.float64)
busiest, aux, loads = [], [], []
for _ in range(100):
    _, experts = route(logits, 2, bias)
    load = expert_load(experts, E).double()
    busiest.append(load.max().item() * E)
    aux.append(load_balancing_loss(logits + bias, experts).item())
    loads.append(load)
    bias = bias_update(bias, load, 0.02)
print(f"busiest expert: {busiest[0]:.2f}x its share at the start, {busiest[-1]:.2f}x after "
      f"100 rounds; final bias {[round(b, 2) for b in bias.tolist()]}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 2.8))
left.plot(busiest, label="busiest expert / uniform share")
left.plot(aux, label="Switch loss of logits + bias")
left.axhline(1, color="0.6", ls="--", lw=1)
left.set_xlabel("round")
left.legend(fontsize=8)
right.bar(range(E), loads[0] * E, alpha=0.5, label="round 0")
right.bar(range(E), loads[-1] * E, alpha=0.7, label="round 99")
right.axhline(1, color="0.6", ls="--", lw=1)
right.set_xlabel("expert")
right.set_ylabel("load / uniform share")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Active and total parameters
#
# `moe_like` splits each dense SwiGLU's width over the top-k experts a token uses, so the
# active parameters stay those of the dense model while the total grows about E/k times
# in the MLPs. The embedding and the attention are shared, which is why the total grows
# less than E/k overall.

# %%
# NBVAL_CHECK_OUTPUT
sizes = {"cpu (ablate)": modern_like(ModernConfig.gpt2(n_layer=4, n_head=4, n_embd=128,
                                                       block_size=64)),
         "small": PRESETS["small"], "medium": PRESETS["medium"]}
rows = []
for name, dense in sizes.items():
    active, total = count_moe_params(moe_like(dense, n_expert=8, top_k=2))
    rows.append((name, count_params(dense), active, total))
    print(f"{name:13} dense {rows[-1][1]:>11,}  MoE 8x top-2: active {active:>11,}, "
          f"total {total:>11,} ({total / rows[-1][1]:.1f}x)")

# %%
fig, ax = plt.subplots(figsize=(6.5, 2.6))
x = range(len(rows))
ax.bar([i - 0.27 for i in x], [r[1] / 1e6 for r in rows], 0.27, label="dense")
ax.bar(x, [r[2] / 1e6 for r in rows], 0.27, label="MoE active")
ax.bar([i + 0.27 for i in x], [r[3] / 1e6 for r in rows], 0.27, label="MoE total")
ax.set_xticks(list(x), [r[0] for r in rows])
ax.set_ylabel("millions of parameters")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
