"""Bjontegaard delta rate: the average rate difference of one rate-quality curve against another at
equal quality, over the quality range both curves cover (VCEG-M33's cubic fit of log-rate against
quality, integrated exactly).

Quality here is PSNR, or LFW accuracy in percent. Accuracy curves saturate: points that do not raise
the quality over a cheaper point are dropped first (the curve's upper hull in rate order), so the fit
stays a function of quality.
"""

from __future__ import annotations

import numpy as np


def monotone(rates, quality) -> tuple[np.ndarray, np.ndarray]:
    """The points, in rate order, that each raise the quality over every cheaper point."""
    order = np.argsort(rates)
    r, q = np.asarray(rates, float)[order], np.asarray(quality, float)[order]
    keep = [i for i in range(len(r)) if i == 0 or q[i] > q[: i].max()]
    return r[keep], q[keep]


def bd_rate(anchor_rates, anchor_quality, test_rates, test_quality) -> float | None:
    """Percent rate change of `test` against `anchor` at equal quality (negative = test saves);
    None when the curves have fewer than 2 usable points or do not overlap in quality."""
    ra, qa = monotone(anchor_rates, anchor_quality)
    rt, qt = monotone(test_rates, test_quality)
    if len(ra) < 2 or len(rt) < 2:
        return None
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if hi <= lo:
        return None
    deg_a, deg_t = min(3, len(ra) - 1), min(3, len(rt) - 1)
    pa = np.polyint(np.polyfit(qa, np.log(ra), deg_a))
    pt = np.polyint(np.polyfit(qt, np.log(rt), deg_t))
    mean_diff = ((np.polyval(pt, hi) - np.polyval(pt, lo)) - (np.polyval(pa, hi) - np.polyval(pa, lo))) / (hi - lo)
    return float((np.exp(mean_diff) - 1) * 100)
