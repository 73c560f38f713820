# %% [markdown]
# # Kata 01 · a gradient is a slope
#
# `backward()` answers one question for every input: if I nudge this number, how fast does
# the output move? For a function of one input that is the slope of its graph. This notebook
# builds a function out of **your** `Value` (`katas/01_value/value.py`), asks `backward()`
# for the slope at a few points, and draws each answer as a tangent line. (The stored outputs
# come from the reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("01")

# %%
import matplotlib.pyplot as plt
import numpy as np
from value import Value


def f(x):
    # only Value operations: every call builds a small graph that backward() can walk
    return x * x * 0.25 + (x * 1.5).tanh() * 2 - 1


def slope(x0):
    x = Value(x0)
    y = f(x)
    y.backward()
    return y.data, x.grad


# %% [markdown]
# ## Tangents from backward()
#
# The curve is `f` evaluated at 200 points; each short line starts at `(x0, f(x0))` with the
# slope your `backward()` put in `x.grad`. Where the gradient is right, every line just
# touches the curve.

# %%
xs = np.linspace(-4, 4, 200)
curve = [f(Value(float(x))).data for x in xs]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(xs, curve, color="black", lw=1.5, label="f(x)")
for x0 in [-3.0, -1.5, -0.5, 0.0, 0.7, 2.0, 3.2]:
    y0, g = slope(x0)
    dx = np.array([-0.7, 0.7])
    ax.plot(x0 + dx, y0 + g * dx, color="tab:orange", lw=2)
    ax.plot(x0, y0, "o", color="tab:orange", ms=4)
ax.set_xlabel("x")
ax.set_title("f(x) = x²/4 + 2·tanh(1.5x) − 1, with tangents from x.grad")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Checking a gradient without calculus
#
# Nudge the input by a small `h` each way and watch the output: `(f(x+h) − f(x−h)) / 2h`
# approaches the slope as `h` shrinks. The specs check your gradients the same way, and
# against PyTorch.

# %%
# NBVAL_CHECK_OUTPUT
h = 1e-5
print(f"{'x':>6} {'backward()':>12} {'nudging':>12}")
for x0 in [-3.0, -0.5, 0.0, 2.0]:
    _, g = slope(x0)
    nudged = (f(Value(x0 + h)).data - f(Value(x0 - h)).data) / (2 * h)
    print(f"{x0:6.1f} {g:12.6f} {nudged:12.6f}")

# %% [markdown]
# ## Two paths add up
#
# A value used twice gets a gradient along each use, and they add: that is why `backward()`
# uses `+=`. With `y = x·x + 3x` at `x = 2`, the product contributes `2 + 2` and the sum `3`.

# %%
# NBVAL_CHECK_OUTPUT
x = Value(2.0)
y = x * x + 3 * x
y.backward()
print(f"y = {y.data}, dy/dx = {x.grad}  (2x + 3 = {2 * 2.0 + 3})")
