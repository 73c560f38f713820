# %% [markdown]
# # Kata 02 · the tokenizer, in pictures
#
# A language model reads numbers, not letters. Your `CharTokenizer` decides which number each
# character gets. This notebook runs **your** tokenizer (`katas/02_tokenizer/tokenizer.py`) on
# the two corpora of the course. The outputs stored with it come from the reference solution;
# run it yourself (Run All) to see what your code makes of the same text.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
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
# ## The names vocabulary: 26 letters and one BOS
#
# `sorted(set(text))` gives `a`..`z` the ids 0..25; `bos=True` adds one more id, 26, the
# marker that starts and ends every name.

# %%
# NBVAL_CHECK_OUTPUT
name_tok = CharTokenizer("".join(names), bos=True)
print(f"{len(names):,} names -> {name_tok}")
print("chars:", "".join(name_tok.chars))
print("BOS id:", name_tok.bos_id)

# %% [markdown]
# Every id of the vocabulary and how often it occurs once each name is wrapped as
# `[BOS] + name + [BOS]`: the counts come from your `encode`. BOS is the most frequent token
# of all (two per name), and a bigram model (kata 03) starts from these very pairs.

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
# Round trip: `decode(encode(name))` gives the name back, and `decode` leaves BOS out.

# %%
# NBVAL_CHECK_OUTPUT
for name in ["emma", "olivia", "xavier"]:
    ids = [name_tok.bos_id, *name_tok.encode(name), name_tok.bos_id]
    print(f"{name:>7} -> {ids} -> {name_tok.decode(ids)!r}")

# %% [markdown]
# ## Type, and watch the vocabulary grow
#
# The vocabulary is whatever characters the text holds, sorted, and nothing else. Type in the
# box (in Jupyter, with the kernel running): each new character takes its place in sorted
# order, and the ids of the characters after it move up by one. Below the vocabulary, your
# text as your `encode` sees it. The stored copy shows the text the box starts with.

# %%
import ipywidgets as widgets

from harness.notebook import interact


def vocabulary_figure(text):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 1.9))
    for ax in (top, bottom):
        ax.set_axis_off()
    if not text:
        top.set_title("type some text: an empty text has no vocabulary")
        return fig
    tok = CharTokenizer(text)
    for i, ch in enumerate(tok.chars):
        top.text(i, 0, {" ": "␣", "\n": "\\n"}.get(ch, ch), ha="center", fontsize=10,
                 bbox={"boxstyle": "round", "fc": "#dbe9f6"})
        top.text(i, -1, str(i), ha="center", fontsize=8, color="gray")
    top.set(xlim=(-0.7, max(len(tok.chars), 12) - 0.3), ylim=(-1.5, 0.8))
    top.set_title(f"vocabulary: {tok.vocab_size} characters, ids in grey", fontsize=9)
    shown = text[:40]
    ids = tok.encode(shown)
    bottom.text(0, 0.5, "encode: " + " ".join(map(str, ids)) + (" ..." if len(text) > 40 else ""),
                fontsize=9, family="monospace", va="center")
    return fig


interact(vocabulary_figure,
         text=widgets.Text(value="to be or not to be", description="text",
                           continuous_update=True))

# %% [markdown]
# ## Shakespeare: 65 characters
#
# The same class on tiny Shakespeare. Sorted order puts the newline first (id 0), then the
# space, punctuation, capitals and finally the lower-case letters.

# %%
# NBVAL_CHECK_OUTPUT
tok = CharTokenizer(shakespeare)
print(tok)
print(repr("".join(tok.chars)))

# %% [markdown]
# What the model actually sees: the opening lines of the play (blank lines left out) as ids,
# one cell per character, coloured by its id. Capitals (low ids, dark) stand out from the
# lower case.

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
# The whole corpus round-trips, character for character:

# %%
# NBVAL_CHECK_OUTPUT
ids = tok.encode(shakespeare)
print(f"{len(ids):,} ids; decode(encode(text)) == text: {tok.decode(ids) == shakespeare}")
print("the first 20 ids:", ids[:20])

# %% [markdown]
# ## What is not in the vocabulary is an error, never a silent drop

# %%
# NBVAL_CHECK_OUTPUT
try:
    name_tok.encode("zoë")
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# A checkpoint carries the vocabulary as JSON, so that sampling later uses the very same ids:

# %%
# NBVAL_CHECK_OUTPUT
saved = name_tok.to_dict()
same = CharTokenizer.from_dict(saved)
print(sorted(saved), "->", same, "same ids:", same.stoi == name_tok.stoi)
