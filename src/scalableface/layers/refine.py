"""Encode-time optimisation of a latent (`sface encode --effort N`): a better encoder, the same decoder.

The analysis transform guesses each face's latent in one pass; the encoder can then search near that
guess for the latent whose real bitstream costs least, lambda * 255^2 * MSE + bits per pixel, the
loss the network was trained on. The search is stochastic Gumbel annealing (Yang et al. 2020,
"Improving inference for neural image compression"): every element is rounded down or up at random,
the nearer integer the likelier, with a temperature that falls from 0.5 (close to uniform noise) to
0.1 (close to hard rounding), so the gradient sees the rounding the decoder will do without being cut
off by it. At a few points of the schedule the real cost is measured (payload written, decoded
pixels compared), and each face keeps the best payload seen, the plain encoder's included: a higher
effort is never worse than effort 0 on the cost the network was trained for.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

# per effort level, (search iterations, real-cost checks); 0 is the plain encoder. The default, 1,
# is the cheapest search that saves about 3% within issue 11's 0.5 s per face (README, "Encode effort")
EFFORT_SEARCH = ((0, 0), (8, 2), (20, 4), (60, 4))
DEFAULT_EFFORT = 1
TAU_START, TAU_END = 0.5, 0.1
STEP = 0.02  # Adam's step, in units of one quantization step (the search runs on the gained latent)


def search(effort: int) -> tuple[int, int]:
    """(iterations, real-cost checks) of an effort level."""
    if not 0 <= effort < len(EFFORT_SEARCH):
        raise ValueError(f"effort must be 0..{len(EFFORT_SEARCH) - 1}")
    return EFFORT_SEARCH[effort]


def level(effort: int | None) -> int:
    """The effort level `effort` asks for (None: the default), checked."""
    effort = DEFAULT_EFFORT if effort is None else effort
    search(effort)
    return effort


def signature(effort: int) -> str:
    """Everything that decides an effort level's payloads, for caches of measured points."""
    iterations, checks = search(effort)
    return f"search{iterations}x{checks}:tau{TAU_START}-{TAU_END}:step{STEP}"


def annealed_rounding(r: torch.Tensor, tau: float, generators: list[torch.Generator]) -> torch.Tensor:
    """r (N x ...) rounded down or up at random, differentiably: a Gumbel-softmax draw between
    floor(r) and floor(r) + 1 with logits -atanh(distance) / tau (Yang et al. 2020). Face i's noise
    comes from generators[i], so that a face's payload does not depend on the batch it was coded in."""
    low = torch.floor(r)
    frac = (r - low).clamp(1e-4, 1 - 1e-4)
    logits = torch.stack([-torch.atanh(frac), -torch.atanh(1 - frac)]) / tau
    u = torch.stack([torch.rand(logits.shape[:1] + logits.shape[2:], generator=g) for g in generators], 1)
    return low + torch.softmax(logits - torch.log(-torch.log(u.clamp_min(1e-10))), 0)[1]


def refine(u0: torch.Tensor, soft_cost: Callable, true_cost: Callable, steps: int, checks: int, start: tuple,
           seed: int = 0) -> list:
    """The best artefacts (e.g. payloads) per face of a search from the gained latents u0 (N x ...).

    soft_cost(u, rounding) gives the N differentiable costs of latents u with `rounding` standing
    for the quantizer; true_cost(u) gives (N real costs, N artefacts) of coding u for real; `start`
    is that of the plain encoder, the result for every face the search does not beat; `checks` real
    costs are measured, evenly over the schedule."""
    costs, best = np.array(start[0], np.float64), list(start[1])
    u = u0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=STEP)
    gens = [torch.Generator().manual_seed(seed) for _ in range(len(u0))]
    check_at = {round(steps * (k + 1) / checks) for k in range(checks)}
    for t in range(1, steps + 1):
        tau = TAU_START * (TAU_END / TAU_START) ** (t / steps)
        loss = soft_cost(u, lambda r: annealed_rounding(r, tau, gens)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if t in check_at:
            new, artefacts = true_cost(u.detach())
            for i in np.flatnonzero(np.asarray(new) < costs):
                costs[i], best[i] = new[i], artefacts[i]
    return best
