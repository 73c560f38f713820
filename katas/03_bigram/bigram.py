"""Kata 03: a table of counts is a language model. Count, normalise, score, sample.

Read katas/03_bigram/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=03` to check your work. This kata uses your tokenizer from kata 02.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
import random

from tokenizer import CharTokenizer

LESSON = "see katas/03_bigram/README.md"


def bigrams(name: str, tokenizer: CharTokenizer) -> list[tuple[int, int]]:
    """The (previous id, next id) pairs of [BOS] + name + [BOS]: len(name) + 1 of them.

    With the names tokenizer (a..z = 0..25, BOS = 26):
    bigrams("emma", tok) == [(26, 4), (4, 12), (12, 12), (12, 0), (0, 26)].
    A tokenizer without BOS (bos_id None) is a ValueError that says to use bos=True.
    """
    raise NotImplementedError(f"bigrams: wrap the ids in BOS, then pair neighbours; {LESSON}")


def count_bigrams(names: list[str], tokenizer: CharTokenizer) -> list[list[int]]:
    """counts[i][j] = how often id j follows id i, over every name wrapped in BOS.

    A vocab_size x vocab_size table (a list of rows) of ints.
    """
    raise NotImplementedError(f"count_bigrams: one += 1 per bigram of every name; {LESSON}")


def bigram_probs(counts: list[list[int]], k: float = 0.0) -> list[list[float]]:
    """Add k to every cell (add-k smoothing), then divide each row by its total.

    Returns a new table; row i is the distribution of the next id after id i, so each row
    sums to 1. Do not change counts. A negative k is a ValueError; so is a row that is all
    zeros when k = 0 (it has no distribution: say which row, and suggest k > 0).
    """
    raise NotImplementedError(f"bigram_probs: (count + k) / (row total + k * row length); {LESSON}")


def nll(probs: list[list[float]], names: list[str], tokenizer: CharTokenizer) -> float:
    """Average negative log-likelihood per bigram of names under the table probs.

    The average of -ln probs[i][j] over every bigram (i, j) of every name wrapped in BOS.
    If any of those bigrams has probability 0, return math.inf (do not crash on log(0)).
    No names at all is a ValueError.
    """
    raise NotImplementedError(f"nll: average -ln p over every bigram; {LESSON}")


def sample(probs: list[list[float]], tokenizer: CharTokenizer, rng: random.Random,
           max_len: int = 50) -> str:
    """One name: start from BOS, draw each next id from its row until BOS comes back.

    Draw with rng (a random.Random the caller seeded), never with the random module's
    global functions, so the same seed gives the same names. Returns the characters
    without BOS. Stops early after max_len characters. A tokenizer without BOS is a
    ValueError that says to use bos=True, as in bigrams.
    """
    raise NotImplementedError(f"sample: rng.choices(ids, weights=probs[current]); {LESSON}")
