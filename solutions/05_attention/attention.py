"""Kata 05: causal multi-head self-attention on Values, one position at a time, with a KV cache."""

from __future__ import annotations

import math

from mlp import linear, softmax
from value import Value


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
    wq, wk, wv, wo: n_embd x n_embd matrices (lists of rows).
    keys, values: this layer's cache, one vector per earlier position. This call appends
                  the current position's key and value, so position t attends over 0..t.
    n_head:       heads; head h owns dims h*hd:(h+1)*hd of q, k and v (hd = n_embd // n_head).
    weights_out:  if a list is given, one list of attention weights (floats over positions
                  0..t) is appended per head, head 0 first: for plots.
    Returns the output vector (n_embd Values) after the output projection wo.
    """
    n_embd = len(x)
    if n_head < 1 or n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} must split evenly into n_head={n_head} heads; "
                         "pick n_head that divides the vector length")
    if len(keys) != len(values):
        raise ValueError(f"the cache is out of step: {len(keys)} keys but {len(values)} values; "
                         "use one fresh pair of lists per layer and sequence")
    head_dim = n_embd // n_head
    scale = 1.0 / math.sqrt(head_dim)  # a plain number: no graph node for it

    q = linear(x, wq)
    keys.append(linear(x, wk))  # append first: position t must see itself
    values.append(linear(x, wv))

    heads_out: list[Value] = []
    for h in range(n_head):
        dims = range(h * head_dim, (h + 1) * head_dim)
        q_h = [q[d] for d in dims]
        # scores[s] = k_s . q_h: the cached keys of this head are the rows of a matrix.
        keys_h = [[k[d] for d in dims] for k in keys]
        scores = [s * scale for s in linear(q_h, keys_h)]
        weights = softmax(scores)  # a distribution over positions 0..t
        if weights_out is not None:
            weights_out.append([w.data for w in weights])
        # out[d] = sum_s weights[s] * v_s[d]: each dim of the head is one dot product.
        values_h = [[v[d] for v in values] for d in dims]
        heads_out.extend(linear(weights, values_h))  # head 0's dims first, then head 1's, ...
    return linear(heads_out, wo)
