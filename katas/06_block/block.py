"""Kata 06: a pre-norm transformer block: RMSNorm, attention, MLP and residual connections.

Read katas/06_block/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=06` to check your work.
"""

from __future__ import annotations

from attention import attention  # noqa: F401  (kata 05: use it)
from mlp import linear, relu  # noqa: F401  (kata 04: use them)
from value import Value

LESSON = "see katas/06_block/README.md"

EPS = 1e-5
LAYER_KEYS = ("attn_wq", "attn_wk", "attn_wv", "attn_wo", "mlp_fc1", "mlp_fc2")


def rmsnorm(x: list[Value]) -> list[Value]:
    """Return x * (mean(x**2) + EPS) ** -0.5.

    The mean is of the squares (not of x); EPS keeps an all-zero vector finite; there is
    no learned gain. The result has a root-mean-square of (almost exactly) 1.
    """
    raise NotImplementedError(f"rmsnorm: divide x by sqrt(mean of squares + 1e-5); {LESSON}")


def feed_forward(x: list[Value], fc1: list[list[Value]], fc2: list[list[Value]]) -> list[Value]:
    """Return linear(relu(linear(x, fc1)), fc2).

    fc1 is 4n rows x n columns (widen), fc2 is n rows x 4n columns (narrow back); no biases.
    """
    raise NotImplementedError(f"feed_forward: linear, relu, linear; {LESSON}")


def block(
    x: list[Value],
    layer: dict[str, list[list[Value]]],
    keys: list[list[Value]],
    values: list[list[Value]],
    n_head: int,
    weights_out: list[list[float]] | None = None,
) -> list[Value]:
    """One transformer block for the current position (n_embd Values in, n_embd out).

    layer:        the block's weights under the names in LAYER_KEYS; a KeyError that names
                  every missing one if any is absent.
    keys, values: this layer's attention cache; attention appends to it.
    n_head:       heads of the attention.
    weights_out:  passed on to attention (per-head attention weights, for plots).

    x = x + attention(rmsnorm(x), ...)      the attention sublayer and its residual
    x = x + feed_forward(rmsnorm(x), ...)   the MLP sublayer and its residual
    """
    raise NotImplementedError(
        f"block: x + attention(rmsnorm(x)), then x + feed_forward(rmsnorm(x)); {LESSON}"
    )
