"""Pieces every training stage shares: the two-optimizer step of a CompressAI entropy bottleneck and
the export of its density as the integer tables of bitstream_spec.md, section 3.1."""

from __future__ import annotations

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from ..entropy import FrequencyTable


def optimizers(net: nn.Module, lr: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for the network, and a separate one for the bottleneck's quantiles (its auxiliary loss)."""
    main = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam([net.entropy_bottleneck.quantiles], lr=1e-3)


def step(net: nn.Module, loss: torch.Tensor, opt: torch.optim.Optimizer, aux_opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()
    aux = net.entropy_bottleneck.loss()
    aux_opt.zero_grad()
    aux.backward()
    aux_opt.step()


def round_with_noisy_rate(eb: EntropyBottleneck, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rounded latent, likelihoods): the rate sees uniform noise, the decoder the real rounding
    (straight-through), as the run-time codec rounds."""
    _, likelihoods = eb(y)
    medians = eb.quantiles[:, 0, 1].detach()
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
    """The bottleneck as model-file tensors <prefix>.medians / .table_offsets / .table_lengths / .table_freqs."""
    medians, tables = export_tables(eb)
    width = max(len(t.freqs) for t in tables)
    return {
        f"{prefix}.medians": medians,
        f"{prefix}.table_offsets": np.array([t.offset for t in tables], np.int32),
        f"{prefix}.table_lengths": np.array([len(t.freqs) for t in tables], np.int32),
        f"{prefix}.table_freqs": np.array([list(t.freqs) + [0] * (width - len(t.freqs)) for t in tables], np.int32),
    }
