"""Kata 07: the Adam optimiser, with bias correction and a learning-rate schedule, on `Value`s.

Read katas/07_adam/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=07` to check your work.
"""

from __future__ import annotations

from collections.abc import Callable

from value import Value

LESSON = "see katas/07_adam/README.md"


class Adam:
    """Adam: each parameter steps by lr * m_hat / (sqrt(v_hat) + eps).

    m and v are per-parameter running averages of the gradient and of its square (both start
    at 0); m_hat = m / (1 - beta1**t) and v_hat = v / (1 - beta2**t) with t = 1 on the first
    step. With lr_schedule, step t (0-based: 0, 1, 2, ...) uses lr_schedule(t) instead of lr.

    A ValueError that names the setting for an empty params list, lr < 0, a beta outside
    [0, 1), or eps < 0.
    """

    def __init__(self, params: list[Value], lr: float = 0.01, beta1: float = 0.85,
                 beta2: float = 0.99, eps: float = 1e-8,
                 lr_schedule: Callable[[int], float] | None = None):
        raise NotImplementedError(f"Adam.__init__: keep the settings, a step count and m, v "
                                  f"per parameter (all 0); {LESSON}")

    def step(self) -> None:
        """Update every parameter from its current grad (leave the grads as they are)."""
        raise NotImplementedError(f"Adam.step: update m and v, bias-correct, move p; {LESSON}")

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0."""
        raise NotImplementedError(f"Adam.zero_grad: p.grad = 0 for every parameter; {LESSON}")


def linear_decay(lr: float, total_steps: int) -> Callable[[int], float]:
    """A schedule step -> lr * (1 - step / total_steps): lr at step 0, lr / total_steps at the
    last step (total_steps - 1), and 0 (never negative) from total_steps on. A ValueError
    that names total_steps when it is below 1.
    """
    raise NotImplementedError(f"linear_decay: return a function of the step; {LESSON}")
