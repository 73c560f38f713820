# %% [markdown]
# # Kata 09 · the GPT in PyTorch: where its parameters are, and what the KV cache saves
#
# This notebook builds **your** `GPT` (`katas/09_gpt/gpt.py`) at the three preset sizes,
# counts its parameters by part, and times generation with and without your `KVCache`.
# (The stored outputs come from the reference solution; the timings are from a 2-core CPU.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("09")

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
from gpt import GPT, PRESETS, KVCache, causal_mask

torch.manual_seed(0)
torch.set_num_threads(1)


# %% [markdown]
# ## Where the parameters are
#
# Each block holds about `12·n_embd²` parameters: `4·n_embd²` in attention (query, key, value
# and output projections) and `8·n_embd²` in the feed-forward layer (`n_embd → 4·n_embd →
# n_embd`). The token embedding is shared with the output layer (weight tying), so it counts
# once.

# %%
def parts(model):
    counts = {"token embedding (tied)": 0, "position embedding": 0, "attention": 0,
              "feed-forward": 0, "layer norms": 0}
    for name, p in model.named_parameters():
        if "wte" in name:
            counts["token embedding (tied)"] += p.numel()
        elif "wpe" in name:
            counts["position embedding"] += p.numel()
        elif ".attn." in name:
            counts["attention"] += p.numel()
        elif ".mlp." in name:
            counts["feed-forward"] += p.numel()
        else:
            counts["layer norms"] += p.numel()
    return counts


models = {name: GPT(config) for name, config in PRESETS.items()}
table = {name: parts(model) for name, model in models.items()}

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'':24}" + "".join(f"{name:>12}" for name in table))
for part in table["tiny"]:
    print(f"{part:24}" + "".join(f"{table[name][part]:>12,}" for name in table))
print(f"{'total':24}" + "".join(f"{models[name].num_params():>12,}" for name in table))
for name, config in PRESETS.items():
    per_block = (table[name]["attention"] + table[name]["feed-forward"]) / config.n_layer
    print(f"{name}: one block's attention + feed-forward = {per_block:,.0f} "
          f"= 12 x {config.n_embd}^2 = {12 * config.n_embd**2:,}")

# %%
fig, ax = plt.subplots(figsize=(8, 2.8))
left = [0] * len(table)
for part in table["tiny"]:
    widths = [table[name][part] / 1e6 for name in table]
    ax.barh(list(table), widths, left=left, label=part)
    left = [a + b for a, b in zip(left, widths)]
ax.set_xlabel("millions of parameters")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
ax.invert_yaxis()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Before training
#
# With weights drawn at `std 0.02`, the logits are close to 0, every character gets about
# the same probability, and the loss is close to that of a uniform guess over 65 characters.

# %%
# NBVAL_CHECK_OUTPUT
model = models["small"].eval()
idx = torch.randint(0, 65, (4, 256))
targets = torch.randint(0, 65, (4, 256))
with torch.no_grad():
    _, loss = model(idx, targets)
print(f"initial loss {loss.item():.2f}, ln 65 = {math.log(65):.2f}")

# %% [markdown]
# ## Who sees whom
#
# `causal_mask(n_query, n_key)`: a full forward pass has one query per position, and each
# query sees its own position and the ones before it (left). With a KV cache holding 5
# positions, a call with 3 new tokens has 3 queries, at positions 5, 6 and 7: they see all 5
# cached keys and the new ones up to their own (right). A generation step is the case of one
# new token, which sees everything.

# %%
fig, (full, cached) = plt.subplots(1, 2, figsize=(7, 3))
full.imshow(causal_mask(8, 8), cmap="Blues", vmin=0, vmax=1.3)
full.set_title("causal_mask(8, 8)")
cached.imshow(causal_mask(3, 8), cmap="Blues", vmin=0, vmax=1.3)
cached.set_yticks(range(3), ["5", "6", "7"])
cached.set_title("causal_mask(3, 8): 5 cached")
for ax in (full, cached):
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
fig.tight_layout()
plt.show()


# %% [markdown]
# ## What the KV cache saves
#
# Generating token `t` without a cache runs the model over all `t` tokens so far; with the
# cache it runs over the one new token and reuses the keys and values of the others. Both give
# the same logits (checked below); the time per token is what differs. The model is the
# untrained `small` preset (3.2M parameters); greedy decoding from one token up to
# `block_size` tokens.

# %%
def generate_timed(model, steps, use_cache):
    idx = torch.zeros(1, 1, dtype=torch.long)
    cache = KVCache(model.config.n_layer) if use_cache else None
    seconds, last_logits = [], []
    with torch.no_grad():
        for _ in range(steps):
            started = time.perf_counter()
            if use_cache:
                logits, _ = model(idx[:, len(cache):], kv_cache=cache)
            else:
                logits, _ = model(idx)
            seconds.append(time.perf_counter() - started)
            last_logits.append(logits[0, -1])
            idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seconds, torch.stack(last_logits)


STEPS = model.config.block_size
slow, logits_full = generate_timed(model, STEPS, use_cache=False)
fast, logits_cached = generate_timed(model, STEPS, use_cache=True)

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(1, STEPS + 1), [1000 * s for s in slow], label="no cache: the whole prefix")
ax.plot(range(1, STEPS + 1), [1000 * s for s in fast], label="KV cache: one token")
ax.set_xlabel("tokens so far")
ax.set_ylabel("ms for the next token")
ax.legend()
fig.tight_layout()
plt.show()
print(f"{STEPS} tokens: {sum(slow):.2f} s without the cache, {sum(fast):.2f} s with it")

# %%
# NBVAL_CHECK_OUTPUT
worst = (logits_full - logits_cached).abs().max().item()
print(f"cached and uncached logits agree to 1e-4: {worst < 1e-4}")
