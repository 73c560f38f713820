"""Kata 10 (reference): the learning-rate schedule, AdamW parameter groups, gradient clipping."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """The learning rate for update number `step` (0-based): linear warmup, then cosine decay.

    lr_at(0) = 0, lr_at(warmup_steps) = max_lr, lr_at(max_steps) = min_lr, and min_lr after
    (when warmup_steps == max_steps, the end wins: min_lr).
    """
    if step < 0 or not 0 <= warmup_steps <= max_steps or max_steps <= 0:
        raise ValueError(
            f"lr_at(step={step}, warmup_steps={warmup_steps}, max_steps={max_steps}): need "
            "step >= 0 and 0 <= warmup_steps <= max_steps with max_steps > 0"
        )
    if not 0 <= min_lr <= max_lr:
        raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)  # 0 -> 1 over the decay
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups for torch.optim.AdamW: matrices (>= 2-D) decay, everything else does not.

    Weight matrices and embeddings are decayed; biases and norm gains (1-D) are not, since
    pulling them towards 0 only fights the layer's job. named_parameters() yields a tied
    weight once, and in model order, so the optimizer's state lines up on reload.
    """
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@torch.no_grad()
def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale all gradients together so that their global L2 norm is at most max_norm.

    Returns the norm before clipping. Parameters without a gradient are skipped. Like
    torch.nn.utils.clip_grad_norm_, the scale is max_norm / (norm + 1e-6), capped at 1.
    """
    if isinstance(params, torch.Tensor):
        params = [params]
    grads = [p.grad for p in params if p.grad is not None]  # a list: params may be a generator
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
    total_norm = torch.linalg.vector_norm(norms)  # sqrt of the sum of every squared entry
    scale = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)  # never scale up
    for g in grads:
        g.mul_(scale)
    return total_norm
