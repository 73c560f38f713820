"""Kata 13: RMSNorm with a learned gain, and rotary position embeddings (RoPE)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · weight, over the last dimension.

    No mean is subtracted and there is no bias: one statistic and one vector of parameters,
    where LayerNorm has two of each. The statistic is computed in float32 (or float64 for
    float64 input) whatever the input dtype, and the result is returned in the input dtype.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # the learned gain, 1 at the start

    def forward(self, x: Tensor) -> Tensor:
        # In bf16/fp16, x² overflows (fp16 tops out at 65504) or loses its low bits.
        work = torch.promote_types(x.dtype, torch.float32)
        x_work = x.to(work)
        mean_square = x_work.pow(2).mean(dim=-1, keepdim=True)
        normed = x_work * torch.rsqrt(mean_square + self.eps)
        return (normed * self.weight.to(work)).to(x.dtype)


def rope_angles(positions: Tensor, head_dim: int, base: float = 10000.0,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """(T,) integer positions -> (T, head_dim // 2) angles m * theta_i.

    theta_i = base ** (-2i / head_dim) for i = 0 .. head_dim/2 - 1, computed in `dtype`.

    Row m holds the angle of every pair at position m: pair 0 turns fastest (one radian per
    position), the last pair slowest.
    """
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be even (RoPE turns pairs of numbers), got {head_dim}")
    i = torch.arange(head_dim // 2, dtype=dtype, device=positions.device)
    theta = base ** (-2 * i / head_dim)  # (head_dim // 2,) radians per position
    return positions.to(dtype)[:, None] * theta[None, :]


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate x (..., T, head_dim) for tokens at absolute positions (T,).

    ADJACENT pairing: numbers 2i and 2i+1 form pair i, turned by the angle m * theta_i at
    position m. Same shape and dtype as x; x itself is left untouched. Any non-negative
    positions work: there is no table to run off the end of.
    """
    if x.dim() < 2:
        raise ValueError(f"x must be (..., T, head_dim), got shape {tuple(x.shape)}")
    T, head_dim = x.shape[-2], x.shape[-1]
    if positions.dim() != 1 or positions.shape[0] != T:
        raise ValueError(f"positions must be (T,) = ({T},), one per token of x, "
                         f"got shape {tuple(positions.shape)}")
    # Pair i, (x[2i], x[2i+1]), read as the complex number x[2i] + j·x[2i+1]: turning it by
    # the angle a is multiplying it by e^(j·a) = cos a + j·sin a. That is the 2-D rotation
    # [[cos, -sin], [sin, cos]] in one multiplication (one pass over memory) where the real
    # form takes four products, two sums and a stack: the fast form.
    # In float32 at least: bf16 cannot hold m * theta for large m.
    work = torch.promote_types(x.dtype, torch.float32)
    angles = rope_angles(positions, head_dim, base, dtype=work)  # (T, head_dim // 2)
    turn = torch.complex(angles.cos(), angles.sin())  # broadcast over the leading dims
    pairs = torch.view_as_complex(x.to(work).unflatten(-1, (head_dim // 2, 2)).contiguous())
    return torch.view_as_real(pairs * turn).flatten(-2).to(x.dtype)


def rope_attention(q: Tensor, k: Tensor, v: Tensor, positions: Tensor,
                   base: float = 10000.0) -> Tensor:
    """Causal attention with RoPE: q and k (..., T, head_dim) are rotated, v is not.

    The scores q_m·k_n then depend on m - n only, and the output on nothing but the
    relative positions of the tokens.
    """
    q, k = apply_rope(q, positions, base), apply_rope(k, positions, base)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
