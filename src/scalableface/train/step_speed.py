"""Training speed of the enhancement network per variant: eager, channels-last, torch.compile.

    python -m scalableface.train.step_speed [--steps 20] [--threads 1] [--variants eager channels_last compile]

Times full training steps (forward, rate-distortion loss, backward, Adam update) of a freshly
initialised EnhanceTrainer of sface-v4's shape (residual, N=64, M=128, three stages, checkerboard
context) on random 64x64 patches, batch 32 as train.enhance uses, after --warmup steps (which for
torch.compile include its compilation, reported apart). Prints one JSON line per variant: seconds
per step and the speed-up over eager. A benchmark, not a test: run it on otherwise idle cores.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from .common import optimizers
from .enhance import LAMBDAS, PATCH, EnhanceTrainer, rd_loss

VARIANTS = ("eager", "channels_last", "compile")


def time_variant(variant: str, steps: int, warmup: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = EnhanceTrainer("residual", qualities=len(LAMBDAS), n=64, m=128, stages=3, context="checkerboard")
    opt, _ = optimizers(model, 1e-4)
    lambdas = torch.tensor(LAMBDAS)
    x, b = torch.rand(batch, 3, PATCH, PATCH), torch.rand(batch, 3, PATCH, PATCH)
    q = torch.randint(len(LAMBDAS), (batch,))
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x, b = x.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if variant == "compile" else model

    def step():
        out, bits = forward(x, b, q)
        loss = rd_loss(out, x, bits, lambdas[q])
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for _ in range(warmup):
        step()
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return {"variant": variant, "seconds_per_step": (time.perf_counter() - t) / steps, "warmup_seconds": warm}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    eager = None
    for v in args.variants:
        try:
            r = time_variant(v, args.steps, args.warmup, args.batch)
        except Exception as e:  # torch.compile needs a working C++ toolchain; say so rather than stop
            print(json.dumps({"variant": v, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}), flush=True)
            continue
        eager = r["seconds_per_step"] if v == "eager" else eager
        if eager:
            r["speedup_over_eager"] = eager / r["seconds_per_step"]
        print(json.dumps(r | {"threads": args.threads, "batch": args.batch}), flush=True)


if __name__ == "__main__":
    main()
