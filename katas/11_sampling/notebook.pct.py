# %% [markdown]
# # Kata 11 · temperature, top-k and top-p, in pictures
#
# A model gives logits; your `next_token_probs` turns them into the distribution the next
# character is drawn from, and `sample_next` draws it. This notebook runs **your** code from
# `katas/11_sampling/sampling.py` on real next-character logits. (The stored outputs come from
# the reference solution.)
#
# The logits here come from the simplest model of the play there is, and it costs no training:
# count, over tiny Shakespeare, which character follows each pair of characters (a trigram
# table; 0.01 is added to every count so that nothing is impossible), and take the log of the
# counts. A trained GPT's logits look alike,
# only sharper.

# %%
# ruff: noqa: E402 - start() chooses where the imports in later cells come from
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
# ## Temperature
#
# Dividing the logits by the temperature *T* before the softmax: below 1 the likely characters
# get likelier (at 0 only the argmax is left), above 1 the distribution flattens towards
# uniform. Bars: `next_token_probs` after "th", the 15 likeliest characters. Dots: how often
# `sample_next` drew each one in 20,000 seeded draws; they sit on the bars.

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
# The entropy measures the spread: how many bits of surprise the draw holds on average.

# %%
# NBVAL_CHECK_OUTPUT
for t in [0, 0.5, 1.0, 1.5, 3.0]:
    p = next_token_probs(logits, temperature=t)[0]
    bits = max(0.0, -(p[p > 0] * p[p > 0].log2()).sum().item())
    likeliest = show(chars[p.argmax()])
    print(f"T = {t:3}: entropy {bits:.3f} bits, P({likeliest!r}) = {p.max().item():.3f}")

# %% [markdown]
# ## Top-k and top-p cut the tail
#
# The smoothing leaves a little probability on every one of the 65 characters, most of them
# absurd after "th" (a "thQ", say). Top-k keeps the *k* likeliest; top-p (nucleus) keeps
# the fewest likeliest characters whose probability adds up to at least *p*. What is cut gets
# exactly 0, the rest is renormalised.

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
# ## Turn the dials
#
# Both at once, on the same logits after "th" (in Jupyter, with the kernel running): the
# temperature reshapes the distribution, top-k then cuts all but the *k* likeliest (0 turns
# it off). Grey bars were cut. The stored copy shows temperature 0.8 and top-k 5.

# %%
import ipywidgets as widgets

from harness.notebook import interact


def dials_figure(temperature, top_k):
    probs = next_token_probs(logits, temperature=temperature, top_k=top_k or None)[0]
    kept = probs[order]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(range(15), kept, color=["tab:blue" if p > 0 else "lightgray" for p in kept])
    ax.set_xticks(range(15), labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"P(next char | {context!r})")
    bits = max(0.0, -(probs[probs > 0] * probs[probs > 0].log2()).sum().item())
    ax.set_title(f"temperature {temperature:g}, top_k {top_k or 'off'}: "
                 f"{int((probs > 0).sum())} characters left, entropy {bits:.2f} bits")
    return fig


interact(dials_figure,
         temperature=widgets.FloatSlider(value=0.8, min=0.0, max=2.0, step=0.05,
                                         description="temperature"),
         top_k=widgets.IntSlider(value=5, min=0, max=V, description="top_k"))

# %% [markdown]
# ## Text from the trigram model
#
# `sample_next` in a loop, each draw conditioned on the last two characters. Greedy decoding
# (temperature 0) falls into a loop at once; a low temperature gives plausible fragments; a
# high one, noise. The sweet spot for the trained GPT of kata 12 is about 0.7–0.9 with top-k 40.

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
# ## generate, with and without the KV cache
#
# `generate` does the same with a GPT from kata 09: crop to `block_size`, take the last
# position's logits, draw, append. With `use_cache=True` the model keeps each layer's keys and
# values, so each step feeds one new token instead of the whole window; the tokens must be
# the same. (An untrained model, so the text itself is noise.)

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
