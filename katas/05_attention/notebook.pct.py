# %% [markdown]
# # Kata 05 · causal attention, in pictures
#
# At position *t*, attention mixes the values of positions 0..*t* with weights that come from a
# softmax over the scores q·k/√d. This notebook runs **your** `attention` from
# `katas/05_attention/attention.py` one position at a time, as microGPT does, over a real name,
# and draws the weights it returns through `weights_out`: one row per position, one square
# per earlier position it may read. (The stored outputs come from the reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("05")

# %%
import random

import matplotlib.pyplot as plt
import numpy as np
from attention import attention
from mlp import matrix
from value import Value

LETTERS = "abcdefghijklmnopqrstuvwxyz"
BOS = 26  # the id of the begin/end marker, as in microGPT


def attention_maps(name, wte, wpe, wq, wk, wv, wo, n_head):
    """Feed [BOS] + name through attention one position at a time, with a fresh KV cache.

    Returns the labels of the positions and an (n_head, T, T) array: row t of head h holds
    the weights position t gave to positions 0..t; the rest (the future) stays NaN.
    """
    tokens = [BOS] + [LETTERS.index(ch) for ch in name]
    keys, values, rows = [], [], []
    for pos, token in enumerate(tokens):
        x = [t + p for t, p in zip(wte[token], wpe[pos])]
        weights = []
        attention(x, wq, wk, wv, wo, keys, values, n_head, weights_out=weights)
        rows.append(weights)  # one list per head, over positions 0..pos
    maps = np.full((n_head, len(tokens), len(tokens)), np.nan)
    for pos, per_head in enumerate(rows):
        for h, w in enumerate(per_head):
            maps[h, pos, : len(w)] = w
    return ["BOS", *name], maps


def draw(maps, labels, titles, suptitle):
    fig, axes = plt.subplots(1, len(maps), figsize=(2.3 * len(maps), 2.7), squeeze=False)
    for ax, weights, title in zip(axes[0], maps, titles):
        ax.imshow(np.ma.masked_invalid(weights), cmap="Blues", vmin=0, vmax=1)
        ax.set_facecolor("#dddddd")  # the future: never computed, not even as a zero
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=90)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(title)
        ax.set_xlabel("key position", fontsize=7)
    axes[0][0].set_ylabel("query position", fontsize=7)
    fig.suptitle(suptitle)
    fig.tight_layout()
    plt.show()


# %% [markdown]
# ## Four heads, untrained
#
# An attention layer of microGPT's size (16 dims, 4 heads of 4 dims) with random weights, on
# the name *isabella*. Every row is a probability distribution over the positions up to and
# including its own. Above the diagonal is grey: position *t* never sees a later token,
# because when *t* is processed the cache holds nothing later.

# %%
rng = random.Random(0)
n_embd, n_head = 16, 4
wte, wpe = matrix(27, n_embd, 1.0, rng), matrix(16, n_embd, 1.0, rng)
wq, wk, wv, wo = (matrix(n_embd, n_embd, 0.5, rng) for _ in range(4))

labels, maps = attention_maps("isabella", wte, wpe, wq, wk, wv, wo, n_head)
draw(maps, labels, [f"head {h}" for h in range(n_head)], "random weights, the name 'isabella'")

# %% [markdown]
# One query at a time: drag the query position (in Jupyter, with the kernel running) and see
# which positions that one row of each head reads, and how much. Its row is the only bright
# one; the squares right of the diagonal are the future, which it never sees. The stored copy
# shows the query at the *e*.

# %%
import ipywidgets as widgets

from harness.notebook import interact


def query_figure(query, labels=labels, maps=maps):
    fig, axes = plt.subplots(2, n_head, figsize=(2.3 * n_head, 3.8), height_ratios=[3, 1.3],
                             sharex=True)
    for h in range(n_head):
        top, bottom = axes[0][h], axes[1][h]
        faded = np.ma.masked_invalid(maps[h])
        top.imshow(faded, cmap="Blues", vmin=0, vmax=1, alpha=0.25)
        row = np.full_like(maps[h], np.nan)
        row[query] = maps[h][query]
        top.imshow(np.ma.masked_invalid(row), cmap="Blues", vmin=0, vmax=1)
        top.set_facecolor("#dddddd")
        top.set_yticks(range(len(labels)), labels, fontsize=7)
        top.set_title(f"head {h}")
        weights = np.nan_to_num(maps[h][query])
        bottom.bar(range(len(labels)), weights, color="tab:blue")
        bottom.set_ylim(0, 1)
        bottom.set_xticks(range(len(labels)), labels, fontsize=7, rotation=90)
    axes[0][0].set_ylabel("query", fontsize=7)
    axes[1][0].set_ylabel("weight", fontsize=7)
    fig.suptitle(f"query at position {query} ({labels[query]!r}): what it reads")
    fig.tight_layout()
    return fig


interact(query_figure, query=widgets.IntSlider(value=5, min=0, max=len(labels) - 1,
                                               description="query"))

# %%
# NBVAL_CHECK_OUTPUT
rows = maps.reshape(-1, maps.shape[-1])
print("every row sums to 1:", bool(np.allclose(np.nansum(rows, axis=1), 1.0)))
print("weights per row:", [int(n) for n in np.sum(~np.isnan(maps[0]), axis=1)])
print("position 0 can only attend to itself:", maps[:, 0, 0].tolist())


# %% [markdown]
# ## A head that looks things up
#
# Attention is a soft dictionary look-up: the query asks, every key answers with a score. Build
# one head by hand. The embedding of a token is its one-hot vector (27 dims, one head of 27
# dims, no position), `wq` is the identity times a strength *s*, and `wk` the identity. Then
# q·k is *s* for two positions that hold the same letter and 0 otherwise: each position
# attends to the earlier copies of its own letter (and to itself). Softmax turns the score gap
# *s*/√27 into weights: the larger *s*, the sharper the look-up.

# %%
def identity(n, scale=1.0):
    return [[Value(scale if i == j else 0.0) for j in range(n)] for i in range(n)]


one_hot = identity(27)
no_position = [[Value(0.0)] * 27 for _ in range(16)]
strengths = [0.0, 5.0, 20.0]
maps = []
for s in strengths:
    labels, m = attention_maps("annabella", one_hot, no_position, identity(27, s), identity(27),
                               identity(27), identity(27), n_head=1)
    maps.append(m[0])
draw(maps, labels, [f"s = {s:g}" for s in strengths], "one head: same letter, high score")

# %% [markdown]
# With *s* = 0 every score is equal, and each position simply averages all it can see. With
# *s* = 20 the last *a* of *annabella* splits its attention between the two *a*s before it and
# itself, and all but ignores the rest.

# %%
# NBVAL_CHECK_OUTPUT
print("the last 'a', s = 20, over", labels)
print(np.round(maps[-1][-1], 3).tolist())
