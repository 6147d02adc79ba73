"""The project's statistics: the 95% t interval of a mean (:func:`ci95`, the one interval every table
uses), Student's t quantiles without scipy, and the model gap of DESIGN section 4 (:func:`model_gap`)."""

from __future__ import annotations

import math

import numpy as np


def ci95(values: np.ndarray) -> float:
    """Half-width of the 95% Student-t interval of the mean of ``values`` (NaN for fewer than two)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float("nan")
    return float(t_quantile(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def model_gap(learned: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """The model gap of DESIGN section 4 and the half-width of its 95% interval.

    ``learned`` and ``exact`` (n,) are paired real-env returns of one planner planning with the learned
    simulator and with the exact one: per episode, where pair i is the same game (game seed and planner
    seed) played both ways (:func:`~gridmarl_wm.planning.play_paired`), or per-seed means of such episodes. The gap is the ratio
    of the means, mean(learned) / mean(exact); its interval is the delta-method one for a ratio of paired
    means, t(0.975, n - 1) * sd(learned - gap * exact) / (sqrt(n) * mean(exact)), so whatever the two runs
    of a pair share cancels. NaN when the exact mean is not positive (a ratio of returns then says nothing)
    or, for the interval, with fewer than two pairs.
    """
    learned = np.asarray(learned, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    if learned.shape != exact.shape or learned.ndim != 1:
        raise ValueError(
            f"learned and exact must be paired returns of the same shape (n,), got {learned.shape} and "
            f"{exact.shape}"
        )
    den = exact.mean() if len(exact) else float("nan")
    if not den > 0:
        return float("nan"), float("nan")
    gap = float(learned.mean() / den)
    if len(learned) < 2:
        return gap, float("nan")
    residual = learned - gap * exact
    half = t_quantile(0.975, len(learned) - 1) * residual.std(ddof=1) / (math.sqrt(len(learned)) * den)
    return gap, float(half)


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``dof`` degrees of freedom (``dof`` >= 1).

    scipy is not a dependency: the CDF is written through the regularised incomplete beta function
    (evaluated by its continued fraction) and inverted by bisection to about 1e-12.
    """
    if isinstance(dof, bool) or not isinstance(dof, int | np.integer) or dof < 1:
        raise ValueError(f"dof must be an integer >= 1, got {dof!r}")
    if not 0 < p < 1:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, dof)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, dof) < p:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _t_cdf(x: float, dof: int) -> float:
    """P(T <= x) for x >= 0: 1 - I_{dof / (dof + x^2)}(dof / 2, 1 / 2) / 2."""
    return 1.0 - 0.5 * _incomplete_beta(dof / (dof + x * x), dof / 2.0, 0.5)


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point: use the symmetry
        return 1.0 - _incomplete_beta(1 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * f / a
