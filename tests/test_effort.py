"""Encode effort: a search for cheaper enhancement latents, decoded by the same decoder."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import scalableface as sf
from scalableface import codec, container, modelset
from scalableface.cli import main
from scalableface.container import LayerType
from scalableface.errors import ModelError, SfaceError
from scalableface.layers import refine
from scalableface.layers.enhance import EnhancementCodec


@pytest.fixture(scope="module")
def crop(photo):
    return codec.align_image(str(photo)).crop


@pytest.fixture(scope="module")
def enh():
    return modelset.load().enhancement


def cost(data: bytes, crop: np.ndarray, lam: float) -> float:
    """What the network was trained to minimise: lambda * 255^2 * MSE (pixels in [0, 1]) + payload bpp."""
    f = container.parse(data)
    payload = next(l.payload for l in f.layers if l.type == LayerType.ENHANCEMENT)
    mse = np.mean((sf.decode(data).image.astype(np.float64) - crop) ** 2) / 255 ** 2
    return lam * 255 ** 2 * mse + 8 * len(payload) / crop.shape[0] / crop.shape[1]


def test_the_default_effort_decodes_and_never_costs_more_than_the_plain_encoder(crop, enh):
    plain_total = searched_total = 0.0
    low = getattr(enh, "low", None)
    # the ends, the default, and each network's end where the model has two (a search takes seconds)
    for q in sorted({1, enh.default_quality, enh.qualities} | ({low.qualities, low.qualities + 1} if low else set())):
        plain, searched = codec.encode_crops(crop[None], quality=q, effort=0)[0], codec.encode_crops(crop[None], quality=q)[0]
        p, s = container.parse(plain), container.parse(searched)
        assert s.header == p.header
        assert [l.payload for l in s.layers[:2]] == [l.payload for l in p.layers[:2]]  # the base layer is untouched
        lam = enh.network(q).lambda_of(q)
        c0, c1 = cost(plain, crop, lam), cost(searched, crop, lam)
        assert c1 <= c0 + 1e-12, q
        plain_total, searched_total = plain_total + c0, searched_total + c1
    assert searched_total < 0.99 * plain_total  # and the search does find cheaper codes


def test_the_default_is_effort_1_and_the_longer_searches_are_deterministic(crop, enh):
    q = enh.default_quality
    lam = enh.network(q).lambda_of(q)
    assert refine.DEFAULT_EFFORT == 1
    assert codec.encode_crops(crop[None], quality=2) == codec.encode_crops(crop[None], quality=2, effort=1)
    assert codec.encode_crops(crop[None], quality=2, effort=2) == codec.encode_crops(crop[None], quality=2, effort=2)
    plain = cost(codec.encode_crops(crop[None], quality=q, effort=0)[0], crop, lam)
    assert cost(codec.encode_crops(crop[None], quality=q, effort=2)[0], crop, lam) <= plain
    # an encoder that writes only the base layer has nothing to search: the default effort does not refuse it
    assert container.parse(codec.encode_crops(crop[None], layers="base")[0]).layer(LayerType.ENHANCEMENT) is None


def test_levels_search_longer_and_their_signatures_differ():
    levels = [refine.search(e) for e in range(len(refine.EFFORT_SEARCH))]
    assert levels[0] == (0, 0) and all(a[0] < b[0] for a, b in zip(levels, levels[1:]))
    assert len({refine.signature(e) for e in range(len(levels))}) == len(levels)
    assert refine.level(None) == refine.DEFAULT_EFFORT and refine.level(0) == 0
    with pytest.raises(ValueError, match="effort must be"):
        refine.level(len(levels))


def test_a_face_gets_the_same_search_noise_in_any_batch():
    gens = lambda n: [torch.Generator().manual_seed(0) for _ in range(n)]  # noqa: E731
    r = torch.rand(3, 4, 5, 5, generator=torch.Generator().manual_seed(1)) * 6
    together = refine.annealed_rounding(r, 0.3, gens(3))
    alone = refine.annealed_rounding(r[1:2], 0.3, gens(1))
    assert torch.equal(together[1:2], alone)


def test_effort_needs_the_enhancement_layer_and_a_known_level(crop):
    with pytest.raises(SfaceError, match="layers='full'"):
        codec.encode_crops(crop[None], layers="base", effort=1)
    with pytest.raises(SfaceError, match="effort must be"):
        codec.encode_crops(crop[None], effort=len(refine.EFFORT_SEARCH))
    with pytest.raises(ValueError, match="effort must be"):
        refine.search(-1)


def test_annealed_rounding_picks_a_neighbouring_integer_and_hardens_as_it_cools():
    gens = [torch.Generator().manual_seed(k) for k in range(4)]
    r = (torch.rand(4, 2500, generator=torch.Generator().manual_seed(9)) * 20 - 10).requires_grad_(True)
    warm = refine.annealed_rounding(r, 0.5, gens)
    assert torch.all(warm >= torch.floor(r)) and torch.all(warm <= torch.floor(r) + 1)
    warm.sum().backward()
    assert torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0
    cold = refine.annealed_rounding(r.detach(), 0.01, gens)
    assert (cold - torch.round(r.detach())).abs().mean() < 0.05
    assert (warm.detach() - torch.round(r.detach())).abs().mean() > 0.1


def test_an_untrained_quality_stands_for_the_lambdas_of_its_trained_neighbours_continued(enh):
    net = enh.network(1)
    codec_ = EnhancementCodec(net.net, net.z_medians, net.z_tables, net.y_tables, lambdas=None)
    with pytest.raises(ModelError, match="lambdas"):
        codec_.lambda_of(1)
    rows = net.qualities
    codec_.lambdas = [None] + [0.001 * 2 ** k for k in range(rows - 3)] + [None, None]
    assert codec_.lambda_of(2) == 0.001
    assert codec_.lambda_of(1) == pytest.approx(0.0005)
    assert codec_.lambda_of(rows) == pytest.approx(0.001 * 2 ** (rows - 3 + 1))
    codec_.lambdas = [0.001, None, 0.004] + [0.008 * 2 ** k for k in range(rows - 3)]
    assert codec_.lambda_of(2) == pytest.approx(0.002)


def test_cli_encode_effort(tmp_path, photo):
    runner = CliRunner()
    out = tmp_path / "face.sfc"
    r = runner.invoke(main, ["encode", str(photo), str(out), "-q", "3", "--effort", "1"])
    assert r.exit_code == 0, r.output
    assert sf.decode(out.read_bytes()).layer == "full"
    r = runner.invoke(main, ["encode", str(photo), str(tmp_path / "b.sfc"), "--effort", "1", "--layers", "base"])
    assert r.exit_code != 0 and "--layers full" in r.output
    r = runner.invoke(main, ["encode", str(photo), str(tmp_path / "d.sfc"), "--layers", "base"])  # default effort
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["encode", str(photo), str(tmp_path / "c.sfc"), "--effort", str(len(refine.EFFORT_SEARCH))])
    assert r.exit_code != 0 and "--effort" in r.output


def test_the_bench_measures_an_effort_as_a_codec_of_its_own(crop):
    from scalableface import models
    from scalableface.eval import bench

    name = models.default_model().name
    plain, searched = bench.sface_full(name), bench.sface_full(name, effort=1)
    assert searched.name == f"{name}-e1" and "effort 1" in searched.label and searched.key != plain.key
    coded, _ = searched.run(crop[None], 1, None)
    assert coded.payload_bytes[0] == bench.payload_bytes(codec.encode_crops(crop[None], quality=1, effort=1)[0])
    assert coded.images.shape == (1, 128, 128, 3)
