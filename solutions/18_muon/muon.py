"""Kata 18 (reference): Muon, momentum orthogonalized by a Newton-Schulz iteration, with AdamW
for the parameters that are not hidden matrices."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

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
    if G.ndim != 2:
        raise ValueError(f"G must be a 2-D matrix, got a tensor of shape {tuple(G.shape)}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    a, b, c = coefficients
    tall = G.shape[0] > G.shape[1]
    X = G.T if tall else G
    X = X / (torch.linalg.matrix_norm(X) + eps)  # Frobenius >= spectral norm: all sigma <= 1
    for _ in range(steps):
        A = X @ X.T  # rows x rows, rows <= cols
        X = a * X + (b * A + c * (A @ A)) @ X
    return X.T if tall else X


def shape_scale(shape: tuple[int, ...], adjust_lr_fn: str | None = None) -> float:
    """The factor on Muon's step for a (rows, cols) matrix.

    "original" (or None), Jordan's: sqrt(max(1, rows / cols)).
    "match_rms_adamw", Moonshot's: 0.2 * sqrt(max(rows, cols)), so the update's RMS is about
    AdamW's and AdamW's learning rate and weight decay carry over.
    """
    rows, cols = shape[0], shape[1]
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got "
                     f"{adjust_lr_fn!r}")


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
        """Muon's update of one matrix p, in place; state is p's own (self.state[p])."""
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(grad)
        buf, mu = state["momentum_buffer"], group["momentum"]
        buf.mul_(mu).add_(grad)  # B <- mu B + G
        direction = grad + mu * buf if group["nesterov"] else buf
        update = newton_schulz(direction, group["ns_steps"], group["ns_coefficients"],
                               group["eps"])
        p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled, with the plain lr
        p.add_(update, alpha=-group["lr"] * shape_scale(p.shape, group["adjust_lr_fn"]))

    def adamw_update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """AdamW's update of one parameter p, in place (as torch.optim.AdamW)."""
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        p.mul_(1 - group["lr"] * group["weight_decay"])
        denom = (v / (1 - beta2**t)).sqrt_().add_(group["adamw_eps"])
        p.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1**t))


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
    """
    head = getattr(model, "lm_head", None)
    # By identity, not by name: a tied head's weight IS the embedding's.
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) or m is head}
    hidden = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)} - tables
    matrices, decay, no_decay = [], [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in hidden:
            matrices.append(p)
        else:
            (decay if p.ndim >= 2 else no_decay).append(p)
    adamw_lr = lr if adamw_lr is None else adamw_lr
    return Muon([
        {"params": matrices, "use_muon": True, "weight_decay": weight_decay},
        {"params": decay, "use_muon": False, "lr": adamw_lr, "weight_decay": weight_decay},
        {"params": no_decay, "use_muon": False, "lr": adamw_lr, "weight_decay": 0.0},
    ], lr=lr, weight_decay=weight_decay, adjust_lr_fn=adjust_lr_fn, **options)
