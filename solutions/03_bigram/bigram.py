"""Kata 03: a table of counts is a language model. Count, normalise, score, sample."""

from __future__ import annotations

import math
import random

from tokenizer import CharTokenizer


def _require_bos(tokenizer: CharTokenizer) -> None:
    if tokenizer.bos_id is None:
        raise ValueError("a bigram model needs a BOS token: build the tokenizer with bos=True")


def bigrams(name: str, tokenizer: CharTokenizer) -> list[tuple[int, int]]:
    """The (previous id, next id) pairs of [BOS] + name + [BOS]: len(name) + 1 of them."""
    _require_bos(tokenizer)
    ids = [tokenizer.bos_id, *tokenizer.encode(name), tokenizer.bos_id]
    return list(zip(ids, ids[1:]))


def count_bigrams(names: list[str], tokenizer: CharTokenizer) -> list[list[int]]:
    """counts[i][j] = how often id j follows id i, over every name wrapped in BOS."""
    size = tokenizer.vocab_size
    counts = [[0] * size for _ in range(size)]
    for name in names:
        for prev, nxt in bigrams(name, tokenizer):
            counts[prev][nxt] += 1
    return counts


def bigram_probs(counts: list[list[int]], k: float = 0.0) -> list[list[float]]:
    """Add k to every cell (add-k smoothing), then divide each row by its total.

    Row i is then the distribution of the next id after id i. The counts are not changed.
    """
    if k < 0:
        raise ValueError(f"the smoothing constant k must be >= 0, got {k}")
    probs = []
    for i, row in enumerate(counts):
        total = sum(row) + k * len(row)  # k was added to every one of the len(row) cells
        if total == 0:
            raise ValueError(
                f"row {i} of the count table is all zeros, so with k=0 it has no distribution "
                f"(0/0): id {i} never appears before another token. Use k > 0."
            )
        probs.append([(c + k) / total for c in row])
    return probs


def nll(probs: list[list[float]], names: list[str], tokenizer: CharTokenizer) -> float:
    """Average negative log-likelihood per bigram of names under the table probs.

    A bigram the table gives probability 0 makes the average infinite: returns math.inf.
    """
    total, n = 0.0, 0
    for name in names:
        for prev, nxt in bigrams(name, tokenizer):
            p = probs[prev][nxt]
            if p <= 0:
                return math.inf  # -log 0: the model says this pair is impossible
            total -= math.log(p)
            n += 1
    if n == 0:
        raise ValueError("nll needs at least one name to score")
    return total / n


def sample(probs: list[list[float]], tokenizer: CharTokenizer, rng: random.Random,
           max_len: int = 50) -> str:
    """One name: start from BOS, draw each next id from its row until BOS comes back.

    All randomness comes from rng, so the same seed gives the same names. Stops early
    after max_len characters (a table might never lead back to BOS). A tokenizer without
    BOS is a ValueError.
    """
    _require_bos(tokenizer)
    ids: list[int] = []
    current = tokenizer.bos_id
    while len(ids) < max_len:
        current = rng.choices(range(len(probs[current])), weights=probs[current])[0]
        if current == tokenizer.bos_id:
            break
        ids.append(current)
    return tokenizer.decode(ids)
