"""What every training stage shares: the loop (run: resume, train, validate and checkpoint every K
steps, one JSON log line each time), the two-optimizer step of a CompressAI entropy bottleneck, and
the export of its density as the integer tables of bitstream_spec.md, section 3.1.

A stage (identity, texture, enhance) brings its network, one_step (a batch's loss) and validate."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from ..entropy import FrequencyTable, pack_tables


def optimizers(net: nn.Module, lr: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for the network, and a separate one for the bottleneck's quantiles (its auxiliary loss)."""
    main = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam([net.entropy_bottleneck.quantiles], lr=1e-3)


def update(net: nn.Module, loss: torch.Tensor, opt: torch.optim.Optimizer, aux_opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()
    aux = net.entropy_bottleneck.loss()
    aux_opt.zero_grad()
    aux.backward()
    aux_opt.step()


def resume(path: Path, key: str, model: nn.Module, opt: torch.optim.Optimizer, aux_opt: torch.optim.Optimizer,
           settings: Optional[dict] = None) -> int:
    """Load a checkpoint written by save_checkpoint into model and optimizers; the step it reached
    (0 without a checkpoint, or with one trained with other `settings`: those arguments must match
    the checkpoint's, read from its "args" or, in identity checkpoints from before run(), its top
    level). The optimizers keep the learning rates they were built with, so a stage's --lr applies
    on resume too (a run can go on at a lower rate)."""
    if not path.exists():
        return 0
    ck = torch.load(path, weights_only=True)
    if settings and any(ck.get("args", ck).get(k) != v for k, v in settings.items()):
        return 0
    model.load_state_dict(ck[key])
    for o, state in ((opt, ck["opt"]), (aux_opt, ck["aux_opt"])):
        rates = [g["lr"] for g in o.param_groups]
        o.load_state_dict(state)
        for g, lr in zip(o.param_groups, rates):
            g["lr"] = lr
    print(f"resumed at step {ck['step']}", flush=True)
    return ck["step"]


def save_checkpoint(path: Path, key: str, model: nn.Module, opt: torch.optim.Optimizer, aux_opt: torch.optim.Optimizer,
                    step: int, args: argparse.Namespace, cache: Path) -> None:
    # plain values only: the checkpoint is read back with torch.load(weights_only=True)
    saved_args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()} | {"cache": str(cache)}
    torch.save({key: model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(), "step": step,
                "args": saved_args}, path)


def log_line(path: Path, record: dict) -> None:
    """A validation record: printed, and appended to the stage's log as one JSON line."""
    print(json.dumps(record), flush=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run(model: nn.Module, opt: torch.optim.Optimizer, aux_opt: torch.optim.Optimizer, step: int, *,
        one_step: Callable[[int], tuple[torch.Tensor, dict]], validate: Callable[[], dict], every: int,
        max_steps: int, log_file: Path, save: Callable[[int], None], minutes: Optional[float] = None) -> int:
    """Train from `step` (0, or what resume returned) until max_steps, or until `minutes` of this run
    have passed: one_step(step) gives a batch's loss and a record of it, and the loss is minimised
    (update). Every `every` steps, and after the run's last step, {"step", "seconds"} + that record
    + validate() goes to log_file (log_line) and save(step) writes the checkpoint; a run that took
    no step still saves one (e.g. of --init-from weights). Returns the step reached."""
    t0 = time.time()
    record, saved = None, None

    def checkpoint():
        nonlocal saved
        if record is not None:
            log_line(log_file, {"step": step, "seconds": round(time.time() - t0)} | record | validate())
        save(step)
        saved = step

    while step < max_steps and (minutes is None or time.time() - t0 < minutes * 60):
        loss, record = one_step(step)
        update(model, loss, opt, aux_opt)
        step += 1
        if step % every == 0 or step == max_steps:
            checkpoint()
    if saved != step:  # stopped by the clock between checkpoints, or took no step
        checkpoint()
    return step


def round_with_noisy_rate(eb: EntropyBottleneck, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rounded latent, likelihoods): the rate sees uniform noise, the decoder the real rounding
    (straight-through), as the run-time codec rounds."""
    _, likelihoods = eb(y)
    medians = eb.quantiles[:, 0, 1].detach().view(1, -1, *[1] * (y.dim() - 2))  # channel dim 1
    return y + (torch.round(y - medians) + medians - y).detach(), likelihoods


def export_tables(eb: EntropyBottleneck, tail: float = 1e-9) -> tuple[np.ndarray, list[FrequencyTable]]:
    """Medians and one integer table per latent dimension, with the tails folded into the end symbols
    (the encoder clamps to the table, so the end symbols stand for everything beyond)."""
    q = eb.quantiles.detach()[:, 0, :]
    medians = q[:, 1]
    tables = []
    for c in range(q.shape[0]):
        lo = int(torch.clamp(torch.ceil(medians[c] - q[c, 0]), 1, 64))
        hi = int(torch.clamp(torch.ceil(q[c, 2] - medians[c]), 1, 64))
        samples = (torch.arange(-lo, hi + 1, dtype=torch.float32) + medians[c]).view(1, 1, -1)
        samples = samples.expand(q.shape[0], 1, -1).contiguous()
        with torch.no_grad():
            pmf, lower, upper = eb._likelihood(samples, stop_gradient=True)
        p = pmf[c, 0].double().numpy().copy()
        p[0] += float(torch.sigmoid(lower[c, 0, 0]))
        p[-1] += float(torch.sigmoid(-upper[c, 0, -1]))
        tables.append(FrequencyTable.from_pmf(-lo, np.maximum(p, tail)))
    return medians.numpy().astype(np.float32), tables


def table_tensors(prefix: str, eb: EntropyBottleneck) -> dict[str, np.ndarray]:
    """The bottleneck as model-file tensors: <prefix>.medians and its tables (entropy.pack_tables)."""
    medians, tables = export_tables(eb)
    return {f"{prefix}.medians": medians} | pack_tables(prefix, tables)
