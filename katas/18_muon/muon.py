"""Kata 18: Muon, momentum orthogonalized by a Newton-Schulz iteration, with AdamW for the
parameters that are not hidden matrices.

Read katas/18_muon/README.md first. Muon.__init__ and Muon.step are given (the torch.optim
plumbing); replace every `raise NotImplementedError` below. Run `make kata K=18` to check.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)

import torch
from torch import Tensor, nn

LESSON = "see katas/18_muon/README.md"

# Jordan's quintic: every singular value is pushed towards 1 in 5 steps, not exactly onto it.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
# The classic quintic: slower from small singular values, but it converges to U @ V.T.
CONVERGENT_COEFFICIENTS = (15 / 8, -10 / 8, 3 / 8)
SHAPE_SCALES = ("original", "match_rms_adamw")


def newton_schulz(G: Tensor, steps: int = 5, coefficients: tuple[float, float, float] =
                  NS_COEFFICIENTS, eps: float = 1e-7) -> Tensor:
    """About U @ V.T for G = U S V.T (every singular value moved towards 1), in G's dtype.

    X = G / (||G||_F + eps) first, so every singular value is at most 1; a tall G is
    transposed so that the Gram matrix X X.T is the small one; then `steps` times
    X <- a X + (b A + c A A) X with A = X X.T; and back to G's shape. G is not changed.
    """
    raise NotImplementedError(f"newton_schulz: normalize, transpose if tall, iterate; {LESSON}")


def shape_scale(shape: tuple[int, ...], adjust_lr_fn: str | None = None) -> float:
    """The factor on Muon's step for a (rows, cols) matrix.

    "original" (or None), Jordan's: sqrt(max(1, rows / cols)).
    "match_rms_adamw", Moonshot's: 0.2 * sqrt(max(rows, cols)), so the update's RMS is about
    AdamW's and AdamW's learning rate and weight decay carry over.
    """
    raise NotImplementedError(f"shape_scale: one formula per name; {LESSON}")


class Muon(torch.optim.Optimizer):
    """Muon for the parameter groups with "use_muon": True (the default), AdamW for the others.

    Muon, per 2-D parameter W with gradient G and its own momentum buffer B:
        B <- momentum * B + G;  O = G + momentum * B with nesterov, else B
        W <- W * (1 - lr * weight_decay) - lr * shape_scale(W.shape, adjust_lr_fn) * NS(O)
    AdamW (groups with "use_muon": False), as torch.optim.AdamW with `betas` and `adamw_eps`.
    Defaults and argument names are torch.optim.Muon's. Everything an update needs between
    steps is in self.state, so state_dict() / load_state_dict() resume exactly.
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None,
                 betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8):
        for name, value in (("lr", lr), ("weight_decay", weight_decay), ("momentum", momentum)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn, betas=tuple(betas), adamw_eps=adamw_eps,
                        use_muon=True)
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["adjust_lr_fn"] not in (None, *SHAPE_SCALES):
                raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw', "
                                 f"got {group['adjust_lr_fn']!r}")
            shapes = [tuple(p.shape) for p in group["params"] if p.ndim != 2]
            if group["use_muon"] and shapes:
                raise ValueError(f"Muon updates 2-D matrices only, got parameters of shapes "
                                 f"{shapes}: put them in a group with 'use_muon': False (AdamW)")

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            update = self.muon_update if group["use_muon"] else self.adamw_update
            for p in group["params"]:
                if p.grad is not None:
                    update(p, p.grad, self.state[p], group)
        return loss

    def muon_update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """Muon's update of one matrix p, in place; state is p's own dict (self.state[p]).

        Keep p's momentum buffer in state (e.g. state["momentum_buffer"], zeros the first
        time), so that every parameter has its own and state_dict() saves it. With
        mu = group["momentum"]: B <- mu * B + grad; the direction is grad + mu * B when
        group["nesterov"], else B; O = newton_schulz(direction, group["ns_steps"],
        group["ns_coefficients"], group["eps"]); then p <- p * (1 - lr * weight_decay) and
        p <- p - lr * shape_scale(p.shape, group["adjust_lr_fn"]) * O, with lr and
        weight_decay from the group. Work in place (p.mul_, p.add_): step() runs in no_grad.
        """
        raise NotImplementedError(f"muon_update: momentum, Nesterov, newton_schulz, decay, "
                                  f"step; {LESSON}")

    def adamw_update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """AdamW's update of one parameter p, in place, exactly as torch.optim.AdamW.

        state (p's own dict) keeps the step count t and the two moments m and v (zeros the
        first time). b1, b2 = group["betas"]; t += 1; m <- b1 m + (1 - b1) grad;
        v <- b2 v + (1 - b2) grad^2; p <- p * (1 - lr * weight_decay); then
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + group["adamw_eps"]).
        """
        raise NotImplementedError(f"adamw_update: moments, bias correction, decay; {LESSON}")


def muon_with_adamw(model: nn.Module, lr: float, weight_decay: float = 0.1,
                    adamw_lr: float | None = None, adjust_lr_fn: str | None = "match_rms_adamw",
                    **options) -> Muon:
    """One Muon optimizer for a whole model, in three groups:

    - Muon: the weight of every nn.Linear except the output head (model.lm_head, if any),
      with weight_decay: the hidden matrices of attention and MLP.
    - AdamW with weight_decay: every nn.Embedding's weight, the head's (tied or not) and any
      other parameter of 2 or more dimensions.
    - AdamW without weight decay: everything else that is not 2-D (norm gains, biases).
    Each trainable parameter appears once (a tied weight too), in model order; frozen ones
    are left out. The AdamW groups use adamw_lr (default: lr, right for "match_rms_adamw").
    options go to Muon (momentum, nesterov, betas, ...).

    The groups are dicts {"params": [...], "use_muon": True | False, "weight_decay": ...,
    and "lr" for the AdamW ones}; Muon(groups, lr=lr, weight_decay=weight_decay,
    adjust_lr_fn=adjust_lr_fn, **options) fills in the rest from its defaults.
    """
    raise NotImplementedError(f"muon_with_adamw: three groups, one Muon; {LESSON}")
