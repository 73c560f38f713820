"""Kata 08: microGPT, katas 01-07 assembled into a 4,192-parameter GPT that makes up names."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from adam import Adam, linear_decay
from block import LAYER_KEYS, block, rmsnorm
from mlp import cross_entropy, linear, matrix, softmax
from value import Value

# --- the model's size (given in the stub) ---
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
    """[BOS] + one id per letter + [BOS]: "emma" -> [26, 4, 12, 12, 0, 26]."""
    ids = []
    for position, char in enumerate(name):
        if char not in LETTERS:
            raise ValueError(
                f"{char!r} at position {position} of {name!r} is not a lowercase letter a-z; "
                "microGPT's vocabulary is a-z plus BOS"
            )
        ids.append(LETTERS.index(char))
    return [BOS, *ids, BOS]


def decode(ids: Sequence[int]) -> str:
    """Letters for ids 0..25; BOS marks the ends of a name and is dropped."""
    return "".join(LETTERS[i] for i in ids if i != BOS)


# --- parameters ---


def init_params(seed: int = 42) -> Params:
    """Every weight matrix, gaussian(0, 0.08), by name, drawn in this order (the lesson's
    worked example depends on it). Same seed, same weights."""
    rng = random.Random(seed)
    params = {
        "wte": matrix(VOCAB_SIZE, N_EMBD, INIT_STD, rng),  # a vector per token
        "wpe": matrix(BLOCK_SIZE, N_EMBD, INIT_STD, rng),  # a vector per position
        "lm_head": matrix(VOCAB_SIZE, N_EMBD, INIT_STD, rng),  # its own matrix, not tied to wte
    }
    for i in range(N_LAYER):
        params[f"layer{i}.attn_wq"] = matrix(N_EMBD, N_EMBD, INIT_STD, rng)
        params[f"layer{i}.attn_wk"] = matrix(N_EMBD, N_EMBD, INIT_STD, rng)
        params[f"layer{i}.attn_wv"] = matrix(N_EMBD, N_EMBD, INIT_STD, rng)
        params[f"layer{i}.attn_wo"] = matrix(N_EMBD, N_EMBD, INIT_STD, rng)
        params[f"layer{i}.mlp_fc1"] = matrix(4 * N_EMBD, N_EMBD, INIT_STD, rng)
        params[f"layer{i}.mlp_fc2"] = matrix(N_EMBD, 4 * N_EMBD, INIT_STD, rng)
    return params


def parameters(params: Params) -> list[Value]:
    """Every parameter in one flat list (4,192 of them), for the optimizer."""
    return [p for weights in params.values() for row in weights for p in row]


# --- the forward pass, one token at a time ---


def empty_cache() -> tuple[list[list], list[list]]:
    """Keys and values for a new sequence: one growing list per layer."""
    return [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]


def forward(params: Params, token: int, pos: int, keys: list, values: list) -> list[Value]:
    """The logits (27 Values) for the token that follows `token` at position `pos`.

    keys/values come from `empty_cache()`; each call appends this position's k and v to
    them, so call it for positions 0, 1, 2, ... of one sequence in order.
    """
    if not 0 <= pos < BLOCK_SIZE:
        raise ValueError(f"position {pos} is outside 0..{BLOCK_SIZE - 1}: microGPT has "
                         f"{BLOCK_SIZE} positions, so crop sequences to {BLOCK_SIZE + 1} tokens")
    x = [t + p for t, p in zip(params["wte"][token], params["wpe"][pos])]
    x = rmsnorm(x)
    for i in range(N_LAYER):
        layer = {name: params[f"layer{i}.{name}"] for name in LAYER_KEYS}
        x = block(x, layer, keys[i], values[i], N_HEAD)
    return linear(x, params["lm_head"])


def loss(params: Params, tokens: Sequence[int]) -> Value:
    """Mean negative log-likelihood of each next token in `tokens` (e.g. encode("emma"))."""
    keys, values = empty_cache()
    losses = [
        cross_entropy(forward(params, tokens[pos], pos, keys, values), tokens[pos + 1])
        for pos in range(len(tokens) - 1)
    ]
    return sum(losses) * (1.0 / len(losses))


# --- training and sampling ---


def train(params: Params, sequences: Sequence[Sequence[int]], steps: int,
          lr: float = 0.01) -> Iterator[float]:
    """Adam on one sequence per step (sequences[step % len]), lr decaying linearly to 0.

    A generator: yields each step's loss, so the caller can show progress.
    Run it to the end with `losses = list(train(params, sequences, steps))`.
    """
    optimizer = Adam(parameters(params), lr=lr, beta1=0.85, beta2=0.99, eps=1e-8,
                     lr_schedule=linear_decay(lr, steps))
    for step in range(steps):
        step_loss = loss(params, sequences[step % len(sequences)])
        step_loss.backward()
        optimizer.step()
        optimizer.zero_grad()  # leaf grads accumulate: clear them for the next step
        yield step_loss.data


def sample(params: Params, rng: random.Random, temperature: float = 0.5) -> str:
    """Make up a name: start from BOS, draw from softmax(logits / temperature), stop at
    BOS or after BLOCK_SIZE letters. Draws only from `rng`, so a seed reproduces it."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; lower is more cautious")
    keys, values = empty_cache()
    token, ids = BOS, []
    for pos in range(BLOCK_SIZE):
        logits = forward(params, token, pos, keys, values)
        probs = softmax([logit * (1.0 / temperature) for logit in logits])
        token = rng.choices(range(VOCAB_SIZE), weights=[p.data for p in probs])[0]
        if token == BOS:
            break
        ids.append(token)
    return decode(ids)
