"""Kata 11: turning next-token logits into text: temperature, top-k, top-p, and the generate
loop, with and without a KV cache.

Read katas/11_sampling/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=11` to check your work.
"""

from __future__ import annotations

import math  # noqa: F401  (math.isfinite is handy)

import torch
import torch.nn.functional as F  # noqa: F401
from gpt import KVCache  # noqa: F401  (generate's cached path needs it)
from torch import Tensor

LESSON = "see katas/11_sampling/README.md"


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Return None when the sampling settings are good; else a ValueError that names the
    argument and its value: temperature must be a finite number >= 0 (0 means greedy),
    top_k None or an int >= 1, top_p None or a number in (0, 1].

    next_token_probs and generate call it first (and so does kata 16's generate).
    """
    raise NotImplementedError(f"check_sampling_args: one check per setting; {LESSON}")


def next_token_probs(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> Tensor:
    """The distribution the next token is drawn from: (B, vocab) logits -> (B, vocab) probs.

    In this order: divide by the temperature; keep the top_k largest logits (ties go to the
    lower token id, so exactly k survive; top_k >= vocab keeps all); softmax; keep the
    smallest set of most likely tokens whose probability adds up to at least top_p;
    renormalise. Temperature 0 is greedy: all the probability on the argmax (the lowest id
    among equal maxima).

    Bad settings are ValueErrors that name the argument (check_sampling_args); logits must
    be 2-D (a ValueError that gives their shape).
    """
    raise NotImplementedError(f"next_token_probs: temperature, top-k, softmax, top-p; {LESSON}")


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Draw one token id per row: (B, vocab) logits -> (B, 1) LongTensor.

    Use next_token_probs, then torch.multinomial with the caller's `generator` (a seeded
    torch.Generator makes it repeatable; torch's global random state is left alone).
    Temperature 0 takes the argmax and draws nothing: the generator is left as it was.
    """
    raise NotImplementedError(f"sample_next: next_token_probs, then torch.multinomial; {LESSON}")


def generate(model: torch.nn.Module, idx: Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = False) -> Tensor:
    """Extend each row of idx (B, T) by max_new_tokens sampled tokens: (B, T + max_new_tokens).

    Without autograd (@torch.no_grad()), in eval mode, giving the model its previous mode
    back afterwards. Each step: logits of the last position -> sample_next -> append.
    Cropping path: feed idx[:, -model.config.block_size:]. Cached path (use_cache=True):
    feed the prompt once into a KVCache(model.config.n_layer), then only the token just
    drawn, model(new, kv_cache=cache); when the cache is full, start a new one from
    idx[:, -block_size:]. Both paths give the same tokens.

    ValueError for an empty or non-2-D prompt, max_new_tokens < 0, or a bad sampling
    setting (checked before the first step).
    """
    raise NotImplementedError(f"generate: the sampling loop, cropping and cached; {LESSON}")
