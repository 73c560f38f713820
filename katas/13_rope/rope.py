"""Kata 13: RMSNorm with a learned gain, and rotary position embeddings (RoPE).

Read katas/13_rope/README.md first. Replace every `raise NotImplementedError` below; run
`make kata K=13` to check your work.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401  (rope_attention can use scaled_dot_product_attention)
from torch import Tensor

LESSON = "see katas/13_rope/README.md"


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · weight, over the last dimension.

    No mean is subtracted and there is no bias. `self.weight` is a learnable parameter of
    shape (dim,) that starts at 1. The statistic, the division and the gain are computed in
    float32 (float64 input may stay float64) whatever the input's and the gain's dtype, and
    the result is rounded to the input dtype once, at the end.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        raise NotImplementedError(f"RMSNorm.__init__: self.eps and a gain self.weight; {LESSON}")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"RMSNorm.forward: x / sqrt(mean(x²) + eps) · weight; {LESSON}")


def rope_angles(positions: Tensor, head_dim: int, base: float = 10000.0,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """(T,) integer positions -> (T, head_dim // 2) angles m * theta_i.

    theta_i = base ** (-2i / head_dim) for i = 0 .. head_dim/2 - 1, computed in `dtype`.
    A ValueError naming head_dim when it is not even.
    """
    raise NotImplementedError(f"rope_angles: position times frequency, one per pair; {LESSON}")


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate x (..., T, head_dim) for tokens at absolute positions (T,).

    ADJACENT pairing: numbers 2i and 2i+1 form pair i, turned by the angle m * theta_i at
    position m. Same shape and dtype as x; x itself is left untouched. Any non-negative
    positions work. A ValueError giving x's shape when x has no T axis, and one naming
    positions and its shape unless positions is exactly (T,) (1-D).
    """
    raise NotImplementedError(f"apply_rope: turn each pair (2i, 2i+1) by m * theta_i; {LESSON}")


def rope_attention(q: Tensor, k: Tensor, v: Tensor, positions: Tensor,
                   base: float = 10000.0) -> Tensor:
    """Causal attention with RoPE: q, k, v (..., T, head_dim); q and k are rotated, v is not.
    The output has q's shape and dtype."""
    raise NotImplementedError(f"rope_attention: rotate q and k, then causal attention; {LESSON}")
