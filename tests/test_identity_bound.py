import numpy as np

from scalableface.eval.identity_bound import gaussian_bits


def test_gaussian_rate_distortion_is_reverse_water_filling():
    # isotropic: every dimension gets D / n, so R = n/2 log2(sigma^2 n / D)
    assert np.isclose(gaussian_bits(np.full(8, 0.5), 0.4), 4 * np.log2(0.5 * 8 / 0.4), rtol=1e-6)
    # a dimension below the water level costs nothing: only the first is coded, at theta = D - 0.01
    assert np.isclose(gaussian_bits(np.array([1.0, 0.01]), 0.11), 0.5 * np.log2(1.0 / 0.1), rtol=1e-6)
    assert gaussian_bits(np.array([1.0, 0.5]), 1.5) == 0.0  # D at the total variance: nothing to send
    rates = [gaussian_bits(np.array([2.0, 1.0, 0.3]), d) for d in (0.1, 0.5, 1.0, 2.0)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
