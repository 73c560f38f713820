# %% [markdown]
# # Kata 20 · SFT, in pictures
#
# This notebook runs **your** `sft.py` from `katas/20_sft/` (the stored outputs come from
# the reference solution): the tasks, one conversation through the chat template with the
# tokens the loss sees coloured, the batch that `collate` makes of it, and a tiny model
# fine-tuned on a few prompts until it answers them, and still fails on names it never saw.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
from harness.notebook import start

start("20", data=("names.txt",))

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from modern import ModernConfig, ModernGPT
from sft import ChatTokenizer, collate, generate_reply, render_chat, sft_step
from tasks import accuracy, make_tasks, split_names

from harness import ROOT

# %% [markdown]
# ## The tasks
#
# Names split into train and held-out, then prompts whose answers a program checks.

# %%
# NBVAL_CHECK_OUTPUT
names = Path(ROOT / "data" / "names.txt").read_text().split()
train_names, held_names = split_names(names)
print(f"{len(train_names):,} training names, {len(held_names):,} held out")
for task in make_tasks(train_names, 4, seed=0):
    print(f"  {task.prompt!r:28} -> {task.answer!r}")

# %% [markdown]
# ## One conversation through the template
#
# Each message is `<|role|> text <|end|>` (dark grey: the special tokens). Green: the tokens
# the model is trained to write (the mask): the reply and its `<|end|>`, never the prompt or
# the `<|assistant|>` marker.

# %%
tok = ChatTokenizer()
chat = [("system", "be brief"), ("user", "count a in ada"), ("assistant", "2")]
ids, mask = render_chat(tok, chat)
short = {"<|system|>": "sys", "<|user|>": "usr", "<|assistant|>": "ast", "<|end|>": "end"}
fig, ax = plt.subplots(figsize=(9, 1.3))
for t, (i, learned) in enumerate(zip(ids, mask)):
    special = i >= len(tok.chars)
    colour = "#7fc97f" if learned else "#bdbdbd" if special else "#ececec"
    ax.add_patch(plt.Rectangle((t, 0), 0.9, 1, color=colour))
    text = short[tok.decode([i])] if special else tok.decode([i]).replace(" ", "␣")
    ax.text(t + 0.45, 0.5, text, ha="center", va="center", fontsize=7 if special else 10,
            rotation=90 if special else 0)
ax.set_xlim(0, len(ids))
ax.set_ylim(0, 1)
ax.axis("off")
ax.set_title(f"{len(ids)} tokens, {sum(mask)} in the loss", fontsize=10)
plt.show()

# %% [markdown]
# ## The batch
#
# `collate` shifts by one: the label of position t is token t + 1, kept only where that
# token is in the mask; every other label is −100 (shown as `·`), which the cross-entropy
# skips. The second conversation is shorter, so it is padded (`<|pad|>` in x, −100 in y).

# %%
# NBVAL_CHECK_OUTPUT
examples = [render_chat(tok, [("user", "count a in ada"), ("assistant", "2")]),
            render_chat(tok, [("user", "reverse bo"), ("assistant", "ob")])]
x, y = collate(tok, examples)
for b in range(2):
    print("x", " ".join(f"{v:>2}" for v in x[b].tolist()))
    print("y", " ".join(" ·" if v == -100 else f"{v:>2}" for v in y[b].tolist()))

# %% [markdown]
# ## Fine-tuning a tiny model on eight prompts
#
# A 1-layer model learns eight training prompts by heart in a hundred steps. That is
# memorization: on held-out names it is still mostly wrong (a count of "1" or "0" is often
# right by luck, a reversal hardly ever), which is why only held-out accuracy is reported.

# %%
torch.manual_seed(0)
model = ModernGPT(ModernConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2,
                               n_embd=32))
train_tasks = make_tasks(train_names, 8, seed=0)
held_tasks = make_tasks(held_names, 30, seed=0)
x, y = collate(tok, [render_chat(tok, [("user", t.prompt), ("assistant", t.answer)])
                     for t in train_tasks])
opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
losses = [sft_step(model, opt, x, y) for _ in range(100)]


def replies(tasks):
    return [generate_reply(model, tok, [("user", t.prompt)], max_new_tokens=16) for t in tasks]


fig, ax = plt.subplots(figsize=(5, 2.5))
ax.plot(losses)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("SFT loss (assistant tokens)")
plt.show()
held_replies = replies(held_tasks)
print("training prompts:", accuracy(train_tasks, replies(train_tasks)))
print("held-out names:  ", accuracy(held_tasks, held_replies))
for task, reply in list(zip(held_tasks, held_replies))[:4]:
    print(f"  {task.prompt!r:28} -> {reply!r:12} (right: {task.answer!r})")
