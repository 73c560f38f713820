# %% [markdown]
# # Kata 16 · the modern GPT, in pictures
#
# One model, one switch per part. This notebook runs **your** `ModernGPT` from
# `katas/16_modern/modern.py` (the stored outputs come from the reference solution) and
# shows where the parameters go when GPT-2's parts are swapped for the modern ones at the
# same size, and what the rolling cache does to memory during a long generation.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("16")

# %%
from collections import Counter

import matplotlib.pyplot as plt
import torch
from gpt import PRESETS as GPT2_PRESETS
from gpt import KVCache
from modern import PRESETS, ModernConfig, ModernGPT, describe, new_cache

# %% [markdown]
# ## Where the parameters go
#
# GPT-2's `medium` preset against the modern one. RoPE frees the position table; sharing
# each key/value head between two query heads (GQA) makes the attention smaller; the SwiGLU
# width (1,168) is chosen so that the totals match within 2%, so the MLP gets what the
# others gave up.

# %%
# NBVAL_CHECK_OUTPUT
def by_part(model):
    parts = Counter()
    for name, p in model.named_parameters():
        part = ("positions" if "wpe" in name else "embedding" if "wte" in name
                else "attention" if ".attn." in name else "mlp" if ".mlp." in name else "norms")
        parts[part] += p.numel()
    return parts


gpt2_sizes = {k: getattr(GPT2_PRESETS["medium"], k) for k in
              ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")}
models = {"GPT-2": ModernGPT(ModernConfig.gpt2(**gpt2_sizes)),
          "modern": ModernGPT(PRESETS["medium"])}
parts = ["embedding", "positions", "attention", "mlp", "norms"]
for label, model in models.items():
    counts = by_part(model)
    print(f"{label:7} {model.num_params():>11,}  " +
          "  ".join(f"{p} {counts[p]:,}" for p in parts))
print("modern parts:", describe(PRESETS["medium"]))

# %%
fig, ax = plt.subplots(figsize=(7, 2.4))
for row, model in enumerate(models.values()):
    counts, left = by_part(model), 0
    for i, part in enumerate(parts):
        ax.barh(row, counts[part] / 1e6, left=left, color=f"C{i}",
                label=part if row == 0 else None)
        left += counts[part] / 1e6
ax.set_yticks([0, 1], list(models))
ax.set_xlabel("millions of parameters")
ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.35))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A cache that does not grow
#
# A small random model with a window of 32 writes 300 tokens, ten times its block_size,
# through `new_cache` (a rolling buffer of 32 slots). Kata 09's cache, fed the same tokens,
# keeps every position: its memory grows with the text, the rolling one's stays put.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
config = ModernConfig(block_size=32, window=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=64)
model = ModernGPT(config).eval()
rolling, growing = new_cache(model, 1), KVCache(config.n_layer)
tokens = torch.zeros(1, 1, dtype=torch.long)
sizes = {"rolling": [], "growing": []}
attn = model.transformer.h[0].attn
with torch.no_grad():
    for _ in range(300):
        logits, _ = model(tokens[:, -1:], kv_cache=rolling)
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        k = torch.zeros(1, config.kv_heads, 1, config.n_embd // config.n_head)
        for layer in range(config.n_layer):  # what kata 09's cache would hold
            growing.update(layer, k, k)
        sizes["rolling"].append(rolling.nbytes())
        sizes["growing"].append(sum(t.nbytes for t in growing.keys + growing.values))
print(f"{len(rolling)} positions written; rolling cache {sizes['rolling'][-1]:,} bytes, "
      f"growing cache {sizes['growing'][-1]:,} bytes")

# %%
fig, ax = plt.subplots(figsize=(6, 2.6))
for label, values in sizes.items():
    ax.plot(range(1, 301), [v / 1024 for v in values], label=label)
ax.axvline(config.block_size, color="0.6", ls="--", lw=1)
ax.text(config.block_size + 4, 5, "block_size", fontsize=8, color="0.4")
ax.set_xlabel("tokens generated")
ax.set_ylabel("KV cache (KiB)")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What each part bought, measured
#
# `make ablate` trains the GPT-2 model and, at the same parameter count, the same model with
# one part swapped for its modern replacement, then all of them together; `make scaling`
# trains a ladder of model sizes and a ladder of data fractions and fits
# L(x) = E + A·x^(−α). The cells below draw the results stored in `bench/results/` (the
# repository's own runs; run the commands and rerun these cells to see your machine's).

# %%
import json

import numpy as np

from harness.katas import ROOT

RESULTS = ROOT / "bench" / "results"
stored = {name: json.loads((RESULTS / f"{name}.json").read_text())
          for name in ("ablate", "ablate_h200", "scaling") if (RESULTS / f"{name}.json").exists()}
for name, result in stored.items():
    machine = result["machine"]
    print(f"{name}: {machine['device']}, {machine['cpus']} cores, torch {machine['torch']}, "
          f"{machine['date']}")
if not stored:
    print("no stored results yet: run `make ablate` and `make scaling`")

# %%
ablations = {name: r for name, r in stored.items() if name.startswith("ablate")}
if ablations:
    fig, axes = plt.subplots(1, len(ablations), figsize=(5.2 * len(ablations), 3.4),
                             squeeze=False)
    for ax, (name, result) in zip(axes[0], ablations.items()):
        arms = result["arms"]
        means = [arms[a]["best_val_mean"] for a in arms]
        spreads = [arms[a]["best_val_std"] for a in arms]
        colors = ["0.55" if a == "gpt2" else "tab:green" if a == "modern" else "tab:blue"
                  for a in arms]
        ax.bar(list(arms), means, yerr=spreads, color=colors, capsize=3)
        ax.axhline(arms["gpt2"]["best_val_mean"], color="0.4", ls="--", lw=1)
        low, high = min(means) - 0.03, max(means) + 0.03
        ax.set_ylim(low, high)
        seeds = len(result["settings"]["seeds"])
        ax.set_title(f"{name}: {result['machine']['device']}, {seeds} seed(s)", fontsize=9)
        ax.set_ylabel("best val loss")
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    plt.show()

# %%
if "scaling" in stored:
    result = stored["scaling"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, rows, fit in ((axes[0], "N", result["models"], result["fit_N"]),
                               (axes[1], "D", result["data"], result["fit_D"])):
        x = np.array([r[key] for r in rows], dtype=float)
        ax.loglog(x, [r["best_val"] for r in rows], "o", label="measured")
        if fit:
            xs = np.geomspace(x.min() / 1.5, x.max() * 1.5, 50)
            ax.loglog(xs, fit["E"] + fit["A"] * xs ** -fit["alpha"],
                      label=f"fit: α = {fit['alpha']:.2f}, E = {fit['E']:.2f}")
        ax.set_xlabel("non-embedding parameters N" if key == "N" else "training characters D")
        ax.set_ylabel("best val loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
