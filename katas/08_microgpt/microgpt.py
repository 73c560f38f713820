"""Kata 08: microGPT, katas 01-07 assembled into a 4,192-parameter GPT that makes up names.

Read katas/08_microgpt/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=08` to check your work, then `make microgpt IMPL=katas` to train yours.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from adam import Adam, linear_decay  # noqa: F401  (you will need these)
from block import LAYER_KEYS, block, rmsnorm  # noqa: F401  (LAYER_KEYS: a block's six matrices)
from mlp import cross_entropy, linear, matrix, softmax  # noqa: F401
from value import Value

LESSON = "see katas/08_microgpt/README.md"

# --- the model's size (given) ---
LETTERS = "abcdefghijklmnopqrstuvwxyz"  # token ids 0..25
BOS = 26  # begins and ends every name
VOCAB_SIZE = 27
N_EMBD = 16
N_HEAD = 4
N_LAYER = 1
BLOCK_SIZE = 16  # positions the model knows: wpe has one row per position
INIT_STD = 0.08

Matrix = list[list[Value]]  # rows of Values: n_out rows of n_in
Params = dict[str, Matrix]  # every weight matrix, by name


# --- names <-> token ids ---


def encode(name: str) -> list[int]:
    """[BOS] + one id per letter + [BOS]: "emma" -> [26, 4, 12, 12, 0, 26].

    A character outside a-z is a ValueError that names the character and its position.
    """
    raise NotImplementedError(f"encode: 'a' is 0 ... 'z' is 25, BOS (26) at both ends; {LESSON}")


def decode(ids: Sequence[int]) -> str:
    """The letters for ids 0..25, with BOS left out: [4, 12, 12, 0] -> "emma"."""
    raise NotImplementedError(f"decode: the inverse of encode, dropping BOS; {LESSON}")


# --- parameters ---


def init_params(seed: int = 42) -> Params:
    """Every weight matrix by name, drawn gaussian(0, INIT_STD) from random.Random(seed).

    Names and shapes (rows = outputs), drawn in this order, row by row: "wte" 27x16, "wpe"
    16x16, "lm_head" 27x16, then for each layer i: f"layer{i}.attn_wq", ".attn_wk",
    ".attn_wv", ".attn_wo" 16x16, f"layer{i}.mlp_fc1" 64x16, f"layer{i}.mlp_fc2" 16x64.
    Same seed, same weights; init_params(42) gives the lesson's worked example.
    """
    raise NotImplementedError(f"init_params: one matrix() per name, all from one rng; {LESSON}")


def parameters(params: Params) -> list[Value]:
    """Every parameter in one flat list (4,192 of them), for the optimizer."""
    raise NotImplementedError(f"parameters: flatten every row of every matrix; {LESSON}")


# --- the forward pass, one token at a time ---


def empty_cache() -> tuple[list[list], list[list]]:
    """Keys and values for a new sequence: one growing list per layer. (Given.)"""
    return [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]


def forward(params: Params, token: int, pos: int, keys: list, values: list) -> list[Value]:
    """The logits (27 Values) for the token that follows `token` at position `pos`.

    keys/values come from `empty_cache()`; each call appends this position's k and v to
    them, so call it for positions 0, 1, 2, ... of one sequence in order. A position
    outside 0..BLOCK_SIZE-1 is a ValueError that says how many positions there are.
    """
    raise NotImplementedError(
        f"forward: wte[token] + wpe[pos] -> rmsnorm -> block per layer -> lm_head; {LESSON}")


def loss(params: Params, tokens: Sequence[int]) -> Value:
    """Mean negative log-likelihood of each next token in `tokens` (e.g. encode("emma"))."""
    raise NotImplementedError(
        f"loss: a fresh cache, then cross_entropy at every position, averaged; {LESSON}")


# --- training and sampling ---


def train(params: Params, sequences: Sequence[Sequence[int]], steps: int,
          lr: float = 0.01) -> Iterator[float]:
    """Adam on one sequence per step (sequences[step % len]), lr decaying linearly to 0.

    Adam(beta1=0.85, beta2=0.99, eps=1e-8, lr_schedule=linear_decay(lr, steps)).
    A generator: yields each step's loss (a float), so the caller can show progress.
    Run it to the end with `losses = list(train(params, sequences, steps))`.
    """
    raise NotImplementedError(
        f"train: loss, backward, optimizer step, grads cleared once per step, yield; {LESSON}")


def sample(params: Params, rng: random.Random, temperature: float = 0.5) -> str:
    """Make up a name: start from BOS, draw each next token from softmax(logits / temperature)
    with `rng`, stop at BOS or after BLOCK_SIZE letters. A temperature <= 0 is a ValueError."""
    raise NotImplementedError(
        f"sample: feed each drawn token back in; rng.choices(..., weights=probs); {LESSON}")
