import numpy as np
import pytest

from scalableface.eval.bdrate import bd_rate, monotone

RATES = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
PSNR = np.array([26.0, 29.5, 33.0, 36.0, 38.5])


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_same_curve_is_zero_and_half_the_rate_is_minus_fifty(method):
    assert bd_rate(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0, abs=1e-9)
    assert bd_rate(RATES, PSNR, RATES / 2, PSNR, method) == pytest.approx(-50, abs=1e-6)
    assert bd_rate(RATES / 2, PSNR, RATES, PSNR, method) == pytest.approx(100, abs=1e-6)


def test_curves_without_common_quality_give_none():
    assert bd_rate(RATES, PSNR, RATES, PSNR + 20) is None
    assert bd_rate(RATES[:1], PSNR[:1], RATES, PSNR) is None


def test_points_that_do_not_raise_quality_are_dropped():
    r, q = monotone([0.4, 0.1, 0.8, 0.2], [97.0, 90.0, 96.5, 95.0])
    assert r.tolist() == [0.1, 0.2, 0.4] and q.tolist() == [90.0, 95.0, 97.0]


def test_pchip_does_not_overshoot_on_a_saturating_curve():
    # accuracy that saturates with noise: the test codec is cheaper at every accuracy it reaches
    rates = np.array([0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.7])
    acc = np.array([70.0, 89.7, 97.6, 98.3, 98.9, 98.7, 98.8])
    assert bd_rate(rates, acc, rates * 0.7, acc, "pchip") == pytest.approx(-30, abs=1e-6)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError):
        bd_rate(RATES, PSNR, RATES, PSNR, "linear")
