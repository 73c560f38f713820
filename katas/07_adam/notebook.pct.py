# %% [markdown]
# # Kata 07 · Adam, in pictures
#
# Plain gradient descent steps by `lr × gradient`; Adam steps by about `lr` whatever the
# gradient's size. This notebook runs **your** `Adam` (`katas/07_adam/adam.py`) next to plain
# gradient descent on problems small enough to draw. (The stored outputs come from the
# reference solution.)

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("07")

# %%
import matplotlib.pyplot as plt
import numpy as np
from adam import Adam, linear_decay
from value import Value


def descend(loss_fn, start_at, steps, optimizer=None, lr=None):
    """Minimise loss_fn(x, y) from start_at; return the (x, y) visited. With optimizer=None,
    plain gradient descent with learning rate lr; otherwise optimizer(params) builds one."""
    params = [Value(v) for v in start_at]
    opt = optimizer(params) if optimizer else None
    path = [tuple(p.data for p in params)]
    for _ in range(steps):
        for p in params:
            p.grad = 0.0
        loss_fn(*params).backward()
        if opt:
            opt.step()
        else:
            for p in params:
                p.data -= lr * p.grad
        path.append(tuple(p.data for p in params))
    return np.array(path)


# %% [markdown]
# ## Gradients of very different sizes
#
# The loss `1000·a + 0.001·b` has a gradient of 1000 for `a` and 0.001 for `b`. Gradient
# descent with `lr = 1e-4` moves `a` by 0.1 a step and `b` by a ten-millionth: one parameter
# races, the other never moves. Adam with `lr = 0.01` moves both by 0.01 a step.

# %%
def tilted(a, b):
    return 1000 * a + 0.001 * b


sgd = descend(tilted, (0.0, 0.0), 20, lr=1e-4)
adam = descend(tilted, (0.0, 0.0), 20, optimizer=lambda ps: Adam(ps, lr=0.01))
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, path, title in [(axes[0], sgd, "gradient descent, lr 1e-4"),
                        (axes[1], adam, "Adam, lr 0.01")]:
    ax.plot(range(1, 21), -path[1:, 0], label="a (gradient 1000)")
    ax.plot(range(1, 21), -path[1:, 1], "--", label="b (gradient 0.001)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("step")
axes[0].set_ylabel("distance moved (log scale)")
axes[0].legend()
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"after 20 steps  gradient descent: a {sgd[-1, 0]:+.6f}  b {sgd[-1, 1]:+.2e}")
print(f"                Adam:             a {adam[-1, 0]:+.6f}  b {adam[-1, 1]:+.6f}")


# %% [markdown]
# ## A long, narrow valley
#
# `x² + 30·y²` is a bowl 30 times steeper across (`y`) than along (`x`). Gradient descent's
# learning rate is capped by the steep direction: above `1/30` every step in `y` overshoots
# more than the last and it diverges. At `lr = 0.03` it zig-zags across the valley, and along
# it moves only as fast as that small rate allows. Adam divides each coordinate by its own
# gradient size, so it heads for the minimum in both directions at once; its momentum (`m`)
# carries it past the minimum, and it curls back in.

# %%
def valley(x, y):
    return x * x + 30 * y * y


START, STEPS = (-4.0, 1.0), 60
gd = descend(valley, START, STEPS, lr=0.03)
adam = descend(valley, START, STEPS, optimizer=lambda ps: Adam(ps, lr=0.3))
xs, ys = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-1.5, 1.5, 200))
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.contour(xs, ys, xs**2 + 30 * ys**2, levels=np.geomspace(0.05, 60, 12), colors="lightgray")
ax.plot(gd[:, 0], gd[:, 1], ".-", ms=3, label="gradient descent, lr 0.03")
ax.plot(adam[:, 0], adam[:, 1], ".-", ms=3, label="Adam, lr 0.3")
ax.plot(0, 0, "k*", ms=10)
ax.set_xlabel("x")
ax.set_ylabel("y")
ax.set_title(f"{STEPS} steps from {START} towards the minimum (star)")
ax.legend(loc="upper right")
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name, path in [("gradient descent", gd), ("Adam", adam)]:
    print(f"{name:16} loss after {STEPS} steps: {valley(*path[-1]):.4f}")

# %% [markdown]
# ## Why bias correction
#
# With a gradient that never changes, every step of a bias-corrected Adam is exactly `lr`.
# Without the correction, `m` and `v` start near 0 and the first steps are
# `lr · (1 − β1^t) / √(1 − β2^t)`: 1.5 `lr` at the first step with microGPT's betas, then
# drifting for dozens of steps. The line is that closed form; the dots are your `Adam`.

# %%
LR, B1, B2, T = 0.01, 0.85, 0.99, 60
p = Value(0.0)
opt = Adam([p], lr=LR, beta1=B1, beta2=B2)
steps = []
for _ in range(T):
    p.grad = 1.0
    before = p.data
    opt.step()
    steps.append(before - p.data)
t = np.arange(1, T + 1)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(t, LR * (1 - B1**t) / np.sqrt(1 - B2**t), label="without bias correction")
ax.plot(t, steps, "o", ms=3, label="your Adam")
ax.set_xlabel("step t")
ax.set_ylabel("step size")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"your Adam's step sizes: min {min(steps):.6f}, max {max(steps):.6f} (lr = {LR})")

# %% [markdown]
# ## microGPT's schedule
#
# In microGPT every gradient comes from one name, so it is noisy: a constant rate keeps
# Adam jittering around the minimum by about `lr` a step. `linear_decay(0.01, 1000)` starts
# at 0.01 and falls in a straight line, so the last steps are small; step 999 still gets a
# small positive rate, and no step ever gets a negative one.

# %%
# NBVAL_CHECK_OUTPUT
schedule = linear_decay(0.01, 1000)
for step in [0, 1, 500, 998, 999, 1000]:
    print(f"step {step:4}: lr {schedule(step):.6f}")
