# %% [markdown]
# # Kata 06 · why the residual stream
#
# A block adds each sublayer's result back onto its input: `x = x + sublayer(rmsnorm(x))`.
# This notebook stacks **your** blocks (`katas/06_block/block.py`) with microGPT's sizes and
# initialisation, and compares them with the same sublayers chained *without* the additions.
# The question is the one training asks: how much gradient reaches the input? (The stored
# outputs come from the reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("06")

# %%
import math
import random

import matplotlib.pyplot as plt
from attention import attention
from block import LAYER_KEYS, block, feed_forward, rmsnorm
from mlp import matrix
from value import Value

N_EMBD, N_HEAD, STD = 16, 4, 0.08  # microGPT's sizes and initialisation
SHAPES = {"attn_wq": (N_EMBD, N_EMBD), "attn_wk": (N_EMBD, N_EMBD),
          "attn_wv": (N_EMBD, N_EMBD), "attn_wo": (N_EMBD, N_EMBD),
          "mlp_fc1": (4 * N_EMBD, N_EMBD), "mlp_fc2": (N_EMBD, 4 * N_EMBD)}

# %% [markdown]
# ## RMSNorm: the same size in, whatever the size of the stream

# %%
# NBVAL_CHECK_OUTPUT
for xs in ([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], [100.0, -3.0, 0.5, 7.0]):
    out = [v.data for v in rmsnorm([Value(x) for x in xs])]
    rms = math.sqrt(sum(v * v for v in out) / len(out))
    print(f"rmsnorm({xs}) = {[round(v, 5) for v in out]}  rms {rms:.5f}")

# %% [markdown]
# ## How much gradient gets back down the stack
#
# A stack of 16 layers with random weights processes one position (the first token, so
# attention passes its own value through), and `backward()` runs from a scalar read off the
# top (the sum of its 16 numbers). Every vector the stack computed on the way up now holds a
# gradient: how strongly the output depends on it. For a stack that did nothing at all, it
# would be √16 = 4 at every level.
#
# With the additions, each `+` hands the gradient straight to the layer below, and it reaches
# the bottom at about full strength. Chained without them, every layer multiplies the gradient
# by its small weights (std 0.08) and it fades with every layer it crosses. (Geometric mean
# over 8 random stacks. The last point is the input itself: inside the plain chain the
# vectors are several times smaller, and a smaller vector feeding an `rmsnorm` gets a
# proportionally larger gradient.)

# %%
DEPTH, SEEDS = 16, 8


def gradient_by_level(residual, seed):
    """Size of the gradient at the stack's input (level 0) and after each layer."""
    rng = random.Random(seed)
    x = [Value(rng.gauss(0, 1)) for _ in range(N_EMBD)]
    levels = [x]
    for _ in range(DEPTH):
        layer = {k: matrix(*SHAPES[k], STD, rng) for k in LAYER_KEYS}
        if residual:
            x = block(x, layer, [], [], N_HEAD)
        else:  # the same two sublayers, the additions left out
            x = attention(rmsnorm(x), layer["attn_wq"], layer["attn_wk"], layer["attn_wv"],
                          layer["attn_wo"], [], [], N_HEAD)
            x = feed_forward(rmsnorm(x), layer["mlp_fc1"], layer["mlp_fc2"])
        levels.append(x)
    sum(x).backward()
    return [math.sqrt(sum(v.grad**2 for v in level)) for level in levels]


def geometric_mean(rows):
    return [math.exp(sum(math.log(r[i]) for r in rows) / len(rows)) for i in range(len(rows[0]))]


with_res = geometric_mean([gradient_by_level(True, seed) for seed in range(SEEDS)])
without = geometric_mean([gradient_by_level(False, seed) for seed in range(SEEDS)])
below = list(range(DEPTH, -1, -1))  # level d has DEPTH - d layers above it
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(below, with_res, "o-", ms=3, label="block(): x + sublayer(rmsnorm(x))")
ax.plot(below, without, "o-", ms=3, label="sublayer(rmsnorm(x)), no addition")
ax.set_yscale("log")
ax.set_xlabel("layers between this vector and the output")
ax.set_ylabel("size of its gradient")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for d in (DEPTH - 1, DEPTH - 4, 0):
    print(f"{DEPTH - d:2} layer{'s' if DEPTH - d > 1 else ' '} down: gradient {with_res[d]:.3g} "
          "with the additions, "
          f"{without[d]:.3g} without")
