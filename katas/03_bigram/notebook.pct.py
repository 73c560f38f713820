# %% [markdown]
# # Kata 03 · a table of counts is a language model, in pictures
#
# Count which character follows which over 32,033 names, normalise each row, and you have a
# model that scores and makes up names. This notebook runs **your** `bigram.py`
# (`katas/03_bigram/`) with your tokenizer from kata 02. (The stored outputs come from the
# reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("03", data=("names.txt",))

# %%
import math
import random

import matplotlib.pyplot as plt
import numpy as np
from bigram import bigram_probs, count_bigrams, nll, sample
from tokenizer import CharTokenizer

from harness import ROOT

names = (ROOT / "data" / "names.txt").read_text().split()
tok = CharTokenizer("".join(names), bos=True)
labels = [tok.itos.get(i, "BOS") for i in range(tok.vocab_size)]
counts = count_bigrams(names, tok)

# %% [markdown]
# ## The count table
#
# Row: the previous token; column: the next one; colour: how often that pair occurs in
# `[BOS] + name + [BOS]` (log scale). The BOS row is how names begin, the BOS column how they
# end; the BOS→BOS corner is white: no name is empty.

# %%
fig, ax = plt.subplots(figsize=(5.2, 5.2))
table = np.array(counts, dtype=float)
image = ax.imshow(np.log1p(table), cmap="Blues")
ax.set_xticks(range(tok.vocab_size), labels, fontsize=7, rotation=90)
ax.set_yticks(range(tok.vocab_size), labels, fontsize=7)
ax.set_xlabel("next")
ax.set_ylabel("previous")
ax.set_title("bigram counts over names.txt (log scale)")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"{int(table.sum()):,} bigrams counted (one per letter, plus the closing BOS)")
for prev, nxt in [("BOS", "a"), ("a", "BOS"), ("q", "u"), ("n", "BOS")]:
    i, j = labels.index(prev), labels.index(nxt)
    print(f"{prev:>3} -> {nxt:<3} {counts[i][j]:6,}")

# %% [markdown]
# ## Each row is a distribution
#
# Dividing each row by its total gives P(next | previous). Two rows: how a name begins (after
# BOS), and what follows a *q* (the last bar, B, is BOS: the name ends).

# %%
probs = bigram_probs(counts)
fig, axes = plt.subplots(1, 2, figsize=(10, 2.4), sharey=True)
for ax, prev in zip(axes, ["BOS", "q"]):
    ax.bar(range(tok.vocab_size), probs[labels.index(prev)])
    ax.set_xticks(range(tok.vocab_size), [label[0] for label in labels], fontsize=7)
    ax.set_title(f"P(next | {prev})")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Scoring: negative log-likelihood
#
# The average of −log P(next | previous) over every bigram of every name. A uniform guess over
# 27 tokens scores ln 27 ≈ 3.2958; the count table does much better.

# %%
# NBVAL_CHECK_OUTPUT
print(f"uniform guess:   {math.log(27):.4f}")
print(f"counts (k = 0):  {nll(probs, names, tok):.4f}")
print(f"add-one (k = 1): {nll(bigram_probs(counts, k=1), names, tok):.4f}")

# %% [markdown]
# ## Smoothing, on names the table has not seen
#
# Count on 90% of the names and score the other 10%. With k = 0 a pair never seen in training
# gets probability 0 and the held-out score is infinite; adding k to every count fixes that,
# and a small k costs next to nothing. With 200,000 bigrams for 729 cells the table hardly
# overfits: the two curves lie on top of each other. Too much smoothing drifts towards the
# uniform guess.

# %%
shuffled = names[:]
random.Random(0).shuffle(shuffled)
split = int(0.9 * len(shuffled))
fit, held_out = shuffled[:split], shuffled[split:]
fit_counts = count_bigrams(fit, tok)
ks = [0.01, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000]
train_nll = [nll(bigram_probs(fit_counts, k), fit, tok) for k in ks]
held_nll = [nll(bigram_probs(fit_counts, k), held_out, tok) for k in ks]

fig, ax = plt.subplots()
ax.plot(ks, train_nll, "o-", label="the 90% it counted")
ax.plot(ks, held_nll, "o-", label="the 10% held out")
ax.axhline(math.log(27), color="gray", ls="--", lw=1, label="uniform guess")
ax.set_xscale("log")
ax.set_xlabel("k (added to every count)")
ax.set_ylabel("NLL per bigram")
ax.legend(loc="center left")
plt.show()
print(f"held out, k = 0: {nll(bigram_probs(fit_counts, 0), held_out, tok)}")

# %% [markdown]
# ## Made-up names
#
# Start after BOS, draw the next letter from its row, stop at BOS. A bigram model only knows
# the previous letter, so most of these are not quite names: that is what kata 04 onwards fix.

# %%
# NBVAL_CHECK_OUTPUT
rng = random.Random(42)
print(", ".join(sample(probs, tok, rng) for _ in range(15)))
