"""Train the identity codec for one base rate point: descriptor -> latent -> entropy model -> descriptor.

    python -m scalableface.train.identity --rate 2 --lmbda 3000

Data: the reference recognizer's descriptors of the UTKFace crops (each crop, its mirror, their
average) made by `python -m scalableface.train.prepare`, plus, where prepared (`--extra --augment K`),
utkface-extra and K imperfect views of every crop. The loss is bits per face + lmbda * (squared L2
error of the decoded descriptor + pair_weight * pair_loss), so lmbda sets the rate point.
Resumable: a checkpoint is written every --save-every steps to <cache>/identity_r<k>.pt, with a
validation line in <cache>/identity_r<k>.log, and picked up again when the command is re-run with
the same settings (lmbda, latent, hidden, pair weight).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from ..facesets import UTK_VALIDATION
from ..paths import cache_dir
from ..canonical import DESCRIPTOR_DIM
from .common import optimizers, resume, round_with_noisy_rate, run, save_checkpoint, table_tensors

INPUT_SCALE = 10.0  # descriptor entries are ~0.1; this brings them near unit scale


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class IdentityNet(nn.Module):
    def __init__(self, latent: int = 32, hidden: int = 256):
        super().__init__()
        self.analysis = mlp([DESCRIPTOR_DIM, hidden, hidden, latent])
        self.synthesis = mlp([latent, hidden, hidden, DESCRIPTOR_DIM])
        self.entropy_bottleneck = EntropyBottleneck(latent)

    def forward(self, d: torch.Tensor):
        y_round, likelihoods = round_with_noisy_rate(self.entropy_bottleneck, self.analysis(d * INPUT_SCALE))
        return self.synthesis(y_round) / INPUT_SCALE, likelihoods


def load_views(cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Training descriptors as N faces x V views x 128: each crop, its mirror and their average (what
    the encoder codes), then the imperfect views of train.prepare --augment where they exist, for
    UTKFace less its validation images and, when prepared, utkface-extra; validation: the flip
    averages of the held-out images."""
    views, val = [], None
    for name in ("utk", "utkx"):
        if not (cache / f"{name}_desc.npy").exists():
            continue
        d = np.load(cache / f"{name}_desc.npy").astype(np.float32)  # (N, 2, 128): crop and mirror
        aug = sorted(cache.glob(f"{name}_aug*_desc.npy"))
        v = np.concatenate([d, d.mean(axis=1, keepdims=True)] + [np.load(f)[:, None] for f in aug], axis=1)
        if name == "utk":
            v, val = v[:-UTK_VALIDATION], d[-UTK_VALIDATION:].mean(axis=1)
        views.append(v)
    if val is None:
        raise SystemExit(f"no {cache / 'utk_desc.npy'}: run python -m scalableface.train.prepare first")
    width = min(v.shape[1] for v in views)  # sets prepared with fewer views use that many
    return torch.from_numpy(np.concatenate([v[:, :width] for v in views])), torch.from_numpy(val)


def pair_loss(d_hat: torch.Tensor, d: torch.Tensor, threshold: float = 0.6, width: float = 0.15) -> torch.Tensor:
    """How much decoding moves the distances between the faces of a batch, weighted towards pairs
    near the verification threshold: both decoded (compressed gallery) and one decoded against the
    other's original (uncompressed gallery)."""
    true = torch.cdist(d, d)
    weight = torch.exp(-(((true - threshold) / width) ** 2) / 2)
    both = torch.cdist(d_hat, d_hat) - true
    cross = torch.cdist(d_hat, d) - true
    return (weight * (both ** 2 + cross ** 2)).sum() / weight.sum()


def evaluate(net: IdentityNet, d: torch.Tensor) -> dict:
    net.eval()
    with torch.no_grad():
        y = net.analysis(d * INPUT_SCALE)
        medians = net.entropy_bottleneck.quantiles[:, 0, 1]
        y_hat = torch.round(y - medians) + medians
        _, lik = net.entropy_bottleneck(y_hat, training=False)
        d_hat = net.synthesis(y_hat) / INPUT_SCALE
    net.train()
    return {
        "bits": float(-torch.log2(lik).sum(1).mean()),
        "mse": float(((d_hat - d) ** 2).sum(1).mean()),
        "max_err": float((d_hat - d).norm(dim=1).max()),
    }


def export(net: IdentityNet, rate: int) -> dict[str, np.ndarray]:
    """Tensors for the model file under identity.r<rate>.* (see layers/identity.py)."""
    p = f"identity.r{rate}"
    out: dict[str, np.ndarray] = {}
    for part in ("analysis", "synthesis"):
        linears = [m for m in getattr(net, part) if isinstance(m, nn.Linear)]
        for i, lin in enumerate(linears):
            out[f"{p}.{part}.{i}.weight"] = lin.weight.detach().numpy().astype(np.float32)
            out[f"{p}.{part}.{i}.bias"] = lin.bias.detach().numpy().astype(np.float32)
    out[f"{p}.input_scale"] = np.array([INPUT_SCALE], np.float32)
    return out | table_tensors(p, net.entropy_bottleneck)


def train(args: argparse.Namespace, cache: Path) -> IdentityNet:
    """Each step takes batch/2 faces and two random views of each (so the batch holds pairs of the
    same face as well as of different faces) and minimises bits + lmbda * (squared error +
    pair_weight * pair_loss), at learning rate 1e-3 and for the last 20% of the steps 1e-4."""
    torch.manual_seed(args.rate)
    train_v, val_d = load_views(cache)
    ckpt = cache / f"identity_r{args.rate}.pt"
    net = IdentityNet(args.latent, args.hidden)
    opt, aux_opt = optimizers(net, 1e-3)
    settings = {k: getattr(args, k) for k in ("lmbda", "latent", "hidden", "pair_weight")}
    step = resume(ckpt, "net", net, opt, aux_opt, settings)
    gen = torch.Generator().manual_seed(1000 + step)
    n, v = train_v.shape[:2]

    def one_step(step: int):
        for g in opt.param_groups:
            g["lr"] = 1e-3 if step < 0.8 * args.steps else 1e-4
        faces = torch.randint(n, (args.batch // 2,), generator=gen).repeat(2)
        d = train_v[faces, torch.randint(v, (len(faces),), generator=gen)]
        d_hat, lik = net(d)
        bits = -torch.log2(lik).sum(1).mean()
        mse = ((d_hat - d) ** 2).sum(1).mean()
        loss = bits + args.lmbda * mse
        if args.pair_weight:
            loss = loss + args.lmbda * args.pair_weight * pair_loss(d_hat, d)
        return loss, {"rate": args.rate, "train_bits": float(bits.detach()), "train_mse": float(mse.detach())}

    run(net, opt, aux_opt, step, one_step=one_step, every=args.save_every, max_steps=args.steps,
        validate=lambda: {f"val_{k}": x for k, x in evaluate(net, val_d).items()},
        log_file=cache / f"identity_r{args.rate}.log",
        save=lambda step: save_checkpoint(ckpt, "net", net, opt, aux_opt, step, args, cache))
    return net


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, required=True, help="base rate point this model serves (1..15)")
    ap.add_argument("--lmbda", type=float, required=True, help="weight of the descriptor error against bits")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=256, help="width of the two hidden layers of each MLP")
    ap.add_argument("--pair-weight", type=float, default=0.0,
                    help="weight of the distance-preservation loss (pair_loss) beside the squared error")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--save-every", type=int, default=1000)
    ap.add_argument("--cache", type=Path, default=None, help="folder with utk_desc.npy (default: the sface cache)")
    args = ap.parse_args(argv)
    cache = args.cache or cache_dir()
    torch.set_num_threads(1)
    net = train(args, cache)
    np.savez(cache / f"identity_r{args.rate}_export.npz", **export(net, args.rate))


if __name__ == "__main__":
    main()
