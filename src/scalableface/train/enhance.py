"""Train an enhancement codec (or the single-layer baseline) on UTKFace, all qualities at once.

    python -m scalableface.train.enhance --mode conditional --minutes 80

Each step takes random 64x64 patches (on the 16-pixel latent grid, mirrored half the time) of the
128x128 crops and of their base-layer faces, gives every patch a random quality q, and minimises
lambda_q * 255^2 * MSE + bits per pixel (CompressAI's convention), so one model learns every quality.
The base faces are what `sface decode --layer base` gives at the default base rate, computed once
and cached. Resumable: a checkpoint goes to <cache>/enhance_<mode>.pt every --save-every steps with a
validation line (full 128x128 held-out crops, every quality) in <cache>/enhance_<mode>.log.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from ..layers.enhance import CONTEXTS, LOW_TIER, MODES, SCALE_TABLE, EnhanceNet, gaussian_likelihood
from ..entropy import FrequencyTable, pack_tables
from ..eval.metrics import psnr
from ..facesets import UTK_VALIDATION
from ..paths import cache_dir
from .common import optimizers, resume, round_with_noisy_rate, run, save_checkpoint, table_tensors

# one lambda per trained quality: 0.0008 to 0.39, so that the top quality reaches ~2 bpp and the lowest ~0.08
LAMBDAS = tuple(round(0.0008 * 2.17 ** i, 6) for i in range(9))
TAIL_WEIGHT, TAIL_REACH = 0.003, 300  # the y tables' heavy tail: see y_pmfs
PATCH = 64


class EnhanceTrainer(nn.Module):
    """EnhanceNet plus the training-time entropy models (a CompressAI bottleneck for z)."""

    def __init__(self, mode: str, qualities: int = len(LAMBDAS), **shape):
        super().__init__()
        self.net = EnhanceNet(mode, qualities=qualities, **shape)
        self.entropy_bottleneck = EntropyBottleneck(self.net.nz)

    def forward(self, x: torch.Tensor, base: torch.Tensor | None, q: torch.Tensor):
        net = self.net
        y = net.analyse(x, base)
        z_hat, z_lik = round_with_noisy_rate(self.entropy_bottleneck, net.hyper_analysis(y))
        hyper = net.hyper(z_hat)
        g = net.gains(q)

        def rounded(yg, mg):  # what the decoder sees: real rounding in the gained domain (straight-through)
            return yg + (torch.round(yg - mg) + mg - yg).detach()

        y_hat, mg, sg = net.entropy_passes(y, hyper, g, rounded)
        noisy = y * g + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_lik = gaussian_likelihood(noisy, mg, sg)
        out = net.synthesise(y_hat, base, net.contexts(base))
        bits = -(torch.log2(y_lik).flatten(1).sum(1) + torch.log2(z_lik).flatten(1).sum(1))
        return out, bits


def rd_loss(out: torch.Tensor, x: torch.Tensor, bits: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """The batch's mean of per_patch_loss."""
    return per_patch_loss(out, x, bits, lambdas).mean()


def per_patch_loss(out: torch.Tensor, x: torch.Tensor, bits: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """lambda * 255^2 * MSE + bits per pixel (CompressAI's convention), each patch at its own lambda."""
    mse = ((out - x) ** 2).flatten(1).mean(1)
    return lambdas * 255 ** 2 * mse + bits / (x.shape[2] * x.shape[3])


class LossBalance:
    """Per-lambda loss weights that give every trained lambda the same pull on the shared transforms.

    A top lambda's rate-distortion loss is several times a low one's (about 5x between k = 10 and
    k = 3), so in a plain batch mean the top qualities steer the transforms and the low ones pay
    (run enhance_v6m, sface-v5.md). Scaling a lambda's loss leaves that lambda's own optimum where
    it was; it only changes how the shared weights trade one quality against another. The weight
    is mean(ema) / ema_q, ema_q the running mean of quality q's loss, so the loss keeps its usual
    size (and the learning rate its meaning); the averages restart on resume and settle in ~100 steps."""

    def __init__(self, qualities: int, decay: float = 0.99):
        self.ema = torch.full((qualities,), float("nan"))
        self.decay = decay

    def weights(self, q: torch.Tensor) -> torch.Tensor:
        ema = torch.where(torch.isnan(self.ema), torch.nanmean(self.ema), self.ema)
        w = ema.mean() / ema
        return torch.ones(len(q)) if torch.isnan(w).any() else w[q]

    def update(self, q: torch.Tensor, losses: torch.Tensor) -> None:
        for k in q.unique().tolist():
            mean = float(losses[q == k].mean())
            old = self.ema[k]
            self.ema[k] = mean if torch.isnan(old) else self.decay * old + (1 - self.decay) * mean


def base_faces(name: str, crops: np.ndarray, descriptors: np.ndarray, cache: Path, rate: int | None = None,
               batch: int = 64) -> np.ndarray:
    """The base-layer face of every crop (what `decode --layer base` shows), cached as <cache>/<name>_base_r<rate>.npy."""
    from tqdm import tqdm

    from .. import modelset

    base = modelset.load("sface-base-v1").base
    rate = rate or base.default_rate
    out_file = cache / f"{name}_base_r{rate}.npy"
    if out_file.exists() and np.load(out_file, mmap_mode="r").shape == crops.shape:
        return np.load(out_file, mmap_mode="r")
    out = np.lib.format.open_memmap(out_file.with_suffix(".part.npy"), "w+", np.uint8, crops.shape)
    for i in tqdm(range(0, len(crops), batch), desc=f"base faces {name}", disable=len(crops) < 10 * batch):
        out[i : i + batch] = base.encode(crops[i : i + batch], descriptors[i : i + batch], rate, faces=True).faces
    out.flush()
    del out
    out_file.with_suffix(".part.npy").rename(out_file)
    return np.load(out_file, mmap_mode="r")


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255


def patches(crops, bases, batch: int, gen: torch.Generator, grid: int, qualities: int):
    """Endless (crops, bases, quality indexes) of random patches on the latent grid."""
    n, size = len(crops), crops.shape[1]
    while True:
        idx = np.sort(torch.randint(n, (batch,), generator=gen).numpy())
        pos = torch.randint((size - PATCH) // grid + 1, (batch, 2), generator=gen).numpy() * grid
        x, b = np.asarray(crops[idx]), np.asarray(bases[idx])
        xs = np.stack([x[i, r : r + PATCH, c : c + PATCH] for i, (r, c) in enumerate(pos)])
        bs = np.stack([b[i, r : r + PATCH, c : c + PATCH] for i, (r, c) in enumerate(pos)])
        flip = (torch.rand(batch, generator=gen) < 0.5).numpy()
        xs[flip], bs[flip] = xs[flip, :, ::-1], bs[flip, :, ::-1]
        q = torch.randint(qualities, (batch,), generator=gen)
        yield to_tensor(xs), to_tensor(bs), q


def validate(model: EnhanceTrainer, x: torch.Tensor, b: torch.Tensor) -> dict:
    model.eval()
    rec = {}
    with torch.no_grad():
        for qi in range(model.net.qualities):
            q = torch.full((len(x),), qi)
            out, bits = model(x, b, q)
            mse = ((out.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
            rec[f"q{qi + 1}"] = [round(float(bits.mean()) / (x.shape[2] * x.shape[3]), 4), round(float(psnr(mse).mean()), 2)]
    model.train()
    return rec


def export(model: EnhanceTrainer, prefix: str = "enhancement") -> dict[str, np.ndarray]:
    """Tensors for a model file: <prefix>.net.* weights, z tables (from the bottleneck) and the y
    tables of y_pmfs()."""
    model.entropy_bottleneck.update(force=True)
    out = {f"{prefix}.net.{k}": v.detach().numpy() for k, v in model.net.state_dict().items()}
    out |= table_tensors(f"{prefix}.z", model.entropy_bottleneck)
    return out | pack_tables(f"{prefix}.y", [FrequencyTable.from_pmf(-half, pmf) for half, pmf in y_pmfs()])


def y_pmfs() -> list[tuple[int, np.ndarray]]:
    """(half-width, pmf over -half..half) for each of the 64 table scales s: a discretised zero-mean
    Gaussian of scale s mixed with weight TAIL_WEIGHT with a Laplacian of scale 4·max(s, 1), over
    6.5·s + TAIL_REACH symbols each side. Training bounds each element's likelihood at 1e-9, so the
    network leaves some latents far outside its predicted Gaussian at high qualities;
    plain Gaussian tables clamped those (the single-layer codec's PSNR fell as its quality rose). The mixture
    codes one 20 scales out in about 20 bits, for ~0.005 bits more per ordinary symbol."""
    from scipy.stats import laplace, norm

    out = []
    for s in SCALE_TABLE:
        half = int(np.ceil(6.5 * s)) + 1 + TAIL_REACH
        k = np.arange(-half, half + 1, dtype=np.float64)
        gauss = norm.cdf((k + 0.5) / s) - norm.cdf((k - 0.5) / s)
        b = 4 * max(s, 1.0)
        tail = laplace.cdf((k + 0.5) / b) - laplace.cdf((k - 0.5) / b)
        out.append((half, np.maximum((1 - TAIL_WEIGHT) * gauss + TAIL_WEIGHT * tail, 1e-12)))
    return out


def shape_of(args: dict) -> dict:
    """The EnhanceNet keyword arguments of a run's arguments (a checkpoint's "args"); runs from before
    --stages and --context had four stages and no spatial context."""
    return {"n": args["n"], "m": args["m"], "stages": args.get("stages", 4), "context": args.get("context", "none")}


def load_run(path: Path) -> tuple[EnhanceTrainer, dict]:
    """(the trainer with its weights, the checkpoint) of a run's checkpoint."""
    ck = torch.load(path, weights_only=True)
    model = EnhanceTrainer(ck["args"]["mode"], qualities=len(ck["args"]["lambdas"]), **shape_of(ck["args"]))
    model.load_state_dict(ck["model"])
    return model, ck


def extended_log_gains(log_gains: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Q x M log-gains with `low` rows added below and `high` above, each a step of the same size as
    the two nearest rows' (qualities spaced evenly in log-gain, as the trained ones come out)."""
    g = log_gains.detach()
    below = [g[0] - k * (g[1] - g[0]) for k in range(low, 0, -1)]
    above = [g[-1] + k * (g[-1] - g[-2]) for k in range(1, high + 1)]
    return torch.stack(below + list(g) + above)


def interpolated_log_gains(log_gains: torch.Tensor, lambdas: list, targets: list[float]) -> torch.Tensor:
    """len(targets) x M log-gains for new lambdas, from a model's rows trained at `lambdas` (None for
    an untrained row, skipped): piecewise linear in log(lambda), the end segments continued beyond."""
    known = [(float(np.log(lam)), row) for lam, row in zip(lambdas, log_gains.detach()) if lam is not None]
    if len(known) < 2:
        raise ValueError("interpolating gains needs at least two trained qualities")
    known.sort(key=lambda kv: kv[0])
    xs = [x for x, _ in known]
    out = []
    for t in np.log(targets):
        i = int(np.clip(np.searchsorted(xs, t) - 1, 0, len(xs) - 2))
        (x0, g0), (x1, g1) = known[i], known[i + 1]
        out.append(g0 + (g1 - g0) * float((t - x0) / (x1 - x0)))
    return torch.stack(out)


def extended_lambdas(lambdas: list[float], low: int, high: int) -> list[float]:
    """The lambdas of extended_log_gains' new rows, a geometric progression continued both ways."""
    down, up = lambdas[0] / lambdas[1], lambdas[-1] / lambdas[-2]
    return ([round(lambdas[0] * down ** k, 7) for k in range(low, 0, -1)] + list(lambdas)
            + [round(lambdas[-1] * up ** k, 7) for k in range(1, high + 1)])


def initial_weights(source: str, network: str = "enhancement") -> tuple[dict, dict]:
    """(trainer state, config: shape and the lambdas its gains were trained at) to start a run from: a
    run's checkpoint (.pt: the hyper-latent's density included), an installed model (by name, its
    extends chain followed) or a model file (their `network`, the main one or LOW_TIER: the density
    starts fresh)."""
    from .. import models

    if source.endswith(".pt"):
        ck = torch.load(source, weights_only=True)
        return ck["model"], shape_of(ck["args"]) | {"mode": ck["args"]["mode"], "lambdas": ck["args"]["lambdas"]}
    if Path(source).is_file():
        from safetensors import safe_open

        with safe_open(source, "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            config = json.loads(f.metadata()["config"])
    else:
        arrays, config = models.load(models.find(source))
        tensors = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    if network not in config:
        raise SystemExit(f"{source} has no network {network}")
    state = {"net." + k[len(f"{network}.net."):]: v for k, v in tensors.items() if k.startswith(f"{network}.net.")}
    return state, config[network]


def fit_density(model: EnhanceTrainer, data, steps: int, lr: float = 1e-2) -> tuple[float, float]:
    """Fit the hyper-latent's density alone, the network frozen, on `steps` batches of `data`: a run
    started from a model file has a fresh density, and training through it at once lets its rate
    gradient teach the hyper-analysis to starve z (a run from sface-v4 without this was 10.7% worse
    than its source after 2,500 steps). Returns the batch's z bits per patch before and after."""
    net, eb = model.net, model.entropy_bottleneck
    density = [p for n, p in eb.named_parameters() if not n.endswith("quantiles")]
    opt, aux_opt = torch.optim.Adam(density, lr=lr), torch.optim.Adam([eb.quantiles], lr=lr)
    bits = []
    for _ in range(steps):
        x, b, _ = next(data)
        with torch.no_grad():
            z = net.hyper_analysis(net.analyse(x, None if net.mode == "single" else b))
        loss = -torch.log2(eb(z)[1]).sum() / len(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux = eb.loss()
        aux_opt.zero_grad()
        aux.backward()
        aux_opt.step()
        bits.append(loss.item())
    return bits[0], float(np.mean(bits[-10:]))


def layer_config(model: EnhanceTrainer, args: dict) -> dict:
    """The model file's config.enhancement shape fields (layers.enhance.load_enhancement reads them)."""
    net = model.net
    return {"mode": net.mode, "n": args["n"], "m": net.m, "nz": net.nz, "ctx": net.ctx, "qualities": net.qualities,
            "stages": net.stages, "context": net.context_model}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=MODES, default="conditional")
    ap.add_argument("--minutes", type=float, default=60, help="stop after this much wall time (this run)")
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=32, help="64x64 patches per step")
    ap.add_argument("--lr", type=float, default=1e-4, help="also applied on resume, so a run can go on at a lower rate")
    ap.add_argument("--n", type=int, default=64, help="transform width (a resumed run keeps its checkpoint's shape)")
    ap.add_argument("--m", type=int, default=96, help="latent channels")
    ap.add_argument("--stages", type=int, default=4, help="stride-2 stages: the latent grid is 1/2**stages of the crop")
    ap.add_argument("--context", choices=CONTEXTS, default="none", help="spatial context of the entropy model")
    ap.add_argument("--run", default=None, help="checkpoint and log name in the cache (default enhance_<mode>)")
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (tests)")
    ap.add_argument("--init-from", default=None, metavar="MODEL",
                    help="without a checkpoint, start from another run's checkpoint (.pt) or the enhancement network of "
                         "an installed model (or model file): its shape "
                         "(the shape flags are ignored), its weights, its gains interpolated to --lambdas from "
                         "the lambdas it was trained at")
    ap.add_argument("--init-network", choices=("main", "low"), default="main",
                    help="with --init-from an installed model or model file: its main network or its "
                         "low-quality one (enhancement_low)")
    ap.add_argument("--density-steps", type=int, default=300,
                    help="with --init-from a model file: steps fitting the hyper-latent's fresh density alone, "
                         "the network frozen, before training starts")
    ap.add_argument("--lambdas", default=None,
                    help="a new run's trained lambdas, comma-separated (default: 0.0008 * 2.17^k, k = 0..8)")
    ap.add_argument("--extend-from", type=Path, default=None,
                    help="without a checkpoint, start from this run's checkpoint (its shape and weights, a fresh "
                         "optimizer) with --add-low/--add-high more trained qualities")
    ap.add_argument("--add-low", type=int, default=0,
                    help="with --extend-from: qualities below its lowest, lambdas continuing its progression, "
                         "gains extrapolated to start")
    ap.add_argument("--add-high", type=int, default=0, help="with --extend-from: qualities above its highest")
    ap.add_argument("--balance", action="store_true",
                    help="weight each lambda's loss by the inverse of its running mean, so that the top "
                         "qualities' larger losses do not steer the shared transforms (LossBalance)")
    ap.add_argument("--compile", action="store_true",
                    help="run the training steps through torch.compile (about 10%% faster per step after about "
                         "2 minutes of compiling: python -m scalableface.train.step_speed)")
    args = ap.parse_args(argv)
    cache = args.cache or cache_dir()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    crops = np.load(cache / "utk_crops.npy", mmap_mode="r")
    if args.mode == "single":
        bases = crops  # unused by the network; keeps one data path
    else:
        desc = np.load(cache / "utk_desc.npy").mean(axis=1).astype(np.float32)
        bases = base_faces("utk", crops, desc, cache)
    train_crops, train_bases = crops[:-UTK_VALIDATION], bases[:-UTK_VALIDATION]
    if args.limit:
        train_crops, train_bases = train_crops[: args.limit], train_bases[: args.limit]
    val_x, val_b = to_tensor(crops[-UTK_VALIDATION:][:64]), to_tensor(bases[-UTK_VALIDATION:][:64])
    if args.mode == "single":
        val_b = None

    name = args.run or f"enhance_{args.mode}"
    ckpt, log_file = cache / f"{name}.pt", cache / f"{name}.log"
    source = ckpt if ckpt.exists() else args.extend_from
    init = None
    if source:  # the network's shape is the checkpoint's, whatever the flags say
        source_ck = torch.load(source, weights_only=True)
        saved = source_ck["args"]
        for k in ("mode", "n", "m", "stages", "context"):
            setattr(args, k, saved.get(k, getattr(args, k)))
        args.lambdas = saved.get("lambdas", list(LAMBDAS))
    else:
        args.lambdas = [float(v) for v in args.lambdas.split(",")] if args.lambdas else list(LAMBDAS)
        if args.init_from:  # and a new run's shape is its source's
            init = initial_weights(args.init_from, LOW_TIER if args.init_network == "low" else "enhancement")
            for k in ("mode", "n", "m", "stages", "context"):
                setattr(args, k, init[1].get(k, getattr(args, k)))
    extending = not ckpt.exists() and args.extend_from
    if extending:
        args.lambdas = extended_lambdas(args.lambdas, args.add_low, args.add_high)
    model = EnhanceTrainer(args.mode, qualities=len(args.lambdas), **shape_of(vars(args)))
    if extending:
        state = source_ck["model"]
        state["net.log_gains"] = extended_log_gains(state["net.log_gains"], args.add_low, args.add_high)
        model.load_state_dict(state)
        print(f"extended {args.extend_from} to lambdas {args.lambdas}", flush=True)
    opt, aux_opt = optimizers(model, args.lr)
    step = resume(ckpt, "model", model, opt, aux_opt)
    fresh_density = False
    if not step and init:
        state, config = init
        state["net.log_gains"] = interpolated_log_gains(state["net.log_gains"], config["lambdas"], args.lambdas)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("entropy_bottleneck.") for k in missing):
            raise SystemExit(f"{args.init_from} does not fit the network: missing {missing}, unexpected {unexpected}")
        fresh_density = bool(missing)
        print(f"initialised from {args.init_from}, gains interpolated to lambdas {args.lambdas}", flush=True)
    lambdas = torch.tensor(args.lambdas)
    gen = torch.Generator().manual_seed(step)
    data = patches(train_crops, train_bases, args.batch, gen, 2 ** args.stages, len(args.lambdas))
    if fresh_density and args.density_steps:
        before, after = fit_density(model, data, args.density_steps)
        print(f"the hyper-latent's fresh density fitted in {args.density_steps} steps: {before:.0f} -> {after:.0f} "
              "z bits per patch", flush=True)

    forward = torch.compile(model) if args.compile else model
    balance = LossBalance(len(args.lambdas)) if args.balance else None

    def one_step(step: int):
        x, b, q = next(data)
        out, bits = forward(x, None if args.mode == "single" else b, q)
        losses = per_patch_loss(out, x, bits, lambdas[q])
        loss = losses.mean() if balance is None else (losses * balance.weights(q)).mean()
        if balance is not None:
            balance.update(q, losses.detach())
        return loss, {"loss": round(float(losses.detach().mean()), 4)}

    # the checkpoint keeps the keys every run so far wrote ("model", "opt", "aux_opt", "step", "args"):
    # runs in progress resume from it
    run(model, opt, aux_opt, step, one_step=one_step, every=args.save_every, max_steps=args.max_steps, minutes=args.minutes,
        validate=lambda: validate(model, val_x, val_b), log_file=log_file,
        save=lambda step: save_checkpoint(ckpt, "model", model, opt, aux_opt, step, args, cache))


if __name__ == "__main__":
    main()
