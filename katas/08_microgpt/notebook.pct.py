# %% [markdown]
# # Kata 08 · microGPT learns names
#
# Katas 01–07 assembled: a 4,192-parameter GPT made of `Value`s. This notebook builds **your**
# `microgpt` (`katas/08_microgpt/microgpt.py`), trains it for a short run on the names, draws
# its loss curve and what it learned, and makes up a few names. (The stored outputs come from
# the reference solution.) The full 1,000-step run is `scripts/microgpt.py`; a short run
# keeps this notebook to seconds.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("08", data=("names.txt",))

# %%
import math
import random
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
from microgpt import (
    BOS,
    LETTERS,
    VOCAB_SIZE,
    empty_cache,
    encode,
    forward,
    init_params,
    loss,
    parameters,
    sample,
    train,
)
from mlp import softmax

from harness import ROOT

names = (ROOT / "data" / "names.txt").read_text().split()
random.Random(42).shuffle(names)  # a fixed order: the same run every time
sequences = [encode(name) for name in names]

# %% [markdown]
# ## 4,192 parameters

# %%
# NBVAL_CHECK_OUTPUT
params = init_params(seed=42)
for name, weights in params.items():
    rows, cols = len(weights), len(weights[0])
    print(f"{name:16} {rows:3} x {cols:<3} = {rows * cols:5,}")
print(f"{'total':16} {len(parameters(params)):15,}")

# %% [markdown]
# Before training, the model knows nothing: its loss on a name is close to that of a uniform
# guess over the 27 tokens, ln 27 ≈ 3.30.

# %%
# NBVAL_CHECK_OUTPUT
first = loss(params, sequences[0]).data
print(f"initial loss on {names[0]!r}: {first:.2f}   (ln 27 = {math.log(27):.2f})")

# %% [markdown]
# ## A short run
#
# One name per step, Adam with the learning rate decaying linearly to 0, as in kata 07. A
# single step's loss is noisy (one name, some short and easy, some long and odd), so the plot
# also shows the mean over the last 20 steps.

# %%
STEPS = 200
losses = list(train(params, sequences, STEPS))

window = 20
smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
fig, ax = plt.subplots()
ax.plot(losses, color="tab:blue", alpha=0.3, lw=1, label="one step (one name)")
ax.plot(range(window - 1, STEPS), smooth, color="tab:blue", label=f"mean of {window} steps")
ax.axhline(math.log(VOCAB_SIZE), color="gray", ls="--", lw=1, label="uniform guess, ln 27")
ax.set_xlabel("step")
ax.set_ylabel("loss (nats per token)")
ax.set_title(f"microGPT, {STEPS} steps")
ax.legend()
plt.show()
print(f"mean loss over the first 20 steps {np.mean(losses[:20]):.2f}, "
      f"over the last 20 {np.mean(losses[-20:]):.2f}")

# %% [markdown]
# ## What it learned about the first letter
#
# After BOS, the model's next-token distribution is its guess at how a name begins. Next to
# it, how often each letter really begins a name: after a few hundred names the model has
# picked up the shape (many names begin with *a*, *j*, *k*, *m*; few with *q*, *u*, *x*).

# %%
keys, values = empty_cache()
model = [p.data for p in softmax(forward(params, BOS, 0, keys, values))][: len(LETTERS)]
starts = Counter(name[0] for name in names)
data = [starts[ch] / len(names) for ch in LETTERS]

x = np.arange(len(LETTERS))
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.bar(x - 0.2, data, width=0.4, label="names.txt", color="tab:gray")
ax.bar(x + 0.2, model, width=0.4, label=f"microGPT after {STEPS} steps", color="tab:blue")
ax.set_xticks(x, list(LETTERS))
ax.set_ylabel("probability")
ax.set_title("the first letter of a name")
ax.legend()
plt.show()

# %% [markdown]
# ## Made-up names
#
# Temperature 0.5, from a seeded `random.Random`: the same seed gives the same names.

# %%
rng = random.Random(7)
print(", ".join(sample(params, rng, temperature=0.5) for _ in range(12)))
