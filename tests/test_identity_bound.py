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


def test_the_encoder_side_search_never_costs_more_than_the_plain_code():
    from scalableface import modelset
    from scalableface.eval.identity_search import searched_symbols

    codec = modelset.load().base.identity(1)
    rng = np.random.default_rng(0)
    d = codec.reconstruct(codec.sample_symbols(64, rng)) + rng.normal(0, 0.02, (64, 128)).astype(np.float32)
    plain = codec.quantize(d)
    assert np.array_equal(searched_symbols(codec, d, np.eye(128), sweeps=0), plain)
    w = np.diag(rng.uniform(0.1, 2, 128))
    searched = searched_symbols(codec, d, w, sweeps=2)
    cost = lambda s: np.einsum("ni,ij,nj->n", codec.reconstruct(s) - d, w, codec.reconstruct(s) - d)
    assert (cost(searched) <= cost(plain) + 1e-9).all() and (cost(searched) < cost(plain)).any()
    for j, t in enumerate(codec.tables):
        assert t.offset <= searched[:, j].min() and searched[:, j].max() < t.offset + len(t.freqs)


def test_the_water_level_spends_the_bits_asked_for():
    from scalableface.eval.identity_bound import water_level

    lam = np.array([2.0, 1.0, 0.3, 0.01])
    for bits in (0.5, 3.0, 12.0):
        theta = water_level(lam, bits)
        assert np.isclose(gaussian_bits(lam, np.minimum(lam, theta).sum()), bits, rtol=1e-6)


def test_the_gaussian_test_channel_has_the_error_of_its_rate():
    from scalableface.eval.identity_bound import test_channel, water_level

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    lam = np.array([1.0, 0.5, 0.2, 0.1, 0.02, 0.001])
    cov = basis @ np.diag(lam) @ basis.T
    mean = np.arange(6.0)
    x = rng.multivariate_normal(mean, cov, size=40_000)
    bits = 6.0
    decoded = test_channel(x, mean, cov, bits, np.random.default_rng(1))
    distortion = np.minimum(lam, water_level(lam, bits)).sum()
    # the backward channel of reverse water-filling: mean squared error D(R), and decoded values
    # carry none of the error (it is orthogonal to them)
    assert np.isclose(((decoded - x) ** 2).sum(axis=1).mean(), distortion, rtol=0.03)
    assert abs(np.mean(((decoded - mean) * (x - decoded)).sum(axis=1))) < 0.03 * distortion
    # more bits, less error
    finer = test_channel(x, mean, cov, 12.0, np.random.default_rng(1))
    assert ((finer - x) ** 2).sum(axis=1).mean() < 0.5 * distortion
