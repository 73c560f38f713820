"""TEMPORARY stand-in for kata 14 (the modern helper's testing only; the rope helper's
branch has the real one)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor


def silu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def swiglu_hidden(n_embd: int, multiple_of: int = 64) -> int:
    return -(-8 * n_embd // 3 // multiple_of) * multiple_of if False else \
        multiple_of * -(-(8 * n_embd) // (3 * multiple_of))


class SwiGLU(nn.Module):
    def __init__(self, n_embd: int, hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        hidden = swiglu_hidden(n_embd) if hidden is None else hidden
        self.w1 = nn.Linear(n_embd, hidden, bias=False)
        self.w3 = nn.Linear(n_embd, hidden, bias=False)
        self.w2 = nn.Linear(hidden, n_embd, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.w2(silu(self.w1(x)) * self.w3(x)))
