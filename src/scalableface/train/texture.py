"""Train the base texture: appearance encoder + entropy model + generator, multi-task.

    python -m scalableface.train.texture --minutes 90

Loss per face: pixel MSE + id_weight * squared distance between the recognizer's descriptor of the
generated face and the original's + rate_weight * appearance bits. The generator sees the original
descriptor plus Gaussian noise of about the identity layer's decoding error, so it does not depend on
one identity rate point. Data: UTKFace crops and descriptors from `python -m scalableface.train.prepare`
(last 500 images held out). Resumable: every --save-every steps a checkpoint goes to
<cache>/texture.pt and a validation line to <cache>/texture.log; re-running continues from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from ..eval.metrics import psnr
from ..facesets import UTK_VALIDATION
from ..layers.appearance import AppearanceEncoder, Generator
from ..paths import cache_dir
from ..recognizer import descriptor_from_crops, load_recognizer
from .common import optimizers, resume, round_with_noisy_rate, run, save_checkpoint, table_tensors

DESCRIPTOR_NOISE = 0.01


class TextureNet(nn.Module):
    def __init__(self, latent: int, width: int):
        super().__init__()
        self.encoder = AppearanceEncoder(latent, width)
        self.generator = Generator(latent, width)
        self.entropy_bottleneck = EntropyBottleneck(latent)

    def forward(self, x: torch.Tensor, descriptor: torch.Tensor):
        y_round, likelihoods = round_with_noisy_rate(self.entropy_bottleneck, self.encoder(x))
        return self.generator(descriptor, y_round), likelihoods


def batches(crops: np.ndarray, desc: np.ndarray, batch: int, gen: torch.Generator):
    n = len(crops)
    while True:
        idx = torch.randint(n, (batch,), generator=gen).numpy()
        idx.sort()  # mmap reads in order
        x = torch.from_numpy(np.asarray(crops[idx])).permute(0, 3, 1, 2).float() / 255
        flip = torch.rand(batch, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        d = torch.from_numpy(desc[idx])
        yield x, d


def validate(net: TextureNet, recognizer, x: torch.Tensor, d: torch.Tensor) -> dict:
    net.eval()
    with torch.no_grad():
        y = net.encoder(x)
        medians = net.entropy_bottleneck.quantiles[:, 0, 1]
        y_hat = torch.round(y - medians) + medians
        _, lik = net.entropy_bottleneck(y_hat, training=False)
        out = net.generator(d, y_hat)
        mse = ((out - x) ** 2).flatten(1).mean(1)
        dist = (descriptor_from_crops(out * 255) - d).norm(dim=1)
    net.train()
    return {"bits": float(-torch.log2(lik).sum(1).mean()), "psnr": float(psnr(mse).mean()), "id_dist": float(dist.mean()),
            "id_under_0.6": float((dist < 0.6).float().mean())}


def export(net: TextureNet) -> dict[str, np.ndarray]:
    """Tensors for the model file: appearance.* (encoder, tables) and generator.*."""
    out = {f"appearance.encoder.{k}": v.numpy() for k, v in net.encoder.state_dict().items()}
    out |= {f"generator.{k}": v.numpy() for k, v in net.generator.state_dict().items()}
    return out | table_tensors("appearance", net.entropy_bottleneck)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60, help="stop after this much wall time (this run)")
    ap.add_argument("--max-steps", type=int, default=200000)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4, help="also applied on resume")
    ap.add_argument("--id-weight", type=float, default=0.01)
    ap.add_argument("--rate-weight", type=float, default=2e-5, help="loss per appearance bit")
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (tests)")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="without a checkpoint, start from the encoder and generator of this model file "
                         "(e.g. models/sface-base-v1.safetensors); the entropy model restarts")
    args = ap.parse_args(argv)
    cache = args.cache or cache_dir()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    crops = np.load(cache / "utk_crops.npy", mmap_mode="r")
    desc = np.load(cache / "utk_desc.npy").mean(axis=1).astype(np.float32)
    train_crops, train_desc = crops[:-UTK_VALIDATION], desc[:-UTK_VALIDATION]
    if args.limit:
        train_crops, train_desc = train_crops[: args.limit], train_desc[: args.limit]
    val_x = torch.from_numpy(np.array(crops[-UTK_VALIDATION:][:64])).permute(0, 3, 1, 2).float() / 255
    val_d = torch.from_numpy(desc[-UTK_VALIDATION:][:64])

    recognizer = load_recognizer()
    for p in recognizer.parameters():
        p.requires_grad_(False)
    net = TextureNet(args.latent, args.width).to(memory_format=torch.channels_last)  # 5-35% faster on CPU
    opt, aux_opt = optimizers(net, args.lr)
    ckpt = cache / "texture.pt"
    step = resume(ckpt, "net", net, opt, aux_opt)
    if not step and args.init_from:
        from safetensors.torch import load_file

        weights = load_file(args.init_from)
        for prefix, module in (("appearance.encoder.", net.encoder), ("generator.", net.generator)):
            module.load_state_dict({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
        print(f"initialised from {args.init_from}", flush=True)

    gen = torch.Generator().manual_seed(step)
    data = batches(train_crops, train_desc, args.batch, gen)

    def one_step(step: int):
        x, d = next(data)
        x = x.contiguous(memory_format=torch.channels_last)
        d_in = d + DESCRIPTOR_NOISE * torch.randn(d.shape, generator=gen)
        out, lik = net(x, d_in)
        mse = ((out - x) ** 2).mean()
        id_dist2 = ((descriptor_from_crops(out * 255) - d) ** 2).sum(1).mean()
        bits = -torch.log2(lik).sum(1).mean()
        return mse + args.id_weight * id_dist2 + args.rate_weight * bits, {
            "train_psnr": float(psnr(mse.detach())), "train_bits": float(bits.detach()),
            "train_id_dist2": float(id_dist2.detach())}

    run(net, opt, aux_opt, step, one_step=one_step, every=args.save_every, max_steps=args.max_steps, minutes=args.minutes,
        validate=lambda: {f"val_{k}": v for k, v in validate(net, recognizer, val_x, val_d).items()},
        log_file=cache / "texture.log", save=lambda step: save_checkpoint(ckpt, "net", net, opt, aux_opt, step, args, cache))


if __name__ == "__main__":
    main()
