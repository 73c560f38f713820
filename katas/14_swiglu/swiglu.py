"""Kata 14: the SwiGLU MLP, a gated feed-forward layer with the parameters of a GELU MLP.

Read katas/14_swiglu/README.md first. Replace every `raise NotImplementedError` below; run
`make kata K=14` to check your work.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

LESSON = "see katas/14_swiglu/README.md"


def silu(x: Tensor) -> Tensor:
    """SiLU (also called swish): x * sigmoid(x), elementwise, in x's dtype."""
    raise NotImplementedError(f"silu: x * sigmoid(x); {LESSON}")


def swiglu_hidden(n_embd: int, multiple_of: int = 64) -> int:
    """8 * n_embd / 3 rounded UP to a multiple of multiple_of (d=384 -> 1024, d=128 -> 384).

    ValueError, naming the argument and its value, unless both are positive ints (a bool,
    such as True, is not a size).
    """
    raise NotImplementedError(f"swiglu_hidden: 8 * n_embd / 3, rounded up; {LESSON}")


class SwiGLU(nn.Module):
    """out = dropout(w2(silu(w1(x)) * w3(x))), three Linear layers without bias.

    w1: n_embd -> hidden (the gate, through SiLU); w3: n_embd -> hidden (up);
    w2: hidden -> n_embd (down). hidden defaults to swiglu_hidden(n_embd).
    """

    def __init__(self, n_embd: int, hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        raise NotImplementedError(f"SwiGLU.__init__: w1, w3, w2 and a dropout; {LESSON}")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"SwiGLU.forward: w2(silu(w1 x) * w3 x); {LESSON}")
