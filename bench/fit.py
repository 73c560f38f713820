"""Fit a saturating power law, L(x) = E + A * x**(-alpha), to measured losses.

Kaplan et al. (2020) and Hoffmann et al. (2022) fit this family to loss against model size N
(non-embedding parameters) or data D: E is the loss no amount of x removes (the data's own
entropy, as this model family sees it), A and alpha say how fast the rest falls away.

    from fit import fit_power_law
    law = fit_power_law(sizes, losses)
    law.E, law.A, law.alpha, law(1e6)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit


@dataclass(frozen=True)
class PowerLaw:
    E: float
    A: float
    alpha: float

    def __call__(self, x):
        return self.E + self.A * np.asarray(x, dtype=float) ** (-self.alpha)

    def __str__(self) -> str:
        return f"L(x) = {self.E:.3f} + {self.A:.3g} * x^(-{self.alpha:.3f})"


def _law(x, E, log_A, alpha):
    # A is fitted through its log: A spans orders of magnitude, log A does not.
    return E + np.exp(log_A - alpha * np.log(x))


def fit_power_law(x, loss) -> PowerLaw:
    """Least-squares fit of loss = E + A * x**(-alpha) with E >= 0, A > 0, alpha > 0.

    Needs at least 3 points (three unknowns) with x > 0 and finite losses.
    """
    x = np.asarray(x, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if x.shape != loss.shape or x.ndim != 1:
        raise ValueError(f"x and loss must be 1-D and of one length, got {x.shape}, {loss.shape}")
    if len(x) < 3:
        raise ValueError(
            f"a power law with an offset has 3 unknowns: need >= 3 points, got {len(x)}"
        )
    if not (np.all(x > 0) and np.all(np.isfinite(loss))):
        raise ValueError("every x must be > 0 and every loss finite")
    # Start from E just under the smallest loss and a straight line through the rest in log-log.
    E0 = 0.9 * loss.min()
    slope, intercept = np.polyfit(np.log(x), np.log(np.maximum(loss - E0, 1e-12)), 1)
    start = (E0, intercept, max(-slope, 1e-3))
    bounds = ([0.0, -50.0, 1e-4], [loss.min(), 50.0, 5.0])
    (E, log_A, alpha), _ = curve_fit(_law, x, loss, p0=start, bounds=bounds, maxfev=20000)
    return PowerLaw(float(E), float(np.exp(log_A)), float(alpha))
