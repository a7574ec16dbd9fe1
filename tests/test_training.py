"""The training loops are real: a few steps of tiny models run, checkpoint, resume and export."""

import json

import numpy as np
import pytest
import torch

from scalableface.errors import BitstreamError

from scalableface import entropy
from scalableface.layers.base import BaseLayer
from scalableface.layers.identity import load_identity_codec
from scalableface.train import identity, texture


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    n = identity.UTK_VALIDATION + 24
    desc = (rng.normal(0, 0.12, (n, 1, 128)) + rng.normal(0, 0.02, (n, 2, 128))).astype(np.float32)
    np.save(d / "utk_desc.npy", desc)
    crops = rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8)
    np.save(d / "utk_crops.npy", crops)
    return d


def log_lines(path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_identity_training_runs_resumes_and_exports(cache):
    args = ["--rate", "1", "--lmbda", "300", "--latent", "8", "--batch", "32", "--save-every", "10", "--cache", str(cache)]
    identity.main(args + ["--steps", "20"])
    identity.main(args + ["--steps", "30"])  # resumes from step 20
    steps = [r["step"] for r in log_lines(cache / "identity_r1.log")]
    assert steps == [10, 20, 30]
    tensors = dict(np.load(cache / "identity_r1_export.npz"))
    codec = load_identity_codec(tensors, 1)
    d = np.load(cache / "utk_desc.npy").mean(axis=1)[:5]
    q = codec.quantize(d)
    payload = entropy.encode(q[0].tolist(), codec.tables)
    assert np.array_equal(codec.decode_symbols(payload), q[0])
    assert codec.reconstruct(q).shape == (5, 128)


def test_identity_training_reads_imperfect_views_and_extra_faces(cache, tmp_path):
    fresh = tmp_path / "views"
    fresh.mkdir()
    (fresh / "utk_desc.npy").symlink_to(cache / "utk_desc.npy")
    n = identity.UTK_VALIDATION + 24
    rng = np.random.default_rng(1)
    np.save(fresh / "utk_aug0_desc.npy", rng.normal(0, 0.12, (n, 128)).astype(np.float32))
    np.save(fresh / "utkx_desc.npy", rng.normal(0, 0.12, (10, 2, 128)).astype(np.float32))
    np.save(fresh / "utkx_aug0_desc.npy", rng.normal(0, 0.12, (10, 128)).astype(np.float32))
    train, val = identity.load_views(fresh)
    # 24 training faces of UTKFace and 10 of the extra set; crop, mirror, average and one view each
    assert tuple(train.shape) == (34, 4, 128) and tuple(val.shape) == (identity.UTK_VALIDATION, 128)
    assert np.allclose(train[0, 3].numpy(), np.load(fresh / "utk_aug0_desc.npy")[0])
    args = ["--rate", "2", "--lmbda", "300", "--latent", "8", "--batch", "32", "--save-every", "5", "--cache", str(fresh),
            "--pair-weight", "1", "--steps", "5"]
    identity.main(args)
    assert [r["step"] for r in log_lines(fresh / "identity_r2.log")] == [5]


def test_pair_loss_counts_only_moved_distances():
    import torch

    d = torch.randn(8, 128) * 0.1
    assert float(identity.pair_loss(d, d)) == 0
    assert float(identity.pair_loss(d + 0.05 * torch.randn(8, 128), d)) > 0


def test_imperfect_views_are_deterministic_and_change_the_crop():
    from scalableface.augment import views

    crops = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    a, b = views(crops, seed=0), views(crops, seed=0)
    assert np.array_equal(a, b) and a.shape == crops.shape and a.dtype == np.uint8
    assert not np.array_equal(a, crops) and not np.array_equal(a, views(crops, seed=1))
    assert np.array_equal(views(crops[1:], seed=0, start=1), a[1:])  # a view depends on the crop's index, not the chunk


def test_texture_training_runs_and_exports(cache):
    args = ["--latent", "8", "--width", "4", "--batch", "2", "--save-every", "2", "--threads", "1", "--cache", str(cache)]
    texture.main(args + ["--max-steps", "2"])
    texture.main(args + ["--max-steps", "4"])
    assert [r["step"] for r in log_lines(cache / "texture.log")] == [2, 4]
    ck = torch.load(cache / "texture.pt", weights_only=True)
    net = texture.TextureNet(8, 4)
    net.load_state_dict(ck["net"])
    base = BaseLayer(texture.export(net), {"appearance_latent": 8, "texture_width": 4})
    crop = np.load(cache / "utk_crops.npy", mmap_mode="r")[0]
    payload, q = base.encode_appearance(np.asarray(crop))
    latent = base.decode_appearance(payload)
    assert np.allclose(latent, q + base.appearance_medians)
    img = base.generate(np.zeros((1, 128), np.float32), latent[None])
    assert img.shape == (1, 128, 128, 3) and img.dtype == np.uint8


def test_texture_training_can_start_from_a_model_file(cache, tmp_path):
    from safetensors.numpy import save_file

    net = texture.TextureNet(8, 4)
    weights = tmp_path / "m.safetensors"
    save_file(texture.export(net), weights)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("utk_crops.npy", "utk_desc.npy"):
        (fresh / name).symlink_to(cache / name)
    texture.main(["--latent", "8", "--width", "4", "--max-steps", "0", "--threads", "1",
                  "--cache", str(fresh), "--init-from", str(weights)])
    ck = torch.load(fresh / "texture.pt", weights_only=True)
    for k, v in net.generator.state_dict().items():
        assert torch.equal(ck["net"][f"generator.{k}"], v)


@pytest.mark.parametrize("mode,shape", [("conditional", []), ("single", []),
                                        ("residual", ["--stages", "3", "--context", "checkerboard", "--balance"])])
def test_enhancement_training_runs_resumes_and_exports(cache, tmp_path, mode, shape, capsys):
    from scalableface.layers.enhance import load_enhancement
    from scalableface.train import enhance

    run = f"enhance_{mode}_{len(shape)}"
    args = ["--mode", mode, "--n", "8", "--m", "8", "--batch", "4", "--save-every", "2", "--threads", "1",
            "--limit", "16", "--cache", str(cache), "--run", run]
    enhance.main(args + shape + ["--max-steps", "2"])
    enhance.main(args + ["--max-steps", "4"])  # resumes from step 2, with the checkpoint's shape whatever the flags say
    log = log_lines(cache / f"{run}.log")
    assert [r["step"] for r in log] == [2, 4]
    assert set(log[-1]) >= {f"q{i}" for i in range(1, len(enhance.LAMBDAS) + 1)}
    if mode == "single":  # the model card's validation curve, drawn from this log
        from scalableface.train import curve

        curve.main([str(cache / f"{run}.log"), "-o", str(tmp_path / "curve")])
        assert [p["step"] for p in json.loads((tmp_path / "curve" / "validation.json").read_text())] == [2, 4]
        assert (tmp_path / "curve" / "validation.png").read_bytes()[:4] == b"\x89PNG"

    ck = torch.load(cache / f"{run}.pt", weights_only=True)
    model = enhance.EnhanceTrainer(mode, **enhance.shape_of(ck["args"]))
    model.load_state_dict(ck["model"])
    net = model.net
    assert (net.stages, net.context_model) == ((3, "checkerboard") if shape else (4, "none"))
    config = {"mode": mode, "n": 8, "m": 8, "nz": net.nz, "ctx": net.ctx, "qualities": net.qualities,
              "stages": net.stages, "context": net.context_model}
    codec = load_enhancement(enhance.export(model), {"enhancement": config})
    crops = np.load(cache / "utk_crops.npy")[:2]
    bases = np.load(cache / "utk_base_r3.npy")[:2] if mode != "single" else np.zeros_like(crops)
    for q in (1, net.qualities):
        payloads = codec.compress(crops, None if mode == "single" else bases, q)
        out = codec.decompress(payloads, [q, q], bases)
        assert out.shape == crops.shape and out.dtype == np.uint8
    if mode == "residual":  # the real-bitstream validation of the checkpoint (train.validate)
        from scalableface.train import validate

        capsys.readouterr()  # the training's own log lines
        validate.main(["--checkpoint", str(cache / f"{run}.pt"), "--faces", "2", "--cache", str(cache)])
        result = json.loads(capsys.readouterr().out)
        assert result["step"] == 4 and result["faces"] == 2 and len(result["points"]) == net.qualities
        assert all(p["bpp"] > 0 and p["psnr"] > 0 for p in result["points"])
        validate.main(["--checkpoint", str(cache / f"{run}.pt"), "--faces", "2", "--cache", str(cache), "--min-quality", "2"])
        upper = json.loads(capsys.readouterr().out)["points"]
        assert [p["quality"] for p in upper] == list(range(2, net.qualities + 1)) and upper == result["points"][1:]
        validate.main(["--checkpoint", str(cache / f"{run}.pt"), "--faces", "2", "--cache", str(cache), "--effort", "1"])
        searched = json.loads(capsys.readouterr().out)
        assert searched["effort"] == 1 and len(searched["points"]) == net.qualities
        assert all(p["bpp"] > 0 and p["psnr"] > 0 for p in searched["points"])


def test_a_run_extended_with_more_qualities_starts_from_the_source_weights(cache):
    from scalableface.train import enhance

    args = ["--mode", "residual", "--n", "8", "--m", "8", "--batch", "4", "--threads", "1", "--limit", "16",
            "--cache", str(cache), "--stages", "3", "--context", "checkerboard"]
    enhance.main(args + ["--run", "extend_source", "--max-steps", "1", "--save-every", "1"])
    enhance.main(args + ["--run", "extended", "--extend-from", str(cache / "extend_source.pt"), "--add-low", "2",
                         "--add-high", "1", "--max-steps", "0"])
    source, _ = enhance.load_run(cache / "extend_source.pt")
    extended, ck = enhance.load_run(cache / "extended.pt")
    lambdas = ck["args"]["lambdas"]
    assert len(lambdas) == len(enhance.LAMBDAS) + 3 and lambdas[2:-1] == list(enhance.LAMBDAS)
    ratios = np.array(lambdas[1:]) / np.array(lambdas[:-1])
    assert np.allclose(ratios, ratios[0], rtol=1e-3)  # one geometric progression
    g, g0 = extended.net.log_gains.detach(), source.net.log_gains.detach()
    assert torch.equal(g[2:-1], g0)
    assert torch.allclose(g[:2], torch.stack([3 * g0[0] - 2 * g0[1], 2 * g0[0] - g0[1]]))
    assert torch.allclose(g[-1], 2 * g0[-1] - g0[-2])
    for k, v in source.state_dict().items():
        if k != "net.log_gains":
            assert torch.equal(extended.state_dict()[k], v), k


def test_the_generators_upsampled_convolution_equals_upsampling_then_convolving():
    from scalableface.layers.appearance import upsampled_conv

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 7, 3, padding=1)
    x = torch.randn(2, 5, 6, 9, requires_grad=True)
    want = conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    got = upsampled_conv(x, conv)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
    grad_want = torch.autograd.grad(want.square().sum(), [x, conv.weight])
    grad_got = torch.autograd.grad(got.square().sum(), [x, conv.weight])
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(grad_got, grad_want))


@pytest.mark.parametrize("stages,context", [(4, "none"), (3, "checkerboard")])
def test_the_decoder_rebuilds_exactly_the_encoders_dequantized_latent(cache, stages, context):
    from scalableface.layers.enhance import load_enhancement
    from scalableface.train import enhance

    torch.manual_seed(3)
    model = enhance.EnhanceTrainer("residual", n=8, m=8, stages=stages, context=context)
    config = {"mode": "residual", "n": 8, "m": 8, "nz": model.net.nz, "ctx": model.net.ctx,
              "qualities": model.net.qualities, "stages": stages, "context": context}
    codec = load_enhancement(enhance.export(model), {"enhancement": config})
    x = torch.from_numpy(np.load(cache / "utk_crops.npy")[:2]).permute(0, 3, 1, 2).float() / 255
    x, b = x[:1], x[1:]  # any image serves as the base face here
    with torch.inference_mode():
        y = codec.net.analyse(x, b)
        z = codec.net.hyper_analysis(y)
    y, z = y.double().numpy()[0], z.double().numpy()[0]
    for q in (1, codec.qualities):
        payload, latent = codec.encode_latent(y, z, q)
        decoded = codec.decode_latent(payload, q, 128)
        assert np.array_equal(decoded.values, latent)
        assert np.abs(latent - y).max() < np.abs(y).max() + 1  # a quantization of y, not noise
        with pytest.raises(BitstreamError):
            codec.decode_latent(payload[:2] + bytes(len(payload) - 2), q, 128)


def test_the_per_pass_entropy_parameters_equal_the_dense_network():
    """The run-time coder computes the checkerboard's entropy parameters only at each pass's positions
    (and the context only over its anchor taps); they must be the training network's dense ones."""
    from scalableface.layers.enhance import anchor_mask, load_enhancement, scale_indexes
    from scalableface.train import enhance

    torch.manual_seed(4)
    model = enhance.EnhanceTrainer("residual", n=8, m=8, stages=3, context="checkerboard")
    config = {"mode": "residual", "n": 8, "m": 8, "nz": model.net.nz, "ctx": model.net.ctx,
              "qualities": model.net.qualities, "stages": 3, "context": "checkerboard"}
    codec = load_enhancement(enhance.export(model), {"enhancement": config})
    rng = np.random.default_rng(4)
    with torch.inference_mode():
        hyper = codec.net64.hyper(torch.from_numpy(rng.normal(size=(1, codec.net.nz, 4, 4))))
    gains = np.exp(rng.normal(size=(8, 1)))  # per channel, as the coder holds them
    anchors = anchor_mask(16, 16)[0, 0].numpy().astype(bool)
    known = rng.normal(size=(8, 16, 16)) * anchors
    for before, where in ((None, anchors), (known, ~anchors)):
        means, tables = codec.parameters_at(hyper, before, gains, where)
        with torch.inference_mode():
            mu, sigma = codec.net64.parameters_from(hyper, None if before is None else torch.from_numpy(before[None]))
        assert means.shape == tables.shape == (8, where.sum())
        assert np.allclose(means, (mu[0].numpy() * gains[:, None])[:, where], rtol=0, atol=1e-9)
        assert np.array_equal(tables, scale_indexes((sigma[0].numpy() * gains[:, None])[:, where]))


def test_enhancement_tables_code_far_outliers_without_clamping():
    from scalableface.layers.enhance import SCALE_TABLE
    from scalableface.train import enhance

    tables = enhance.y_pmfs()
    assert len(tables) == len(SCALE_TABLE)
    for (half, pmf), s in zip(tables, SCALE_TABLE):
        assert len(pmf) == 2 * half + 1 and half >= 6.5 * s + enhance.TAIL_REACH
        assert abs(pmf.sum() - 1) < 1e-3  # next to no mass beyond the reach
        assert pmf[half] == pmf.max()  # zero is the likeliest symbol
        if 1 <= s <= 20:  # an outlier 20 scales out costs ~20 bits, not a clamp or a Gaussian's ~300 bits
            assert -np.log2(pmf[half + int(20 * s)]) < 20 + np.log2(s)


def test_resume_keeps_the_learning_rate_of_this_run(tmp_path):
    import argparse

    from scalableface.train import enhance
    from scalableface.train.common import optimizers, resume, save_checkpoint

    model = enhance.EnhanceTrainer("single", n=8, m=8)
    opt, aux_opt = optimizers(model, 1e-3)
    save_checkpoint(tmp_path / "ck.pt", "model", model, opt, aux_opt, 7, argparse.Namespace(), tmp_path)
    opt, aux_opt = optimizers(model, 1e-5)
    assert resume(tmp_path / "ck.pt", "model", model, opt, aux_opt) == 7
    assert {g["lr"] for g in opt.param_groups} == {1e-5}


def test_a_run_initialised_from_a_model_file_interpolates_its_gains_to_new_lambdas(cache, tmp_path):
    from safetensors.numpy import save_file

    from scalableface.train import enhance

    source = enhance.EnhanceTrainer("residual", qualities=3, n=8, m=8).net
    with torch.no_grad():
        source.log_gains.copy_(torch.arange(24, dtype=torch.float32).view(3, 8))
    weights = tmp_path / "source.safetensors"
    # the first row extrapolated, not trained
    config = {"enhancement": {"mode": "residual", "n": 8, "m": 8, "lambdas": [None, 0.001, 0.004]}}
    save_file({f"enhancement.net.{k}": v.numpy() for k, v in source.state_dict().items()}, weights,
              metadata={"config": json.dumps(config)})
    # the shape flags are the model file's, whatever the command line says
    enhance.main(["--mode", "conditional", "--n", "16", "--m", "12", "--batch", "4", "--threads", "1", "--limit", "16",
                  "--cache", str(cache), "--run", "interpolated", "--max-steps", "0", "--init-from", str(weights),
                  "--lambdas", "0.00025,0.002,0.004", "--density-steps", "20"])
    model, ck = enhance.load_run(cache / "interpolated.pt")
    assert ck["args"]["lambdas"] == [0.00025, 0.002, 0.004]
    g, g0 = model.net.log_gains.detach(), source.log_gains.detach()
    # in log(lambda): 0.002 is halfway from 0.001 to 0.004, 0.00025 one whole step below 0.001
    assert torch.allclose(g, torch.stack([2 * g0[1] - g0[2], (g0[1] + g0[2]) / 2, g0[2]]))
    assert torch.equal(model.net.analysis[0].weight, source.analysis[0].weight)  # the density fit moves no weight

    # from a run's checkpoint the hyper-latent's density comes along too
    with torch.no_grad():
        model.entropy_bottleneck.quantiles.add_(1.5)
    torch.save({"model": model.state_dict(), "args": ck["args"]}, tmp_path / "source.pt")
    enhance.main(["--batch", "4", "--threads", "1", "--limit", "16", "--cache", str(cache), "--run", "from_run",
                  "--max-steps", "0", "--init-from", str(tmp_path / "source.pt"), "--lambdas", "0.002,0.008"])
    again, ck2 = enhance.load_run(cache / "from_run.pt")
    assert (ck2["args"]["n"], ck2["args"]["m"], ck2["args"]["lambdas"]) == (8, 8, [0.002, 0.008])
    assert torch.equal(again.entropy_bottleneck.quantiles, model.entropy_bottleneck.quantiles)
    assert torch.allclose(again.net.log_gains, torch.stack([g[1], 2 * g[2] - g[1]]))


def test_a_fresh_density_is_fitted_with_the_network_frozen(cache):
    from scalableface.train import enhance

    torch.manual_seed(0)
    model = enhance.EnhanceTrainer("residual", qualities=2, n=8, m=8)
    crops = np.load(cache / "utk_crops.npy")[:16]
    data = enhance.patches(crops, crops, 4, torch.Generator().manual_seed(0), 16, 2)
    weights = {k: v.clone() for k, v in model.net.state_dict().items()}
    before, after = enhance.fit_density(model, data, 60)
    assert after < 0.5 * before  # a fresh density prices z far too high
    assert all(torch.equal(v, weights[k]) for k, v in model.net.state_dict().items())


def test_balanced_losses_give_every_lambda_the_same_weighted_size():
    from scalableface.train.enhance import LossBalance

    balance = LossBalance(3, decay=0.9)
    q = torch.tensor([0, 1, 2, 2])
    assert torch.equal(balance.weights(q), torch.ones(4))  # nothing seen yet: a plain mean
    for _ in range(50):
        balance.update(q, torch.tensor([1.0, 2.0, 4.0, 6.0]))
    weighted = torch.tensor([1.0, 2.0, 5.0]) * balance.weights(torch.arange(3))
    # each lambda's weighted loss is the mean loss over lambdas, so the loss keeps its size
    assert torch.allclose(weighted, torch.full((3,), 8 / 3))
    # a quality not seen yet is weighted as an average one
    half = LossBalance(3)
    half.update(torch.tensor([0, 1]), torch.tensor([1.0, 3.0]))
    assert torch.allclose(half.weights(torch.arange(3)), torch.tensor([2.0, 2 / 3, 1.0]))


def test_a_run_initialised_from_an_installed_model_follows_its_extends_chain(cache):
    from scalableface import models
    from scalableface.train import enhance

    entry = models.find("sface-v5")
    assert entry.extends  # its main network's weights are in the model it extends
    enhance.main(["--batch", "2", "--threads", "1", "--limit", "4", "--cache", str(cache), "--run", "from_installed",
                  "--max-steps", "0", "--init-from", "sface-v5", "--lambdas", "0.01,0.1", "--density-steps", "0"])
    model, ck = enhance.load_run(cache / "from_installed.pt")
    tensors, config = models.load(entry)
    assert (ck["args"]["mode"], ck["args"]["m"], ck["args"]["stages"]) == ("residual", config["enhancement"]["m"], 3)
    assert np.array_equal(model.net.analysis[0].weight.detach().numpy(), tensors["enhancement.net.analysis.0.weight"])

    # or from its low-quality network, a shape of its own
    enhance.main(["--batch", "2", "--threads", "1", "--limit", "4", "--cache", str(cache), "--run", "from_low",
                  "--max-steps", "0", "--init-from", "sface-v5", "--init-network", "low", "--lambdas", "0.001,0.01",
                  "--density-steps", "0"])
    low, ck = enhance.load_run(cache / "from_low.pt")
    assert (ck["args"]["m"], ck["args"]["stages"]) == (config["enhancement_low"]["m"], config["enhancement_low"]["stages"])
    assert np.array_equal(low.net.analysis[0].weight.detach().numpy(), tensors["enhancement_low.net.analysis.0.weight"])
    with pytest.raises(SystemExit, match="no network enhancement_low"):
        enhance.initial_weights("sface-v4", "enhancement_low")


def test_a_low_tier_network_codes_the_low_qualities_and_the_main_one_the_rest(cache, tmp_path):
    from scalableface.layers.enhance import LOW_TIER, EnhancementCodec, TieredEnhancement, load_enhancement
    from scalableface.models import load_weights, sha256_file
    from scalableface.train import enhance, export_enhancement

    args = ["--mode", "residual", "--n", "8", "--m", "8", "--batch", "4", "--threads", "1", "--limit", "16",
            "--cache", str(cache), "--max-steps", "1", "--save-every", "1"]
    enhance.main(args + ["--run", "tier_main", "--stages", "3", "--context", "checkerboard"])
    enhance.main(args + ["--run", "tier_low", "--lambdas", "0.0001,0.0003,0.001"])
    export_enhancement.main(["--mode", "residual", "--checkpoint", str(cache / "tier_low.pt"), "--name", "tiny-low",
                             "--extends", "tiny-main", "--low-tier", "--extra-low", "1", "--keep", "3",
                             "--out", str(tmp_path)])
    low_tensors, low_config = load_weights(tmp_path / "tiny-low.safetensors", sha256_file(tmp_path / "tiny-low.safetensors"))
    assert set(low_config) == {LOW_TIER} and low_config[LOW_TIER]["lambdas"] == [None, 0.0001, 0.0003]
    assert low_tensors and all(k.startswith(f"{LOW_TIER}.") for k in low_tensors)

    main_model, main_ck = enhance.load_run(cache / "tier_main.pt")
    main_config = enhance.layer_config(main_model, main_ck["args"]) | {"default_quality": 5}
    main_tensors = enhance.export(main_model)
    codec = load_enhancement(main_tensors | low_tensors, {"enhancement": main_config} | low_config)
    assert isinstance(codec, TieredEnhancement)
    assert (codec.qualities, codec.default_quality, codec.low.qualities) == (len(enhance.LAMBDAS), 5, 3)
    alone = load_enhancement(main_tensors, {"enhancement": main_config})
    assert isinstance(alone, EnhancementCodec)

    crops = np.load(cache / "utk_crops.npy")[:3]
    bases = np.load(cache / "utk_base_r3.npy")[:3]
    for q in (1, 3, 4, codec.qualities):
        expected = (codec.low if q <= 3 else alone).compress(crops, bases, q)
        assert codec.compress(crops, bases, q) == expected
    qualities = [2, 6, 3]  # one batch across both networks
    payloads = [codec.compress(crops[i : i + 1], bases[i : i + 1], q)[0] for i, q in enumerate(qualities)]
    mixed = codec.decompress(payloads, qualities, bases)
    for i, q in enumerate(qualities):
        one = (codec.low if q <= 3 else alone).decompress([payloads[i]], [q], bases[i : i + 1])
        assert np.array_equal(mixed[i], one[0])
        assert codec.decode_latent(payloads[i], q, 128).y_symbols.shape[1] == (8 if q <= 3 else 16)
    with pytest.raises(ValueError):
        codec.compress(crops, bases, codec.qualities + 1)
    with pytest.raises(BitstreamError):
        codec.decode_latent(payloads[0], 0, 128)


def test_a_low_tier_model_renumbers_the_qualities_of_the_codec_it_extends(cache, tmp_path, monkeypatch):
    from scalableface import models, modelset
    from scalableface.layers.enhance import TieredEnhancement
    from scalableface.train import enhance, export_enhancement

    args = ["--mode", "residual", "--n", "8", "--m", "8", "--batch", "4", "--threads", "1", "--limit", "16",
            "--cache", str(cache), "--max-steps", "1", "--save-every", "1"]
    enhance.main(args + ["--run", "renumber_main", "--stages", "3", "--context", "checkerboard"])
    enhance.main(args + ["--run", "renumber_other", "--stages", "3", "--context", "checkerboard", "--lr", "0.01"])
    enhance.main(args + ["--run", "renumber_low", "--lambdas", "0.0001,0.0003,0.001"])
    export = ["--mode", "residual", "--out", str(tmp_path)]
    export_enhancement.main(export + ["--checkpoint", str(cache / "renumber_main.pt"), "--name", "tiny-main",
                                      "--extends", "sface-base-v1", "--default-quality", "5"])
    monkeypatch.setenv("SFACE_MODELS", str(tmp_path))
    low = export + ["--checkpoint", str(cache / "renumber_low.pt"), "--name", "tiny-tiered", "--extends", "tiny-main",
                    "--low-tier", "--skip", "1", "--keep", "2", "--main-extra-high", "2", "--default-quality", "4"]
    with pytest.raises(SystemExit, match="not the run"):
        export_enhancement.main(low + ["--main-checkpoint", str(cache / "renumber_other.pt")])
    export_enhancement.main(low + ["--main-checkpoint", str(cache / "renumber_main.pt")])

    tensors, config = models.load(models.find("tiny-tiered"))
    main_rows = len(enhance.LAMBDAS) + 2
    assert config["enhancement_low"]["lambdas"] == [0.0003, 0.001] and config["enhancement_low"]["qualities"] == 2
    assert config["enhancement"]["qualities"] == main_rows and config["enhancement"]["default_quality"] == 4
    assert config["enhancement"]["lambdas"] == list(enhance.LAMBDAS) + [None, None]
    main_tensors, _ = models.load(models.find("tiny-main"))
    gains = tensors["enhancement.net.log_gains"]
    assert gains.shape[0] == main_rows and np.array_equal(gains[:-2], main_tensors["enhancement.net.log_gains"])
    codec = modelset.load("tiny-tiered").enhancement
    assert isinstance(codec, TieredEnhancement) and (codec.qualities, codec.default_quality) == (main_rows, 4)

    # a new main network takes the low-quality network with it, so that tiny-tiered could be retired
    self_contained = export + ["--checkpoint", str(cache / "renumber_other.pt"), "--name", "tiny-self",
                               "--extends", "sface-base-v1", "--low-from", "tiny-tiered"]
    with pytest.raises(SystemExit, match="leaves none"):
        export_enhancement.main(self_contained + ["--keep", "2"])
    export_enhancement.main(self_contained + ["--extra-low", "1", "--default-quality", "3"])
    own_tensors, own_config = models.load(models.find("tiny-self"))
    assert own_config["enhancement_low"] == config["enhancement_low"]
    assert {k for k in own_tensors if k.startswith("enhancement_low.")} == {k for k in tensors if k.startswith("enhancement_low.")}
    assert all(np.array_equal(own_tensors[k], tensors[k]) for k in tensors if k.startswith("enhancement_low."))
    assert own_config["enhancement"]["lambdas"] == [None] + list(enhance.LAMBDAS)
    codec = modelset.load("tiny-self").enhancement
    assert isinstance(codec, TieredEnhancement) and (codec.low.qualities, codec.qualities) == (2, len(enhance.LAMBDAS) + 1)


def test_a_float16_export_stores_the_network_in_half_and_codes_with_its_widened_weights(cache, tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    from scalableface import models, modelset
    from scalableface.train import enhance, export_enhancement

    enhance.main(["--mode", "residual", "--n", "8", "--m", "8", "--batch", "4", "--threads", "1", "--limit", "16",
                  "--cache", str(cache), "--max-steps", "1", "--save-every", "1", "--run", "half_main", "--stages", "3",
                  "--context", "checkerboard"])
    export = ["--mode", "residual", "--out", str(tmp_path), "--checkpoint", str(cache / "half_main.pt"),
              "--extends", "sface-base-v1"]
    export_enhancement.main(export + ["--name", "tiny-full"])
    export_enhancement.main(export + ["--name", "tiny-half", "--float16"])
    full, half = load_file(tmp_path / "tiny-full.safetensors"), load_file(tmp_path / "tiny-half.safetensors")
    assert set(full) == set(half)
    for k, v in half.items():
        if ".net." in k:
            assert v.dtype == np.float16 and np.array_equal(v, full[k].astype(np.float16))
        else:
            assert v.dtype == full[k].dtype and np.array_equal(v, full[k])

    monkeypatch.setenv("SFACE_MODELS", str(tmp_path))
    tensors, _ = models.load(models.find("tiny-half"))
    assert all(v.dtype != np.float16 for v in tensors.values())
    codec = modelset.load("tiny-half").enhancement
    crops = np.load(cache / "utk_crops.npy")[:2]
    bases = np.load(cache / "utk_base_r3.npy")[:2]
    payloads = codec.compress(crops, bases, 3)
    decoded = codec.decompress(payloads, [3, 3], bases)
    assert decoded.shape == crops.shape and decoded.dtype == np.uint8
