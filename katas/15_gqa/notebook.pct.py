# %% [markdown]
# # Kata 15 · GQA: what the window sees, what the cache costs, how the buffer rolls
#
# This notebook uses **your** `sliding_window_mask`, `StaticKVCache` and
# `GroupedQueryAttention` (`katas/15_gqa/gqa.py`): it draws the window mask, measures the
# cache's bytes per token for MHA, GQA, MQA and a window at the `medium` size, and follows the
# slots of a rolling buffer as generation runs past its window.
# (The stored outputs come from the reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("15")

# %%
import matplotlib.pyplot as plt
import torch
from gqa import GroupedQueryAttention, StaticKVCache, sliding_window_mask

torch.manual_seed(0)
torch.set_num_threads(1)

# %% [markdown]
# ## Who sees whom
#
# Causal attention (left): position p sees 0..p. A window of 3 (middle): p sees p−2..p, so
# every row holds at most 3 keys, however long the sequence. With a cache (right), two new
# queries at positions 6 and 7 see only the last keys of the 6 cached ones.

# %%
fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
panels = [(sliding_window_mask(8, 8), "causal"), (sliding_window_mask(8, 8, 3), "window 3"),
          (sliding_window_mask(2, 8, 3), "window 3, 6 cached")]
for ax, (mask, title) in zip(axes, panels):
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.3)
    ax.set_title(title)
    ax.set_xlabel("key position")
axes[0].set_ylabel("query position")
axes[2].set_yticks(range(2), ["6", "7"])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the cache costs, per generated token
#
# A cache for six layers of the `medium` size (6 heads of 64 dimensions, float32), filled
# as generation fills it: 512 positions, the keys and values of each written by every layer
# with `update`. The bytes are read from the cache (`nbytes()`), then divided by the
# positions generated. For a full cache the formula is 2 · n_layer · n_kv_head · head_dim · 4.

# %%
N_LAYER, HEAD_DIM, TOKENS = 6, 64, 512


def cache_bytes(n_kv_head, window):
    cache = StaticKVCache(N_LAYER, 1, n_kv_head, HEAD_DIM, TOKENS, window=window)
    for _ in range(TOKENS):
        k = torch.randn(1, n_kv_head, 1, HEAD_DIM)
        for layer in range(N_LAYER):
            cache.update(layer, k, k)
    return cache.nbytes()


configs = {"MHA (6)": (6, None), "GQA (3)": (3, None), "GQA (2)": (2, None),
           "MQA (1)": (1, None), "MHA, window 64": (6, 64), "GQA 2, window 64": (2, 64)}
per_token = {name: cache_bytes(*config) / TOKENS for name, config in configs.items()}

# %%
# NBVAL_CHECK_OUTPUT
for name, (n_kv_head, _) in configs.items():
    formula = 2 * N_LAYER * n_kv_head * HEAD_DIM * 4
    print(f"{name:18} {per_token[name]:8,.0f} bytes per token  (formula per cached position: "
          f"{formula:,})")

# %%
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(per_token), [b / 1024 for b in per_token.values()], color="tab:blue")
ax.set_xlabel(f"KiB of cache per generated token ({TOKENS} tokens)")
ax.invert_yaxis()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A rolling buffer, slot by slot
#
# A cache with window 4 has 4 slots per layer. Each key below carries its own position as
# its value, so we can read back which position sits in which slot after every step, and
# whether the newest query may see it (blue) or not (grey: empty, or out of the window).
# Position t lands in slot t % 4; from position 4 on, each new key overwrites the one
# the window has just left behind.

# %%
W, STEPS = 4, 11
cache = StaticKVCache(1, 1, 1, 1, max_len=W, window=W)
held, seen = [], []
for t in range(STEPS):
    keys, _, mask = cache.update(0, torch.full((1, 1, 1, 1), float(t)), torch.zeros(1, 1, 1, 1))
    held.append(keys[0, 0, :, 0].tolist())
    seen.append(mask[-1].tolist())

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.imshow(torch.tensor(seen, dtype=torch.float).T, cmap="Blues", vmin=-0.3, vmax=2.5,
          aspect="auto")
for t, (positions, visible) in enumerate(zip(held, seen)):
    for slot, (p, v) in enumerate(zip(positions, visible)):
        ax.text(t, slot, f"{p:.0f}" if v else "·", ha="center", va="center", fontsize=9)
ax.set_xlabel("step (the position just written)")
ax.set_ylabel("key slot")
ax.set_xticks(range(len(held)))
ax.set_yticks(range(W))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Past any block size, at constant memory
#
# One windowed GQA layer with RoPE, fed 1,200 tokens one at a time through a rolling
# cache of 32 slots: the cache holds the same bytes throughout, and the last outputs equal
# windowed attention recomputed from scratch over the whole sequence.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(1)
layer = GroupedQueryAttention(64, 4, n_kv_head=2, window=32).double().eval()
x = torch.randn(1, 1200, 64, dtype=torch.float64)
cache = StaticKVCache(1, 1, 2, 16, max_len=32, window=32, dtype=torch.float64)
sizes, steps = set(), []
with torch.no_grad():
    for t in range(1200):
        steps.append(layer(x[:, t:t + 1], kv_cache=cache))
        sizes.add(cache.nbytes())
    full = layer(x)
gap = (torch.cat(steps, dim=1) - full).abs().max().item()
print(f"positions written: {len(cache)}; cache bytes over the 1,200 steps: "
      f"{', '.join(f'{n:,}' for n in sorted(sizes))}")
print(f"cached vs recomputed: {'equal' if gap < 1e-9 else f'differ by {gap:.2g}'}")
