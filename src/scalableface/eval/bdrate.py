"""Bjontegaard delta rate: the average rate difference of one rate-quality curve against another at
equal quality, over the quality range both curves cover.

Quality here is PSNR, or LFW accuracy in percent. PSNR curves use VCEG-M33's cubic fit of log-rate
against quality, integrated exactly. Accuracy curves saturate near the reference and carry sampling
noise of about a point, where a global cubic oscillates; they use the piecewise cubic (PCHIP)
interpolation of JVET's common test conditions instead, which passes through every point without
overshoot. Either way, points that do not raise the quality over a cheaper point are dropped first (the
curve's upper hull in rate order), so log-rate stays a function of quality.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator


def monotone(rates, quality) -> tuple[np.ndarray, np.ndarray]:
    """The points, in rate order, that each raise the quality over every cheaper point."""
    order = np.argsort(rates)
    r, q = np.asarray(rates, float)[order], np.asarray(quality, float)[order]
    keep = [i for i in range(len(r)) if i == 0 or q[i] > q[: i].max()]
    return r[keep], q[keep]


def _log_rate_integral(rates: np.ndarray, quality: np.ndarray, lo: float, hi: float, method: str) -> float:
    if method == "pchip":
        return float(PchipInterpolator(quality, np.log(rates)).integrate(lo, hi))
    p = np.polyint(np.polyfit(quality, np.log(rates), min(3, len(rates) - 1)))
    return float(np.polyval(p, hi) - np.polyval(p, lo))


def bd_rate(anchor_rates, anchor_quality, test_rates, test_quality, method: str = "cubic") -> float | None:
    """Percent rate change of `test` against `anchor` at equal quality (negative = test saves);
    None when the curves have fewer than 2 usable points or do not overlap in quality.
    method: "cubic" (VCEG-M33) or "pchip" (piecewise cubic, for saturating curves)."""
    if method not in ("cubic", "pchip"):
        raise ValueError(f"unknown BD-rate method {method!r}")
    ra, qa = monotone(anchor_rates, anchor_quality)
    rt, qt = monotone(test_rates, test_quality)
    if len(ra) < 2 or len(rt) < 2:
        return None
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if hi <= lo:
        return None
    diff = _log_rate_integral(rt, qt, lo, hi, method) - _log_rate_integral(ra, qa, lo, hi, method)
    return float((np.exp(diff / (hi - lo)) - 1) * 100)
