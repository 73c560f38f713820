# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Kata 17 · byte-pair encoding, in pictures
#
# Your `BPETokenizer` learns tokens from text, a merge at a time. This notebook runs **your**
# tokenizer (`katas/17_bpe/bpe.py`) on tiny Shakespeare. The outputs stored with it come from
# the reference solution; run it yourself (Run All) to see what your code makes of the same
# text. It trains on a slice of the text, so that it runs in seconds.

# %%
from harness.notebook import start

start("17", data=("tinyshakespeare.txt",))

# %%
# ruff: noqa: E402  (kata modules import once start() has chosen them)
import html

import matplotlib.pyplot as plt
from bpe import BPETokenizer, split_pieces
from IPython.display import HTML

from harness import ROOT

shakespeare = (ROOT / "data" / "tinyshakespeare.txt").read_text()
train_text = shakespeare[:200_000]  # a slice of the train split
val_text = shakespeare[-50_000:]  # text the tokenizer never saw
tok = BPETokenizer.train(train_text, 256 + 512)
print(tok)

# %% [markdown]
# ## The first merges
#
# Merge `r` makes id `256 + r`. The first ones join a space to the letter that most often
# starts a word, and the commonest letter pairs; soon whole words appear, each with its
# leading space (GPT-2's pieces give a word the space in front of it).

# %%
for r, (a, b) in enumerate(tok.merges[:24]):
    print(f"{256 + r}: {tok.vocab[a]!r:>10} + {tok.vocab[b]!r:<10} -> {tok.vocab[256 + r]!r}")

# %% [markdown]
# Later merges are whole words and names of the play: the last ones learned.

# %%
last = range(len(tok.merges) - 24, len(tok.merges))
print([tok.vocab[256 + r].decode(errors="replace") for r in last])


# %% [markdown]
# ## A sentence, token by token
#
# First GPT-2's pieces (merges never cross their borders), then the tokens, one colour each.
# A word the tokenizer knows is one token; a rare one is spelled in a few.

# %%
def coloured(tokenizer, text):
    """Each token of text on a background of its own colour (spaces shown as ·)."""
    colours = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d7f9f8"]
    spans = []
    for i, token_id in enumerate(tokenizer.encode(text)):
        shown = html.escape(tokenizer.decode([token_id]).replace(" ", "·"))
        spans.append(f'<span style="background:{colours[i % len(colours)]};'
                     f'font-family:monospace;padding:1px">{shown}</span>')
    return HTML("".join(spans))


sentence = "ROMEO: But soft! what light through yonder window breaks? Zounds, 'tis Juliet."
print(split_pieces(sentence))
print(len(sentence), "characters,", len(tok.encode(sentence)), "tokens")
coloured(tok, sentence)

# %% [markdown]
# Any text round-trips, even what Shakespeare never wrote: it is all bytes. An emoji is four
# byte tokens, none of them UTF-8 alone; decoding joins the bytes first.

# %%
odd = "naïve café 🙂 <|endoftext|>"
ids = tok.encode(odd)
print(ids)
print(tok.decode(ids) == odd, [tok.decode([i]) for i in ids[-16:-12]])

# %% [markdown]
# ## Characters per token as the vocabulary grows
#
# Merges are nested: the tokenizer with the first `k` merges is `BPETokenizer(tok.merges[:k])`.
# Each new token saves less than the one before it. Measured on text the tokenizer did not
# learn from (on the full train split the reference gets 2.245 at 256+512 and 2.592 at
# 256+1,024).

# %%
sizes = [0, 32, 64, 128, 256, 384, 512]
cpt = [len(val_text) / len(BPETokenizer(tok.merges[:k]).encode(val_text)) for k in sizes]
fig, ax = plt.subplots()
ax.plot([256 + k for k in sizes], cpt, "o-")
ax.set_xlabel("vocabulary size (256 bytes + merges)")
ax.set_ylabel("characters per token")
ax.set_title("compression on unseen Shakespeare")
ax.grid(alpha=0.3)
plt.show()
print({256 + k: round(c, 3) for k, c in zip(sizes, cpt)})

# %% [markdown]
# A model on these tokens reads about half as many positions for the same text, and each
# guess is one out of 768 instead of one out of 65: its loss per token is higher, and says
# nothing by itself. Bits per character, `loss / ln 2 / (characters per token)`, compares
# the two; the lesson has the measured table (`make tokenizers`).
