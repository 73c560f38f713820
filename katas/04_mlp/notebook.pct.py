# %% [markdown]
# # Kata 04 · an MLP learns names, and learns which letters are alike
#
# This notebook trains **your** `MLP` (`katas/04_mlp/mlp.py`) on the names for a few seconds:
# 3 letters of context, 2-number embeddings (so they can be drawn), 24 hidden units. It draws
# the loss falling towards the bigram model of kata 03, then the embedding the network learned
# for each letter. (The stored outputs come from the reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("04", data=("names.txt",))

# %%
import math
import random

import matplotlib.pyplot as plt
import numpy as np
from mlp import MLP, make_examples, mean_loss, num_params, softmax, train_step

from harness import ROOT

LETTERS, BOS = "abcdefghijklmnopqrstuvwxyz", 26  # ids as in kata 02: a..z = 0..25, BOS = 26
VOCAB_SIZE = 27
names = (ROOT / "data" / "names.txt").read_text().split()
random.Random(42).shuffle(names)  # a fixed order: the same run every time
CONTEXT, N_EMBD, N_HIDDEN = 3, 2, 24
examples = make_examples([[LETTERS.index(c) for c in name] for name in names], CONTEXT, BOS)
held_out, train_examples = examples[:2000], examples[2000:]

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(examples):,} examples from {len(names):,} names; "
      f"{num_params(VOCAB_SIZE, CONTEXT, N_EMBD, N_HIDDEN):,} parameters")

# %% [markdown]
# ## Training
#
# 500 steps of SGD on random batches of 32 examples: learning rate 0.5, then 0.05 for the
# last 100 steps. The dashed line is the bigram model's loss on the names (2.454, kata 03):
# one letter of memory, counted exactly from all 228,146 examples. In a few seconds of pure
# Python, having seen 16,000 examples, the MLP comes close to it.

# %%
model = MLP(VOCAB_SIZE, CONTEXT, N_EMBD, N_HIDDEN, random.Random(0))
batches = random.Random(1)
losses = []
for step in range(500):
    lr = 0.5 if step < 400 else 0.05
    losses.append(train_step(model, batches.sample(train_examples, 32), lr))

window = 25
smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(losses, color="tab:blue", alpha=0.3, lw=1, label="one batch")
ax.plot(range(window - 1, len(losses)), smooth, color="tab:blue", label=f"mean of {window}")
ax.axhline(math.log(27), color="gray", ls=":", lw=1, label="uniform guess, ln 27")
ax.axhline(2.454, color="tab:red", ls="--", lw=1, label="bigram (kata 03)")
ax.set_xlabel("step")
ax.set_ylabel("loss")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"loss on 2,000 held-out examples: {mean_loss(model, held_out).data:.2f}")

# %% [markdown]
# ## What the embedding learned
#
# Every letter is a point: its 2 learned numbers, which started as random draws. Letters
# that the network should treat alike (they follow the same contexts and lead to the same
# next letters) drift towards each other, because nearby points give nearby predictions.
# Nobody told it which letters are vowels, yet a, i, o and u (red) gather in one corner; e
# and y (also red) found places of their own.

# %%
fig, ax = plt.subplots(figsize=(5, 4.5))
for i in range(VOCAB_SIZE):
    x, y = (v.data for v in model.wte[i])
    label = "BOS" if i == BOS else LETTERS[i]
    color = "tab:red" if label in "aeiouy" else "tab:blue"
    ax.scatter(x, y, s=260, color=color, alpha=0.25)
    ax.annotate(label, (x, y), ha="center", va="center", fontsize=9)
ax.set_xlabel("embedding dimension 0")
ax.set_ylabel("embedding dimension 1")
fig.tight_layout()
plt.show()


# %% [markdown]
# ## Names it makes up
#
# Start from `BOS BOS BOS`, draw the next letter from the softmax of the logits, slide the
# window, until BOS comes back.

# %%
# NBVAL_CHECK_OUTPUT
def make_up(rng, max_len=20):
    window, letters = [BOS] * CONTEXT, ""
    while len(letters) < max_len:
        probs = [p.data for p in softmax(model(tuple(window)))]
        nxt = rng.choices(range(VOCAB_SIZE), weights=probs)[0]
        if nxt == BOS:
            break
        letters += LETTERS[nxt]
        window = window[1:] + [nxt]
    return letters


rng = random.Random(7)
print(", ".join(make_up(rng) for _ in range(12)))
