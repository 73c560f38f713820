"""(Re)build the lesson notebooks from their sources below, run them, and store them with outputs.

    .venv/bin/python scripts/build_notebooks.py            # every notebook
    .venv/bin/python scripts/build_notebooks.py 05 11      # only these katas

The sources of every notebook live in this file, in the percent format: a line `# %%` starts
a code cell, `# %% [markdown]` a markdown cell (plain markdown, no `# ` prefix). Edit them
here, never in the .ipynb, and rebuild: tests/test_notebooks.py fails when a stored notebook
and its source differ.

A notebook is run with the reference solutions (GPT_KATAS_IMPL=solutions), in its own
directory, as `make notebooks` (nbval) runs it, and written only if no cell raised. Cells
whose first line is `# NBVAL_CHECK_OUTPUT` print something deterministic: nbval compares it
with the stored output. Keep each notebook to seconds of CPU and its figures small.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.katas import find_kata  # noqa: E402

KATAS_DIR = ROOT / "katas"
MAX_BYTES = 300_000  # a stored notebook must stay small: its PNGs are inline base64
CELL_TIMEOUT = 120  # seconds; a lesson cell takes seconds

NOTEBOOKS: dict[str, str] = {}  # path under katas/ -> percent-format source


# --- building ------------------------------------------------------------------------------


def parse_cells(source: str) -> list[nbformat.NotebookNode]:
    """Percent-format text -> notebook cells, with stable ids (cell-01, cell-02, ...)."""
    cells, kind, lines = [], None, []

    def flush():
        if kind is not None:
            text = "\n".join(lines).strip("\n")
            cell = (nbformat.v4.new_markdown_cell if kind == "markdown"
                    else nbformat.v4.new_code_cell)(text)
            cell.id = f"cell-{len(cells) + 1:02d}"
            cells.append(cell)

    for line in source.strip("\n").splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def new_notebook(source: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=parse_cells(source))
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python"},
    }
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, env: dict[str, str] | None = None,
            ) -> list[str]:
    """Run every code cell of nb in a fresh kernel started in cwd; store the outputs in nb.

    Returns the errors raised ("cell-03: ValueError: ..."), empty when every cell ran.
    """
    kernel_env = {**os.environ, **(env or {})}
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=kernel_env,
                                       extra_arguments=["--IPKernelApp.log_level=ERROR"])
    errors = []
    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            outputs: list[nbformat.NotebookNode] = []

            def keep(msg, outputs=outputs):
                kind = msg["msg_type"]
                if kind == "clear_output":
                    outputs.clear()
                elif kind in ("stream", "display_data", "execute_result", "error"):
                    out = nbformat.v4.output_from_msg(msg)
                    last = outputs[-1] if outputs else None
                    if (kind == "stream" and last is not None and last.output_type == "stream"
                            and last.name == out.name):
                        last.text += out.text  # one block per stream, as Jupyter shows it
                    else:
                        outputs.append(out)

            reply = client.execute_interactive(cell.source, output_hook=keep,
                                               timeout=CELL_TIMEOUT)
            cell.outputs = outputs
            cell.execution_count = reply["content"].get("execution_count")
            if reply["content"]["status"] != "ok":
                content = reply["content"]
                errors.append(f"{cell.id}: {content.get('ename')}: {content.get('evalue')}")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return errors


def build(path: str) -> bool:
    target = KATAS_DIR / path
    nb = new_notebook(NOTEBOOKS[path])
    start = time.monotonic()
    errors = execute(nb, target.parent, {"GPT_KATAS_IMPL": "solutions", "GPT_KATAS_REF": ""})
    seconds = time.monotonic() - start
    if errors:
        print(f"✗ {path}: not written, a cell raised:\n  " + "\n  ".join(errors))
        return False
    text = nbformat.writes(nb) + "\n"
    target.write_text(text)
    size = len(text.encode())
    warning = f"  (over {MAX_BYTES:,} bytes: make the figures smaller)" if size > MAX_BYTES else ""
    print(f"✓ {path}: {seconds:.1f}s, {size / 1000:.0f} KB{warning}")
    return size <= MAX_BYTES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("katas", nargs="*", help="kata numbers or names (default: all)")
    args = parser.parse_args(argv)
    try:
        wanted = {find_kata(k).dirname for k in args.katas}
    except ValueError as err:
        parser.exit(2, f"{err}\n")
    chosen = [p for p in NOTEBOOKS if not wanted or p.split("/")[0] in wanted]
    if not chosen:
        print(f"no notebook for {', '.join(sorted(wanted))}; there are: {', '.join(NOTEBOOKS)}")
        return 2
    return 0 if all([build(path) for path in chosen]) else 1


# --- the notebooks -------------------------------------------------------------------------
# Each starts with harness.notebook.start(...): it imports the learner's code (or the
# reference) through the harness and stops the notebook politely when a kata is a stub.

NOTEBOOKS["01_value/value.ipynb"] = r'''
# %% [markdown]
# Kata 01 · a gradient is a slope

`backward()` answers one question for every input: if I nudge this number, how fast does
the output move? For a function of one input that is the slope of its graph. This notebook
builds a function out of **your** `Value` (`katas/01_value/value.py`), asks `backward()`
for the slope at a few points, and draws each answer as a tangent line. (The stored outputs
come from the reference solution.)

# %%
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
## Tangents from backward()

The curve is `f` evaluated at 200 points; each short line starts at `(x0, f(x0))` with the
slope your `backward()` put in `x.grad`. Where the gradient is right, every line just
touches the curve.

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
## Checking a gradient without calculus

Nudge the input by a small `h` each way and watch the output: `(f(x+h) − f(x−h)) / 2h`
approaches the slope as `h` shrinks. The specs check your gradients the same way, and
against PyTorch.

# %%
# NBVAL_CHECK_OUTPUT
h = 1e-5
print(f"{'x':>6} {'backward()':>12} {'nudging':>12}")
for x0 in [-3.0, -0.5, 0.0, 2.0]:
    _, g = slope(x0)
    nudged = (f(Value(x0 + h)).data - f(Value(x0 - h)).data) / (2 * h)
    print(f"{x0:6.1f} {g:12.6f} {nudged:12.6f}")

# %% [markdown]
## Two paths add up

A value used twice gets a gradient along each use, and they add: that is why `backward()`
uses `+=`. With `y = x·x + 3x` at `x = 2`, the product contributes `2 + 2` and the sum `3`.

# %%
# NBVAL_CHECK_OUTPUT
x = Value(2.0)
y = x * x + 3 * x
y.backward()
print(f"y = {y.data}, dy/dx = {x.grad}  (2x + 3 = {2 * 2.0 + 3})")
'''


NOTEBOOKS["02_tokenizer/tokenizer.ipynb"] = r'''
# %% [markdown]
# Kata 02 · the tokenizer, in pictures

A language model reads numbers, not letters. Your `CharTokenizer` decides which number each
character gets. This notebook runs **your** tokenizer (`katas/02_tokenizer/tokenizer.py`) on
the two corpora of the course. The outputs stored with it come from the reference solution;
run it yourself (Run All) to see what your code makes of the same text.

# %%
from harness.notebook import start

start("02", data=("names.txt", "tinyshakespeare.txt"))

# %%
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
from tokenizer import CharTokenizer

from harness import ROOT

names = (ROOT / "data" / "names.txt").read_text().split()
shakespeare = (ROOT / "data" / "tinyshakespeare.txt").read_text()

# %% [markdown]
## The names vocabulary: 26 letters and one BOS

`sorted(set(text))` gives `a`..`z` the ids 0..25; `bos=True` adds one more id, 26, the
marker that starts and ends every name.

# %%
# NBVAL_CHECK_OUTPUT
name_tok = CharTokenizer("".join(names), bos=True)
print(f"{len(names):,} names -> {name_tok}")
print("chars:", "".join(name_tok.chars))
print("BOS id:", name_tok.bos_id)

# %% [markdown]
Every id of the vocabulary and how often it occurs once each name is wrapped as
`[BOS] + name + [BOS]`: the counts come from your `encode`. BOS is the most frequent token
of all (two per name), and a bigram model (kata 03) starts from these very pairs.

# %%
counts = Counter()
for name in names:
    counts.update([name_tok.bos_id, *name_tok.encode(name), name_tok.bos_id])

ids = range(name_tok.vocab_size)
labels = [name_tok.itos.get(i, "BOS") for i in ids]
fig, ax = plt.subplots(figsize=(8, 2.6))
ax.bar(ids, [counts[i] for i in ids],
       color=["tab:orange" if i == name_tok.bos_id else "tab:blue" for i in ids])
ax.set_xticks(list(ids), [f"{label}\n{i}" for i, label in zip(ids, labels)], fontsize=7)
ax.set_ylabel("occurrences")
ax.set_title("names.txt: each id (character above its number) and how often it occurs")
plt.show()

# %% [markdown]
Round trip: `decode(encode(name))` gives the name back, and `decode` leaves BOS out.

# %%
# NBVAL_CHECK_OUTPUT
for name in ["emma", "olivia", "xavier"]:
    ids = [name_tok.bos_id, *name_tok.encode(name), name_tok.bos_id]
    print(f"{name:>7} -> {ids} -> {name_tok.decode(ids)!r}")

# %% [markdown]
## Shakespeare: 65 characters

The same class on tiny Shakespeare. Sorted order puts the newline first (id 0), then the
space, punctuation, capitals and finally the lower-case letters.

# %%
# NBVAL_CHECK_OUTPUT
tok = CharTokenizer(shakespeare)
print(tok)
print(repr("".join(tok.chars)))

# %% [markdown]
What the model actually sees: the opening lines of the play (blank lines left out) as ids,
one cell per character, coloured by its id. Capitals (low ids, dark) stand out from the lower case.

# %%
lines = [line for line in shakespeare.splitlines()[:12] if line][:5]
width = max(len(line) for line in lines)
grid = np.full((len(lines), width), np.nan)
for row, line in enumerate(lines):
    grid[row, : len(line)] = tok.encode(line)

fig, ax = plt.subplots(figsize=(10, 1.9))
image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=tok.vocab_size - 1, aspect="auto")
for row, line in enumerate(lines):
    for col, ch in enumerate(line):
        ax.text(col, row, ch, ha="center", va="center", fontsize=8,
                color="white" if grid[row, col] < 40 else "black")
ax.set_axis_off()
fig.colorbar(image, ax=ax, label="id", pad=0.01)
ax.set_title("the first lines of tiny Shakespeare, as ids")
plt.show()

# %% [markdown]
The whole corpus round-trips, character for character:

# %%
# NBVAL_CHECK_OUTPUT
ids = tok.encode(shakespeare)
print(f"{len(ids):,} ids; decode(encode(text)) == text: {tok.decode(ids) == shakespeare}")
print("the first 20 ids:", ids[:20])

# %% [markdown]
## What is not in the vocabulary is an error, never a silent drop

# %%
# NBVAL_CHECK_OUTPUT
try:
    name_tok.encode("zoë")
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
A checkpoint carries the vocabulary as JSON, so that sampling later uses the very same ids:

# %%
# NBVAL_CHECK_OUTPUT
saved = name_tok.to_dict()
same = CharTokenizer.from_dict(saved)
print(sorted(saved), "->", same, "same ids:", same.stoi == name_tok.stoi)
'''

NOTEBOOKS["03_bigram/bigram.ipynb"] = r'''
# %% [markdown]
# Kata 03 · a table of counts is a language model, in pictures

Count which character follows which over 32,033 names, normalise each row, and you have a
model that scores and makes up names. This notebook runs **your** `bigram.py`
(`katas/03_bigram/`) with your tokenizer from kata 02. (The stored outputs come from the
reference solution.)

# %%
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
## The count table

Row: the previous token; column: the next one; colour: how often that pair occurs in
`[BOS] + name + [BOS]` (log scale). The BOS row is how names begin, the BOS column how they
end; the BOS→BOS corner is white: no name is empty.

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
## Each row is a distribution

Dividing each row by its total gives P(next | previous). Two rows: how a name begins (after
BOS), and what follows a *q* (the last bar, B, is BOS: the name ends).

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
## Scoring: negative log-likelihood

The average of −log P(next | previous) over every bigram of every name. A uniform guess over
27 tokens scores ln 27 ≈ 3.2958; the count table does much better.

# %%
# NBVAL_CHECK_OUTPUT
print(f"uniform guess:   {math.log(27):.4f}")
print(f"counts (k = 0):  {nll(probs, names, tok):.4f}")
print(f"add-one (k = 1): {nll(bigram_probs(counts, k=1), names, tok):.4f}")

# %% [markdown]
## Smoothing, on names the table has not seen

Count on 90% of the names and score the other 10%. With k = 0 a pair never seen in training
gets probability 0 and the held-out score is infinite; adding k to every count fixes that,
and a small k costs next to nothing. With 200,000 bigrams for 729 cells the table hardly
overfits: the two curves lie on top of each other. Too much smoothing drifts towards the
uniform guess.

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
## Made-up names

Start after BOS, draw the next letter from its row, stop at BOS. A bigram model only knows
the previous letter, so most of these are not quite names: that is what kata 04 onwards fix.

# %%
# NBVAL_CHECK_OUTPUT
rng = random.Random(42)
print(", ".join(sample(probs, tok, rng) for _ in range(15)))
'''

NOTEBOOKS["04_mlp/mlp.ipynb"] = r'''
# %% [markdown]
# Kata 04 · an MLP learns names, and learns which letters are alike

This notebook trains **your** `MLP` (`katas/04_mlp/mlp.py`) on the names for a few seconds:
3 letters of context, 2-number embeddings (so they can be drawn), 24 hidden units. It draws
the loss falling towards the bigram model of kata 03, then the embedding the network learned
for each letter. (The stored outputs come from the reference solution.)

# %%
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
## Training

500 steps of SGD on random batches of 32 examples: learning rate 0.5, then 0.05 for the
last 100 steps. The dashed line is the bigram model's loss on the names (2.454, kata 03):
one letter of memory, counted exactly from all 228,146 examples. In a few seconds of pure
Python, having seen 16,000 examples, the MLP comes close to it.

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
## What the embedding learned

Every letter is a point: its 2 learned numbers, which started as random draws. Letters
that the network should treat alike (they follow the same contexts and lead to the same
next letters) drift towards each other, because nearby points give nearby predictions.
Nobody told it which letters are vowels, yet a, i, o and u (red) gather in one corner; e
and y (also red) found places of their own.

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
## Names it makes up

Start from `BOS BOS BOS`, draw the next letter from the softmax of the logits, slide the
window, until BOS comes back.

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
'''


NOTEBOOKS["05_attention/attention.ipynb"] = r'''
# %% [markdown]
# Kata 05 · causal attention, in pictures

At position *t*, attention mixes the values of positions 0..*t* with weights that come from a
softmax over the scores q·k/√d. This notebook runs **your** `attention` from
`katas/05_attention/attention.py` one position at a time, as microGPT does, over a real name,
and draws the weights it returns through `weights_out`: one row per position, one square
per earlier position it may read. (The stored outputs come from the reference solution.)

# %%
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
## Four heads, untrained

An attention layer of microGPT's size (16 dims, 4 heads of 4 dims) with random weights, on
the name *isabella*. Every row is a probability distribution over the positions up to and
including its own. Above the diagonal is grey: position *t* never sees a later token,
because when *t* is processed the cache holds nothing later.

# %%
rng = random.Random(0)
n_embd, n_head = 16, 4
wte, wpe = matrix(27, n_embd, 1.0, rng), matrix(16, n_embd, 1.0, rng)
wq, wk, wv, wo = (matrix(n_embd, n_embd, 0.5, rng) for _ in range(4))

labels, maps = attention_maps("isabella", wte, wpe, wq, wk, wv, wo, n_head)
draw(maps, labels, [f"head {h}" for h in range(n_head)], "random weights, the name 'isabella'")

# %%
# NBVAL_CHECK_OUTPUT
rows = maps.reshape(-1, maps.shape[-1])
print("every row sums to 1:", bool(np.allclose(np.nansum(rows, axis=1), 1.0)))
print("weights per row:", [int(n) for n in np.sum(~np.isnan(maps[0]), axis=1)])
print("position 0 can only attend to itself:", maps[:, 0, 0].tolist())

# %% [markdown]
## A head that looks things up

Attention is a soft dictionary look-up: the query asks, every key answers with a score. Build
one head by hand. The embedding of a token is its one-hot vector (27 dims, one head of 27
dims, no position), `wq` is the identity times a strength *s*, and `wk` the identity. Then
q·k is *s* for two positions that hold the same letter and 0 otherwise: each position
attends to the earlier copies of its own letter (and to itself). Softmax turns the score gap
*s*/√27 into weights: the larger *s*, the sharper the look-up.

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
With *s* = 0 every score is equal, and each position simply averages all it can see. With
*s* = 20 the last *a* of *annabella* splits its attention between the two *a*s before it and
itself, and all but ignores the rest.

# %%
# NBVAL_CHECK_OUTPUT
print("the last 'a', s = 20, over", labels)
print(np.round(maps[-1][-1], 3).tolist())
'''

NOTEBOOKS["06_block/block.ipynb"] = r'''
# %% [markdown]
# Kata 06 · why the residual stream

A block adds each sublayer's result back onto its input: `x = x + sublayer(rmsnorm(x))`.
This notebook stacks **your** blocks (`katas/06_block/block.py`) with microGPT's sizes and
initialisation, and compares them with the same sublayers chained *without* the additions.
The question is the one training asks: how much gradient reaches the input? (The stored
outputs come from the reference solution.)

# %%
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
## RMSNorm: the same size in, whatever the size of the stream

# %%
# NBVAL_CHECK_OUTPUT
for xs in ([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], [100.0, -3.0, 0.5, 7.0]):
    out = [v.data for v in rmsnorm([Value(x) for x in xs])]
    rms = math.sqrt(sum(v * v for v in out) / len(out))
    print(f"rmsnorm({xs}) = {[round(v, 5) for v in out]}  rms {rms:.5f}")

# %% [markdown]
## How much gradient gets back down the stack

A stack of 16 layers with random weights processes one position (the first token, so
attention passes its own value through), and `backward()` runs from a scalar read off the
top (the sum of its 16 numbers). Every vector the stack computed on the way up now holds a
gradient: how strongly the output depends on it. For a stack that did nothing at all, it
would be √16 = 4 at every level.

With the additions, each `+` hands the gradient straight to the layer below, and it reaches
the bottom at about full strength. Chained without them, every layer multiplies the gradient
by its small weights (std 0.08) and it fades with every layer it crosses. (Geometric mean
over 8 random stacks. The last point is the input itself: inside the plain chain the
vectors are several times smaller, and a smaller vector feeding an `rmsnorm` gets a
proportionally larger gradient.)

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
'''


NOTEBOOKS["07_adam/adam.ipynb"] = r'''
# %% [markdown]
# Kata 07 · Adam, in pictures

Plain gradient descent steps by `lr × gradient`; Adam steps by about `lr` whatever the
gradient's size. This notebook runs **your** `Adam` (`katas/07_adam/adam.py`) next to plain
gradient descent on problems small enough to draw. (The stored outputs come from the
reference solution.)

# %%
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
## Gradients of very different sizes

The loss `1000·a + 0.001·b` has a gradient of 1000 for `a` and 0.001 for `b`. Gradient
descent with `lr = 1e-4` moves `a` by 0.1 a step and `b` by a ten-millionth: one parameter
races, the other never moves. Adam with `lr = 0.01` moves both by 0.01 a step.

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
## A long, narrow valley

`x² + 30·y²` is a bowl 30 times steeper across (`y`) than along (`x`). Gradient descent's
learning rate is capped by the steep direction: above `1/30` every step in `y` overshoots
more than the last and it diverges. At `lr = 0.03` it zig-zags across the valley, and along
it moves only as fast as that small rate allows. Adam divides each coordinate by its own
gradient size, so it heads for the minimum in both directions at once; its momentum (`m`)
carries it past the minimum, and it curls back in.

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
## Why bias correction

With a gradient that never changes, every step of a bias-corrected Adam is exactly `lr`.
Without the correction, `m` and `v` start near 0 and the first steps are
`lr · (1 − β1^t) / √(1 − β2^t)`: 1.5 `lr` at the first step with microGPT's betas, then
drifting for dozens of steps. The line is that closed form; the dots are your `Adam`.

# %%
LR, B1, B2, T = 0.01, 0.85, 0.99, 60
p = Value(0.0)
opt = Adam([p], lr=LR, beta1=B1, beta2=B2)
steps = []
for t in range(1, T + 1):
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
## microGPT's schedule

In microGPT every gradient comes from one name, so it is noisy: a constant rate keeps
Adam jittering around the minimum by about `lr` a step. `linear_decay(0.01, 1000)` starts
at 0.01 and falls in a straight line, so the last steps are small; step 999 still gets a
small positive rate, and no step ever gets a negative one.

# %%
# NBVAL_CHECK_OUTPUT
schedule = linear_decay(0.01, 1000)
for step in [0, 1, 500, 998, 999, 1000]:
    print(f"step {step:4}: lr {schedule(step):.6f}")
'''


NOTEBOOKS["08_microgpt/microgpt.ipynb"] = r'''
# %% [markdown]
# Kata 08 · microGPT learns names

Katas 01–07 assembled: a 4,192-parameter GPT made of `Value`s. This notebook builds **your**
`microgpt` (`katas/08_microgpt/microgpt.py`), trains it for a short run on the names, draws
its loss curve and what it learned, and makes up a few names. (The stored outputs come from
the reference solution.) The full 1,000-step run is `scripts/microgpt.py`; a short run
keeps this notebook to seconds.

# %%
from harness.notebook import start

start("08", data=("names.txt",))

# %%
import math
import random
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
from microgpt import (BOS, LETTERS, VOCAB_SIZE, empty_cache, encode, forward, init_params,
                      loss, parameters, sample, train)
from mlp import softmax

from harness import ROOT

names = (ROOT / "data" / "names.txt").read_text().split()
random.Random(42).shuffle(names)  # a fixed order: the same run every time
sequences = [encode(name) for name in names]

# %% [markdown]
## 4,192 parameters

# %%
# NBVAL_CHECK_OUTPUT
params = init_params(seed=42)
for name, weights in params.items():
    rows, cols = len(weights), len(weights[0])
    print(f"{name:16} {rows:3} x {cols:<3} = {rows * cols:5,}")
print(f"{'total':16} {len(parameters(params)):15,}")

# %% [markdown]
Before training, the model knows nothing: its loss on a name is close to that of a uniform
guess over the 27 tokens, ln 27 ≈ 3.30.

# %%
# NBVAL_CHECK_OUTPUT
first = loss(params, sequences[0]).data
print(f"initial loss on {names[0]!r}: {first:.2f}   (ln 27 = {math.log(27):.2f})")

# %% [markdown]
## A short run

One name per step, Adam with the learning rate decaying linearly to 0, as in kata 07. A
single step's loss is noisy (one name, some short and easy, some long and odd), so the plot
also shows the mean over the last 20 steps.

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
## What it learned about the first letter

After BOS, the model's next-token distribution is its guess at how a name begins. Next to
it, how often each letter really begins a name: after a few hundred names the model has
picked up the shape (many names begin with *a*, *j*, *k*, *m*; few with *q*, *u*, *x*).

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
## Made-up names

Temperature 0.5, from a seeded `random.Random`: the same seed gives the same names.

# %%
rng = random.Random(7)
print(", ".join(sample(params, rng, temperature=0.5) for _ in range(12)))
'''

NOTEBOOKS["09_gpt/gpt.ipynb"] = r'''
# %% [markdown]
# Kata 09 · the GPT in PyTorch: where its parameters are, and what the KV cache saves

This notebook builds **your** `GPT` (`katas/09_gpt/gpt.py`) at the three preset sizes,
counts its parameters by part, and times generation with and without your `KVCache`.
(The stored outputs come from the reference solution; the timings are from a 2-core CPU.)

# %%
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
## Where the parameters are

Each block holds about `12·n_embd²` parameters: `4·n_embd²` in attention (query, key, value
and output projections) and `8·n_embd²` in the feed-forward layer (`n_embd → 4·n_embd →
n_embd`). The token embedding is shared with the output layer (weight tying), so it counts
once.

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
## Before training

With weights drawn at `std 0.02`, the logits are close to 0, every character gets about
the same probability, and the loss is close to that of a uniform guess over 65 characters.

# %%
# NBVAL_CHECK_OUTPUT
model = models["small"].eval()
idx = torch.randint(0, 65, (4, 256))
targets = torch.randint(0, 65, (4, 256))
with torch.no_grad():
    _, loss = model(idx, targets)
print(f"initial loss {loss.item():.2f}, ln 65 = {math.log(65):.2f}")

# %% [markdown]
## Who sees whom

`causal_mask(n_query, n_key)`: a full forward pass has one query per position, and each
query sees its own position and the ones before it (left). With a KV cache holding 5
positions, a call with 3 new tokens has 3 queries, at positions 5, 6 and 7: they see all 5
cached keys and the new ones up to their own (right). A generation step is the case of one
new token, which sees everything.

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
## What the KV cache saves

Generating token `t` without a cache runs the model over all `t` tokens so far; with the
cache it runs over the one new token and reuses the keys and values of the others. Both give
the same logits (checked below); the time per token is what differs. The model is the
untrained `small` preset (3.2M parameters); greedy decoding from one token up to
`block_size` tokens.

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
'''


NOTEBOOKS["10_schedules/schedules.ipynb"] = r'''
# %% [markdown]
# Kata 10 · the learning-rate schedule and gradient clipping, in pictures

The training loop of kata 12 asks your `lr_at` for the learning rate of every step, and
clips the gradients with your `clip_grad_norm` before each update. This notebook draws what
**your** code from `katas/10_schedules/schedules.py` does. (The stored outputs come from the
reference solution.)

# %%
from harness.notebook import start

start("10")

# %%
import matplotlib.pyplot as plt
import torch
from schedules import clip_grad_norm, lr_at, param_groups
from torch import nn

# %% [markdown]
## Warmup, then cosine

The Shakespeare run's settings: `max_lr` 1e-3, `min_lr` 1e-4, 100 warmup steps, 5,000 steps.
The rate climbs in a straight line from 0, peaks at step 100, follows half a cosine down to
`min_lr` at step 5,000 and stays there.

# %%
MAX_LR, MIN_LR, WARMUP, MAX_STEPS = 1e-3, 1e-4, 100, 5000
steps = range(0, 6001)
lrs = [lr_at(s, MAX_LR, MIN_LR, WARMUP, MAX_STEPS) for s in steps]

fig, (whole, zoom) = plt.subplots(1, 2, figsize=(9, 3), width_ratios=[2, 1])
whole.plot(steps, lrs)
whole.axvline(WARMUP, color="gray", ls=":", lw=1)
whole.axvline(MAX_STEPS, color="gray", ls=":", lw=1)
whole.set_xlabel("step")
whole.set_ylabel("learning rate")
whole.set_title("lr_at over a run (dotted: warmup_steps, max_steps)")
near = range(90, 111)
zoom.plot(near, [lrs[s] for s in near], marker="o", ms=3)
zoom.axvline(WARMUP, color="gray", ls=":", lw=1)
zoom.set_xlabel("step")
zoom.set_title("around the warmup boundary")
fig.tight_layout()
plt.show()

# %% [markdown]
The endpoints are exact and there is no jump at the boundary: step 99 is one small step
below the peak, step 100 is the peak, step 101 has barely started down.

# %%
# NBVAL_CHECK_OUTPUT
for step in [0, 1, 50, 99, 100, 101, 2550, 4999, 5000, 6000]:
    print(f"step {step:5}: lr = {lr_at(step, MAX_LR, MIN_LR, WARMUP, MAX_STEPS):.6e}")

# %% [markdown]
## Clipping: shrink long gradients onto the sphere, leave short ones alone

Each arrow is the whole gradient of a model with two parameters. `clip_grad_norm` with
`max_norm=1` rescales every arrow longer than 1 to length 1, keeping its direction, and
leaves shorter ones exactly as they were.

# %%
torch.manual_seed(0)
gradients = torch.randn(14, 2) * 1.2
fig, ax = plt.subplots(figsize=(3.8, 3.8))
ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="gray", ls="--"))
for g in gradients:
    param = torch.zeros(2, requires_grad=True)
    param.grad = g.clone()
    norm = clip_grad_norm([param], max_norm=1.0)
    clipped = param.grad
    if norm > 1.0:
        ax.annotate("", xy=tuple(g), xytext=(0, 0),
                    arrowprops={"arrowstyle": "->", "color": "tab:red", "alpha": 0.35})
    ax.annotate("", xy=tuple(clipped), xytext=(0, 0),
                arrowprops={"arrowstyle": "->", "color": "tab:blue"})
ax.set_xlim(-3, 3)
ax.set_ylim(-3, 3)
ax.set_aspect("equal")
ax.set_title("before (red) and after (blue)")
plt.show()

# %% [markdown]
The norm is global: over *all* parameters together, so clipping scales every gradient by the
same factor and the direction of the whole update is kept.

# %%
# NBVAL_CHECK_OUTPUT
a, b = torch.zeros(3, requires_grad=True), torch.zeros(4, requires_grad=True)
a.grad, b.grad = torch.full((3,), 2.0), torch.full((4,), 1.5)
norm = clip_grad_norm([a, b], max_norm=1.0)
print(f"norm before: {norm.item():.4f}  (sqrt(3 * 2^2 + 4 * 1.5^2) = {(12 + 9) ** 0.5:.4f})")
print(f"norm after:  {torch.cat([a.grad, b.grad]).norm().item():.4f}")
print(f"ratio a/b kept: {a.grad[0].item() / b.grad[0].item():.4f}")

# %% [markdown]
## Which weights decay

AdamW's weight decay pulls weights towards zero. Your `param_groups` decays the matrices
(≥ 2-D: linear weights, embeddings) and spares the vectors (biases, norm gains).

# %%
# NBVAL_CHECK_OUTPUT
model = nn.Sequential(nn.Embedding(65, 8), nn.LayerNorm(8), nn.Linear(8, 65))
names = {id(p): name for name, p in model.named_parameters()}
for group in param_groups(model, weight_decay=0.1):
    members = ", ".join(f"{names[id(p)]} {tuple(p.shape)}" for p in group["params"])
    print(f"weight_decay={group['weight_decay']}: {members}")
'''

NOTEBOOKS["11_sampling/sampling.ipynb"] = r'''
# %% [markdown]
# Kata 11 · temperature, top-k and top-p, in pictures

A model gives logits; your `next_token_probs` turns them into the distribution the next
character is drawn from, and `sample_next` draws it. This notebook runs **your** code from
`katas/11_sampling/sampling.py` on real next-character logits. (The stored outputs come from
the reference solution.)

The logits here come from the simplest model of the play there is, and it costs no training:
count, over tiny Shakespeare, which character follows each pair of characters (a trigram
table; 0.01 is added to every count so that nothing is impossible), and take the log of the
counts. A trained GPT's logits look alike,
only sharper.

# %%
from harness.notebook import start

start("11", data=("tinyshakespeare.txt",))

# %%
import matplotlib.pyplot as plt
import torch
from sampling import generate, next_token_probs, sample_next

from harness import ROOT

text = (ROOT / "data" / "tinyshakespeare.txt").read_text()
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
V = len(chars)
ids = torch.tensor([stoi[ch] for ch in text])
triples = (ids[:-2] * V + ids[1:-1]) * V + ids[2:]
counts = torch.bincount(triples, minlength=V**3).view(V, V, V).double()
trigram_logits = (counts + 0.01).log()  # trigram_logits[a, b]: the logits after "ab"


def show(ch):
    return {" ": "␣", "\n": "\\n"}.get(ch, ch)


context = "th"
logits = trigram_logits[stoi[context[0]], stoi[context[1]]][None]  # (1, 65)

# %% [markdown]
## Temperature

Dividing the logits by the temperature *T* before the softmax: below 1 the likely characters
get likelier (at 0 only the argmax is left), above 1 the distribution flattens towards
uniform. Bars: `next_token_probs` after "th", the 15 likeliest characters. Dots: how often
`sample_next` drew each one in 20,000 seeded draws; they sit on the bars.

# %%
def draws(logits, n=20_000, **settings):
    generator = torch.Generator().manual_seed(0)
    tokens = sample_next(logits.expand(n, -1), generator=generator, **settings)
    return torch.bincount(tokens.flatten(), minlength=V).double() / n


order = next_token_probs(logits)[0].argsort(descending=True)[:15]
labels = [show(chars[i]) for i in order]
temperatures = [0.5, 1.0, 1.5]
fig, axes = plt.subplots(1, 3, figsize=(9.5, 2.6), sharey=True)
for ax, t in zip(axes, temperatures):
    probs = next_token_probs(logits, temperature=t)[0]
    ax.bar(range(15), probs[order], color="tab:blue")
    ax.plot(range(15), draws(logits, temperature=t)[order], "o", color="tab:orange", ms=3)
    ax.set_xticks(range(15), labels, fontsize=8)
    ax.set_title(f"temperature {t}")
axes[0].set_ylabel(f"P(next char | {context!r})")
fig.tight_layout()
plt.show()

# %% [markdown]
The entropy measures the spread: how many bits of surprise the draw holds on average.

# %%
# NBVAL_CHECK_OUTPUT
for t in [0, 0.5, 1.0, 1.5, 3.0]:
    p = next_token_probs(logits, temperature=t)[0]
    bits = max(0.0, -(p[p > 0] * p[p > 0].log2()).sum().item())
    likeliest = show(chars[p.argmax()])
    print(f"T = {t:3}: entropy {bits:.3f} bits, P({likeliest!r}) = {p.max().item():.3f}")

# %% [markdown]
## Top-k and top-p cut the tail

The smoothing leaves a little probability on every one of the 65 characters, most of them
absurd after "th" (a "thQ", say). Top-k keeps the *k* likeliest; top-p (nucleus) keeps
the fewest likeliest characters whose probability adds up to at least *p*. What is cut gets
exactly 0, the rest is renormalised.

# %%
settings = [{}, {"top_k": 3}, {"top_k": 10}, {"top_p": 0.5}, {"top_p": 0.9}]
fig, axes = plt.subplots(1, len(settings), figsize=(11, 2.4), sharey=True)
for ax, setting in zip(axes, settings):
    probs = next_token_probs(logits, **setting)[0]
    ax.bar(range(15), probs[order], color=["tab:blue" if p > 0 else "lightgray"
                                           for p in probs[order]])
    ax.set_xticks(range(15), labels, fontsize=7)
    ax.set_title(", ".join(f"{k}={v}" for k, v in setting.items()) or "everything")
axes[0].set_ylabel(f"P(next char | {context!r})")
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for setting in settings[1:]:
    kept = next_token_probs(logits, **setting)[0]
    tokens = [show(chars[i]) for i in kept.argsort(descending=True) if kept[i] > 0]
    name = ", ".join(f"{k}={v}" for k, v in setting.items())
    print(f"{name:10} keeps {len(tokens):2}: {' '.join(tokens)}")

# %% [markdown]
## Text from the trigram model

`sample_next` in a loop, each draw conditioned on the last two characters. Greedy decoding
(temperature 0) falls into a loop at once; a low temperature gives plausible fragments; a
high one, noise. The sweet spot for the trained GPT of kata 12 is about 0.7–0.9 with top-k 40.

# %%
def trigram_text(start, n, **settings):
    generator = torch.Generator().manual_seed(1337)
    out = [stoi[ch] for ch in start]
    for _ in range(n):
        step_logits = trigram_logits[out[-2], out[-1]][None]
        out.append(sample_next(step_logits, generator=generator, **settings).item())
    return "".join(chars[i] for i in out)


# %%
# NBVAL_CHECK_OUTPUT
print("temperature 0 (greedy):", repr(trigram_text("Th", 60, temperature=0)))

# %%
for t in [0.5, 1.0, 2.0]:
    print(f"--- temperature {t}, top_k 40 ---")
    print(trigram_text("Th", 160, temperature=t, top_k=40))

# %% [markdown]
## generate, with and without the KV cache

`generate` does the same with a GPT from kata 09: crop to `block_size`, take the last
position's logits, draw, append. With `use_cache=True` the model keeps each layer's keys and
values, so each step feeds one new token instead of the whole window; the tokens must be
the same. (An untrained model, so the text itself is noise.)

# %%
# NBVAL_CHECK_OUTPUT
from gpt import GPT, GPTConfig

torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=2, n_embd=32))
prompt = torch.tensor([[stoi[ch] for ch in "ROMEO:"]])
outs = {use_cache: generate(model, prompt, 50, temperature=1.0, top_k=40, use_cache=use_cache,
                            generator=torch.Generator().manual_seed(7))
        for use_cache in (False, True)}
print("same tokens with and without the cache:", torch.equal(outs[False], outs[True]))
print("length:", outs[True].shape[1], "= 6 prompt tokens + 50 new, longer than block_size 32")
'''

NOTEBOOKS["12_shakespeare/shakespeare.ipynb"] = r'''
# %% [markdown]
# Kata 12 · training on Shakespeare, in pictures

The whole loop: batches of random windows, AdamW with warmup and cosine, evaluation on text
the model never trains on, the best checkpoint kept, early stopping. This notebook runs
**your** `shakespeare.py` (`katas/12_shakespeare/`), with your GPT, schedule and sampler
from katas 09–11. (The stored outputs come from the reference solution.) A real run takes
minutes (`make train`); here a small model overfits a small slice of the play in seconds,
which shows the same curves in miniature.

# %%
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
from shakespeare import (TrainConfig, get_batch, load_checkpoint, model_from_checkpoint,
                         split_data, train)
from tokenizer import CharTokenizer

from harness import ROOT

torch.set_num_threads(1)  # models this small run fastest on one thread
text = (ROOT / "data" / "tinyshakespeare.txt").read_text()
tokenizer = CharTokenizer(text)

# %% [markdown]
## The data: 90% to train on, the last 10% to check with

# %%
# NBVAL_CHECK_OUTPUT
train_data, val_data = split_data(text, tokenizer)
print(f"{tokenizer.vocab_size} characters; {len(train_data):,} train ids, "
      f"{len(val_data):,} val ids")

# %% [markdown]
A batch is a few windows cut at random places; the target `y` is the window shifted one
character on, so every position of `x` has the next character to predict.

# %%
# NBVAL_CHECK_OUTPUT
x, y = get_batch(train_data, batch_size=2, block_size=40,
                 generator=torch.Generator().manual_seed(0))
for row in range(2):
    print("x:", repr(tokenizer.decode(x[row].tolist())))
    print("y:", repr(tokenizer.decode(y[row].tolist())))

# %% [markdown]
## A run in miniature

A 2-layer, 64-dim GPT trained on the first 2,000 characters only, evaluated every 20 steps
on the whole validation text. Early on both losses fall together; soon the model starts to
memorise its 2,000 characters: the train loss keeps falling while the val loss turns up. That
is overfitting. `train` keeps the checkpoint of the best val loss (`best.pt`) and stops once
8 evaluations in a row have not beaten it (`patience`).

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
Samples from `best.pt`, with your `generate` from kata 11 (temperature 0.8, top-k 40). A
model that has seen 2,000 characters has picked up fragments of spelling and the shape of a
play: short lines, line breaks, now and then a name and a colon.

# %%
best, _ = model_from_checkpoint(load_checkpoint(Path(run_dir.name) / "best.pt"))
prompt = torch.tensor([tokenizer.encode("\n")])
out = generate(best, prompt, 200, temperature=0.8, top_k=40,
               generator=torch.Generator().manual_seed(42))
print(tokenizer.decode(out[0].tolist()))

# %% [markdown]
## Your own run

`make train` writes `runs/<preset>/metrics.csv` (one row per step and per evaluation) and
`best.pt`. If there are runs, this cell draws the one with the best val loss and samples
from its best checkpoint. On the full data and a GPU, the 10.8M-parameter model's val loss
bottoms out around 1.5–1.6 after 1,500–2,500 steps and then rises: the same picture as
above, at scale.

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
'''


if __name__ == "__main__":
    sys.exit(main())
