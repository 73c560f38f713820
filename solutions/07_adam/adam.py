"""Kata 07: the Adam optimiser, with bias correction and a learning-rate schedule, on `Value`s."""

from __future__ import annotations

from collections.abc import Callable

from value import Value


class Adam:
    """Adam: each parameter steps by lr * m_hat / (sqrt(v_hat) + eps).

    m and v are running averages of the gradient and of its square; m_hat and v_hat undo
    their pull towards the zeros they start from. With lr_schedule, step t (0-based) uses
    lr_schedule(t) as its learning rate instead of lr.
    """

    def __init__(self, params: list[Value], lr: float = 0.01, beta1: float = 0.85,
                 beta2: float = 0.99, eps: float = 1e-8,
                 lr_schedule: Callable[[int], float] | None = None):
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam: got no parameters to optimise; pass a non-empty list of Values")
        if lr < 0:
            raise ValueError(f"Adam: lr must be >= 0, got {lr}")
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Adam: {name} must be in [0, 1), got {beta}")
        if eps < 0:
            raise ValueError(f"Adam: eps must be >= 0, got {eps}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.lr_schedule = lr_schedule
        self.step_count = 0  # steps taken so far
        self.m = [0.0] * len(self.params)  # running average of the gradient
        self.v = [0.0] * len(self.params)  # running average of the squared gradient

    def step(self) -> None:
        """Update every parameter from its current grad (grads are left as they are)."""
        lr = self.lr if self.lr_schedule is None else self.lr_schedule(self.step_count)
        self.step_count += 1
        t = self.step_count  # 1 on the first step
        # m and v start at 0, so after t steps they are (1 - beta**t) times too small.
        m_correction = 1.0 - self.beta1**t
        v_correction = 1.0 - self.beta2**t
        for i, p in enumerate(self.params):
            g = p.grad
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * g
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * g * g
            m_hat = self.m[i] / m_correction
            v_hat = self.v[i] / v_correction
            p.data -= lr * m_hat / (v_hat**0.5 + self.eps)

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0: backward() adds to grads, so call this each step."""
        for p in self.params:
            p.grad = 0.0


def linear_decay(lr: float, total_steps: int) -> Callable[[int], float]:
    """A schedule that starts at lr and falls in a straight line: step -> lr * (1 - step/total).

    Step 0 gets the full lr, the last step (total_steps - 1) gets lr / total_steps, and any
    step from total_steps on gets 0 (never a negative rate).
    """
    if total_steps < 1:
        raise ValueError(f"linear_decay: total_steps must be at least 1, got {total_steps}")

    def schedule(step: int) -> float:
        return lr * max(0.0, 1.0 - step / total_steps)

    return schedule
