"""Kata 14: the SwiGLU MLP, a gated feed-forward layer with the parameters of a GELU MLP."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def silu(x: Tensor) -> Tensor:
    """SiLU (also called swish): x * sigmoid(x). Smooth, ~x for large x, ~0 for very negative x."""
    return x * torch.sigmoid(x)


def swiglu_hidden(n_embd: int, multiple_of: int = 64) -> int:
    """8 * n_embd / 3 rounded UP to a multiple of multiple_of.

    Three (n_embd x hidden) matrices then hold at least as many parameters as the GELU MLP's
    two (n_embd x 4 n_embd), and at most 3 * n_embd * (multiple_of - 1) more.
    """
    for name, value in (("n_embd", n_embd), ("multiple_of", multiple_of)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    steps = -(-8 * n_embd // (3 * multiple_of))  # ceil(8 n_embd / (3 multiple_of)), in ints
    return steps * multiple_of


class SwiGLU(nn.Module):
    """out = dropout(w2(silu(w1(x)) * w3(x))): w1 the gate, w3 the up projection, w2 down."""

    def __init__(self, n_embd: int, hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        hidden = swiglu_hidden(n_embd) if hidden is None else hidden
        self.w1 = nn.Linear(n_embd, hidden, bias=False)  # gate: goes through SiLU
        self.w3 = nn.Linear(n_embd, hidden, bias=False)  # up: what the gate lets through
        self.w2 = nn.Linear(hidden, n_embd, bias=False)  # down: back to the residual stream
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        # F.silu is silu above in one kernel, forward and backward: the fast form.
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))
