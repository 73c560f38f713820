"""Kata 11: turning next-token logits into text: temperature, top-k, top-p, and the generate
loop, with and without a KV cache."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from gpt import KVCache
from torch import Tensor


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """None when the sampling settings are good; else a ValueError that names the argument,
    its value, and what it takes."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), "
                         f"got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None (keep every token) or an int >= 1, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be None (no nucleus filter) or a number in (0, 1], "
                         f"got {top_p!r}")


def next_token_probs(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> Tensor:
    """The distribution the next token is drawn from: (B, vocab) logits -> (B, vocab) probs.

    In this order: divide by the temperature; keep the top_k largest logits (ties go to the
    lower token id, so exactly k survive); softmax; keep the smallest set of most likely
    tokens whose probability adds up to at least top_p; renormalise. Temperature 0 is
    greedy: all the probability on the argmax (the lowest id among equal maxima).
    """
    check_sampling_args(temperature, top_k, top_p)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, vocab), got shape {tuple(logits.shape)}; "
                         "for one row use logits[None]")
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).to(logits.dtype)

    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        # A stable sort keeps equal logits in id order, so the cut at k is exact.
        order = torch.sort(logits, dim=-1, descending=True, stable=True).indices
        logits = logits.scatter(-1, order[:, top_k:], float("-inf"))
    probs = F.softmax(logits, dim=-1)

    if top_p is not None and top_p < 1:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # of the more likely tokens
        # A token is needed while the tokens before it hold less than top_p. The first
        # token has nothing before it, so it always stays.
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to id order
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Draw one token id per row: (B, vocab) logits -> (B, 1) LongTensor.

    The draw uses `generator` (a seeded torch.Generator makes it repeatable) and leaves the
    global random state alone; temperature 0 takes the argmax and draws nothing.
    """
    probs = next_token_probs(logits, temperature, top_k, top_p)
    if temperature == 0:
        return probs.argmax(dim=-1, keepdim=True)
    return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def generate(model: torch.nn.Module, idx: Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = False) -> Tensor:
    """Extend each row of idx (B, T) by max_new_tokens sampled tokens: (B, T + max_new_tokens).

    The model sees at most its last block_size tokens. With use_cache, each step feeds only
    the newest token and the model keeps earlier keys and values in a KVCache: the same
    tokens as without it, with much less work. The model runs in eval mode (no dropout)
    and gets its previous mode back afterwards.
    """
    check_sampling_args(temperature, top_k, top_p)
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"the prompt must be (batch, time) token ids with at least one token, "
                         f"got shape {tuple(idx.shape)}; start from e.g. the id of a newline")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")

    def sample(logits: Tensor) -> Tensor:
        return sample_next(logits, temperature, top_k, top_p, generator)

    was_training = model.training
    model.eval()
    try:
        if use_cache:
            return _generate_with_cache(model, idx, max_new_tokens, sample)
        block_size = model.config.block_size
        for _ in range(max_new_tokens):
            logits, _ = model(idx[:, -block_size:])  # crop: positions stop at block_size - 1
            idx = torch.cat([idx, sample(logits[:, -1, :])], dim=1)
        return idx
    finally:
        model.train(was_training)


def _generate_with_cache(model, idx: Tensor, max_new_tokens: int, sample) -> Tensor:
    """generate's loop with a KVCache: the prompt once, then only the token just drawn."""
    block_size, n_layer = model.config.block_size, model.config.n_layer
    cache, new_tokens = KVCache(n_layer), idx[:, -block_size:]  # first feed: the whole prompt
    for _ in range(max_new_tokens):
        if len(cache) + new_tokens.size(1) > block_size:
            # Positions are learned and absolute, so a full cache cannot slide: start a new
            # one from the last block_size tokens, exactly what the cropping path feeds.
            cache, new_tokens = KVCache(n_layer), idx[:, -block_size:]
        logits, _ = model(new_tokens, kv_cache=cache)
        new_tokens = sample(logits[:, -1, :])  # the next feed: just the token drawn now
        idx = torch.cat([idx, new_tokens], dim=1)
    return idx
