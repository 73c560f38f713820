"""Kata 10: the learning-rate schedule, AdamW parameter groups, and gradient clipping.

Read katas/10_schedules/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=10` to check your work.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
from collections.abc import Iterable

import torch
from torch import nn

LESSON = "see katas/10_schedules/README.md"


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """The learning rate for update number `step` (0-based): linear warmup, then cosine decay.

    step < warmup_steps:           max_lr * step / warmup_steps        (so lr_at(0) = 0)
    warmup_steps <= step < max:    min_lr + 0.5 * (max_lr - min_lr) * (1 + cos(pi * p)),
                                   p = (step - warmup_steps) / (max_steps - warmup_steps)
    step >= max_steps:             min_lr

    So lr_at(warmup_steps) = max_lr and lr_at(max_steps) = min_lr (when the two are equal,
    min_lr: the end wins). A ValueError that names the bad argument for step < 0,
    warmup_steps outside 0..max_steps, max_steps <= 0, or min_lr outside 0..max_lr.
    """
    raise NotImplementedError(f"lr_at: a warmup line, then a half cosine down; {LESSON}")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups for torch.optim.AdamW(param_groups(model, 0.1), lr=...).

    Returns [{"params": [...], "weight_decay": weight_decay},   # every parameter with dim >= 2
             {"params": [...], "weight_decay": 0.0}]           # biases, norm gains (dim < 2)
    Each trainable parameter (requires_grad) appears exactly once, even a tied one, and each
    list keeps the order of model.named_parameters(). Frozen parameters are left out.
    """
    raise NotImplementedError(f"param_groups: split model.named_parameters() by p.dim(); {LESSON}")


@torch.no_grad()
def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale every gradient by the same factor so their global L2 norm is at most max_norm.

    The global norm is sqrt(sum over all grads of sum(g**2)). The factor is
    min(1, max_norm / (norm + 1e-6)), exactly as torch.nn.utils.clip_grad_norm_ does.
    Parameters whose .grad is None are skipped; params may be a generator or one tensor.
    Returns the norm BEFORE clipping, as a 0-d tensor (tensor(0.) when no grad exists).
    """
    raise NotImplementedError(f"clip_grad_norm: one global norm, one scale; {LESSON}")
