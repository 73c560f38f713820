"""Kata 06: a pre-norm transformer block: RMSNorm, attention, MLP and residual connections."""

from __future__ import annotations

from attention import attention
from mlp import linear, relu
from value import Value

EPS = 1e-5
LAYER_KEYS = ("attn_wq", "attn_wk", "attn_wv", "attn_wo", "mlp_fc1", "mlp_fc2")


def rmsnorm(x: list[Value]) -> list[Value]:
    """x / sqrt(mean(x**2) + 1e-5): unit root-mean-square, no learned gain."""
    mean_square = sum(xi * xi for xi in x) / len(x)
    inv_rms = (mean_square + EPS) ** -0.5  # one shared node, used by every output
    return [xi * inv_rms for xi in x]


def feed_forward(x: list[Value], fc1: list[list[Value]], fc2: list[list[Value]]) -> list[Value]:
    """Widen (fc1: 4n x n), ReLU, narrow back (fc2: n x 4n)."""
    return linear(relu(linear(x, fc1)), fc2)


def block(
    x: list[Value],
    layer: dict[str, list[list[Value]]],
    keys: list[list[Value]],
    values: list[list[Value]],
    n_head: int,
    weights_out: list[list[float]] | None = None,
) -> list[Value]:
    """One transformer block for the current position.

    layer: the weights, under LAYER_KEYS. keys, values: this layer's attention cache
    (attention appends to it). weights_out: passed to attention, for plots.
    """
    missing = [name for name in LAYER_KEYS if name not in layer]
    if missing:
        raise KeyError(f"layer is missing {', '.join(missing)}; "
                       f"a layer needs {', '.join(LAYER_KEYS)}")
    # Each sublayer reads a normalised copy and adds its result back onto the residual stream.
    attended = attention(rmsnorm(x), layer["attn_wq"], layer["attn_wk"], layer["attn_wv"],
                         layer["attn_wo"], keys, values, n_head, weights_out)
    x = [a + b for a, b in zip(x, attended)]
    fed = feed_forward(rmsnorm(x), layer["mlp_fc1"], layer["mlp_fc2"])
    return [a + b for a, b in zip(x, fed)]
