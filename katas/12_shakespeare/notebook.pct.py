# %% [markdown]
# # Kata 12 · training on Shakespeare, in pictures
#
# The whole loop: batches of random windows, AdamW with warmup and cosine, evaluation on text
# the model never trains on, the best checkpoint kept, early stopping. This notebook runs
# **your** `shakespeare.py` (`katas/12_shakespeare/`), with your GPT, schedule and sampler
# from katas 09–11. (The stored outputs come from the reference solution.) A real run takes
# minutes (`make train`); here a small model overfits a small slice of the play in seconds,
# which shows the same curves in miniature.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("12", "11", data=("tinyshakespeare.txt",))

# %%
import csv
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from gpt import GPT, GPTConfig
from sampling import generate
from shakespeare import (
    TrainConfig,
    get_batch,
    load_checkpoint,
    model_from_checkpoint,
    split_data,
    train,
)
from tokenizer import CharTokenizer

from harness import ROOT

torch.set_num_threads(1)  # models this small run fastest on one thread
text = (ROOT / "data" / "tinyshakespeare.txt").read_text()
tokenizer = CharTokenizer(text)

# %% [markdown]
# ## The data: 90% to train on, the last 10% to check with

# %%
# NBVAL_CHECK_OUTPUT
train_data, val_data = split_data(text, tokenizer)
print(f"{tokenizer.vocab_size} characters; {len(train_data):,} train ids, "
      f"{len(val_data):,} val ids")

# %% [markdown]
# A batch is a few windows cut at random places; the target `y` is the window shifted one
# character on, so every position of `x` has the next character to predict.

# %%
# NBVAL_CHECK_OUTPUT
x, y = get_batch(train_data, batch_size=2, block_size=40,
                 generator=torch.Generator().manual_seed(0))
for row in range(2):
    print("x:", repr(tokenizer.decode(x[row].tolist())))
    print("y:", repr(tokenizer.decode(y[row].tolist())))


# %% [markdown]
# ## A run in miniature
#
# A 2-layer, 64-dim GPT trained on the first 2,000 characters only, evaluated every 20 steps
# on the whole validation text. Early on both losses fall together; soon the model starts to
# memorise its 2,000 characters: the train loss keeps falling while the val loss turns up. That
# is overfitting. `train` keeps the checkpoint of the best val loss (`best.pt`) and stops once
# 8 evaluations in a row have not beaten it (`patience`).

# %%
def plot_run(steps, evals, title):
    """steps: (step, batch loss) pairs; evals: (step, train loss, val loss) triples."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    if steps:
        ax.plot(*zip(*steps), color="tab:blue", alpha=0.25, lw=0.8, label="train (one batch)")
    at, train_loss, val_loss = zip(*evals)
    ax.plot(at, train_loss, "o-", ms=3, color="tab:blue", label="train")
    ax.plot(at, val_loss, "o-", ms=3, color="tab:orange", label="val")
    best = min(evals, key=lambda e: e[2])
    ax.axvline(best[0], color="gray", ls="--", lw=1)
    ax.plot(best[0], best[2], "*", color="red", ms=12,
            label=f"best val {best[2]:.3f} at step {best[0]}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    plt.show()


run_dir = tempfile.TemporaryDirectory(prefix="gpt-katas-notebook-")
cfg = TrainConfig(batch_size=16, max_steps=600, lr=3e-3, min_lr=3e-4, warmup_steps=20,
                  eval_interval=20, eval_iters=4, patience=8, seed=1337, out_dir=run_dir.name)
torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=4,
                      n_embd=64))
events = []
result = train(model, tokenizer, train_data[:2000], val_data, cfg, log=events.append)

plot_run([(e["step"], e["loss"]) for e in events if e["kind"] == "step"],
         [(e["step"], e["train_loss"], e["val_loss"]) for e in events if e["kind"] == "eval"],
         "trained on 2,000 characters: the model overfits")
print(f"stopped at step {result['step']} ({result['stopped']}); best.pt holds step "
      f"{result['best_step']}, val loss {result['best_val']:.3f}")

# %% [markdown]
# Step through the same run one evaluation at a time (in Jupyter, with the kernel running):
# what `train` knew at that step, the best val loss so far, and how many evaluations in a row
# have not beaten it. When that count reaches the patience, 8, the run stops. The stored copy
# shows the evaluation at step 200.

# %%
import ipywidgets as widgets

from harness.notebook import interact

evals = [(e["step"], e["train_loss"], e["val_loss"]) for e in events if e["kind"] == "eval"]


def run_so_far(step):
    seen = [e for e in evals if e[0] <= step]
    best = min(seen, key=lambda e: e[2])
    waiting = len(seen) - 1 - seen.index(best)
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    ax.plot([e[0] for e in evals], [e[2] for e in evals], color="lightgray", lw=1)
    ax.plot([e[0] for e in seen], [e[1] for e in seen], "o-", ms=3, color="tab:blue",
            label="train")
    ax.plot([e[0] for e in seen], [e[2] for e in seen], "o-", ms=3, color="tab:orange",
            label="val")
    ax.plot(best[0], best[2], "*", color="red", ms=12, label=f"best val so far {best[2]:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    ax.set_title(f"step {seen[-1][0]}: {waiting} of 8 evaluations without a new best")
    ax.legend(fontsize=8)
    return fig


interact(run_so_far, step=widgets.IntSlider(value=200, min=evals[0][0], max=evals[-1][0],
                                            step=evals[1][0] - evals[0][0],
                                            description="step"))

# %% [markdown]
# Samples from `best.pt`, with your `generate` from kata 11 (temperature 0.8, top-k 40). A
# model that has seen 2,000 characters has picked up fragments of spelling and the shape of a
# play: short lines, line breaks, now and then a name and a colon.

# %%
best, _ = model_from_checkpoint(load_checkpoint(Path(run_dir.name) / "best.pt"))
prompt = torch.tensor([tokenizer.encode("\n")])
out = generate(best, prompt, 200, temperature=0.8, top_k=40,
               generator=torch.Generator().manual_seed(42))
print(tokenizer.decode(out[0].tolist()))


# %% [markdown]
# ## Your own run
#
# `make train` writes `runs/<preset>/metrics.csv` (one row per step and per evaluation) and
# `best.pt`. If there are runs, this cell draws the one with the best val loss and samples
# from its best checkpoint. On the full data and a GPU, the 10.7M-parameter model's val loss
# bottoms out around 1.5–1.6 after 1,500–2,500 steps and then rises: the same picture as
# above, at scale.

# %%
def read_run(metrics):
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [(int(r["step"]), float(r["loss"])) for r in rows if r["kind"] == "step"]
    evals = [(int(r["step"]), float(r["loss"]), float(r["val_loss"]))
             for r in rows if r["kind"] == "eval"]
    return steps, evals


runs = {path: read_run(path) for path in (ROOT / "runs").glob("*/metrics.csv")}
runs = {path: run for path, run in runs.items() if run[1]}  # evaluated at least once
if not runs:
    print("No run under runs/ yet. `make train` makes one (a few minutes on a CPU); "
          "then run this cell again.")
else:
    metrics = min(runs, key=lambda path: min(val for _, _, val in runs[path][1]))
    steps, evals = runs[metrics]
    plot_run(steps[:: max(1, len(steps) // 500)], evals, str(metrics.relative_to(ROOT)))
    if (metrics.parent / "best.pt").exists():
        best, run_tokenizer = model_from_checkpoint(load_checkpoint(metrics.parent / "best.pt"))
        out = generate(best, torch.tensor([run_tokenizer.encode("\n")]), 300, temperature=0.8,
                       top_k=40, generator=torch.Generator().manual_seed(42), use_cache=True)
        print(run_tokenizer.decode(out[0].tolist()))
