"""Kata 05: causal multi-head self-attention on Values, one position at a time, with a KV cache.

Read katas/05_attention/README.md first. Replace the `raise NotImplementedError` below;
run `make kata K=05` to check your work.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)

from mlp import linear, softmax  # noqa: F401  (kata 04: use them)
from value import Value

LESSON = "see katas/05_attention/README.md"


def attention(
    x: list[Value],
    wq: list[list[Value]],
    wk: list[list[Value]],
    wv: list[list[Value]],
    wo: list[list[Value]],
    keys: list[list[Value]],
    values: list[list[Value]],
    n_head: int,
    weights_out: list[list[float]] | None = None,
) -> list[Value]:
    """Attend from the current position over itself and every earlier position.

    x:            this position's vector (n_embd Values).
    wq, wk, wv, wo: n_embd x n_embd matrices (lists of rows), as `linear` takes them.
    keys, values: this layer's cache, one vector (n_embd Values) per earlier position.
                  Append this position's key (linear(x, wk)) and value (linear(x, wv)) to
                  them first: position t attends over positions 0..t, itself included.
    n_head:       the number of heads; head h owns dims h*hd:(h+1)*hd of q, k and v, where
                  hd = n_embd // n_head. A ValueError if n_head does not divide n_embd.
                  A ValueError too if keys and values have different lengths.
    weights_out:  None, or a list: then append, for each head in order h = 0, 1, ..., the
                  list of its attention weights as plain floats (t+1 of them, position 0
                  first). For plots; the result does not depend on it.

    Per head: scores[s] = q_h . k_s / sqrt(hd) for s = 0..t, weights = softmax(scores),
    out_h = sum_s weights[s] * v_s (the head's dims). Concatenate out_0, out_1, ... and
    return linear(concatenation, wo).
    """
    raise NotImplementedError(
        f"attention: project q, k, v, append k and v to the cache, then per head softmax "
        f"the scaled scores and mix the values; concatenate heads and project with wo; {LESSON}"
    )
