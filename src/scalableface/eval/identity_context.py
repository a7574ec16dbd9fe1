"""How many bytes a conditional entropy model would save on the shipped identity symbols.

    python -m scalableface.eval.identity_context [-o results/identity_context.json]

The transform is not retrained: at each base rate point of the installed model, the identity symbols
of the reference descriptors (flip-averaged, as the encoder codes them) are computed with the shipped
analysis transform. Context tables are fitted on the symbols of the UTKFace training descriptors
(the 15,500 UTKFace crops less the 500 held out, and utkface-extra: what the identity codec trained
on) and measured on the 500 held-out UTKFace faces and on all 7,701 LFW images, which are never fitted
on. Each model codes dimension j with a table chosen by a context computed from the symbols of
dimensions before it (a decoder has them), so it fits the bitstream's arithmetic code unchanged
(bitstream_spec.md 3.1 with one table per symbol chosen by context):

- `factorized`: the shipped tables (what ships);
- `refit`: one table per dimension refitted on the same data (separates the gain of context from the
  gain of refitting);
- `prev3`, `prev5`: per dimension, the previous dimension's symbol in 3 buckets (< 0, 0, > 0) or
  5 (<= -2, -1, 0, 1, >= 2);
- `parent5`: as prev5, but the earlier dimension that tells most about this one (lowest conditional
  entropy on the fit data) instead of the previous one;
- `parent5x2`: the two best earlier dimensions, 5 x 5 buckets;
- `activity4`: the sum of |symbol| over the dimensions before, in 4 buckets at its per-dimension
  quartiles on the fit data (a running-magnitude context).

Tables are 16-bit frequency tables on the shipped tables' symbol ranges, from counts smoothed
toward the shipped table (pseudo-count `beta` chosen on a held-out fifth of the fit data). Bytes are
real payloads of the exact arithmetic coder (entropy.encode with the chosen tables); `information`
is -log2 p / 8, the rate without the byte rounding of each payload.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import entropy, modelset
from ..entropy import FrequencyTable
from ..facesets import UTK_VALIDATION
from ..paths import cache_dir

BETAS = (1.0, 4.0, 16.0, 64.0, 256.0)


def bucket(v: np.ndarray, k: int) -> np.ndarray:
    """Symbol values to k buckets: 3 = (<0, 0, >0); 5 = (<=-2, -1, 0, 1, >=2)."""
    h = k // 2
    return np.clip(v, -h, h) + h


def best_parents(s: np.ndarray, k: int, n_parents: int) -> list[list[int]]:
    """Per dimension j, the earlier dimensions (up to n_parents, chosen greedily) whose bucketed symbols
    leave the lowest conditional entropy of dimension j on the fit symbols."""
    out = [[]]
    for j in range(1, s.shape[1]):
        chosen: list[int] = []
        for _ in range(min(n_parents, j)):
            best, best_h = None, np.inf
            for i in range(j):
                if i in chosen:
                    continue
                ctx = _joint([bucket(s[:, p], k) for p in chosen + [i]], k)
                h = _cond_entropy(s[:, j], ctx)
                if h < best_h:
                    best, best_h = i, h
            chosen.append(best)
        out.append(chosen)
    return out


def _joint(cols: list[np.ndarray], k: int) -> np.ndarray:
    ctx = np.zeros(len(cols[0]) if cols else 0, np.int64)
    for c in cols:
        ctx = ctx * k + c
    return ctx


def _cond_entropy(x: np.ndarray, ctx: np.ndarray) -> float:
    h = 0.0
    for c in np.unique(ctx):
        xs = x[ctx == c]
        _, counts = np.unique(xs, return_counts=True)
        p = counts / counts.sum()
        h += len(xs) * float(-(p * np.log2(p)).sum())
    return h / len(x)


class ContextModel:
    """contexts(symbols) -> N x dims context ids; tables[j][c] is a FrequencyTable."""

    def __init__(self, name: str, n_contexts: int, contexts):
        self.name, self.n_contexts, self.contexts = name, n_contexts, contexts
        self.tables: list[list[FrequencyTable]] = []
        self.beta = None

    def fit(self, s: np.ndarray, shipped: list[FrequencyTable], beta: float) -> "ContextModel":
        ctx = self.contexts(s)
        self.beta, self.tables = beta, []
        for j, t in enumerate(shipped):
            prior = np.asarray(t.freqs, np.float64) / entropy.TOTAL
            row = []
            for c in range(self.n_contexts):
                v = s[ctx[:, j] == c, j] - t.offset
                counts = np.bincount(np.clip(v, 0, len(prior) - 1), minlength=len(prior)).astype(np.float64)
                row.append(FrequencyTable.from_pmf(t.offset, counts + beta * prior))
            self.tables.append(row)
        return self

    def chosen(self, s: np.ndarray) -> list[list[FrequencyTable]]:
        ctx = self.contexts(s)
        return [[self.tables[j][c] for j, c in enumerate(row)] for row in ctx]

    def information(self, s: np.ndarray) -> float:
        ctx = self.contexts(s)
        bits = 0.0
        for j in range(s.shape[1]):
            for c in range(self.n_contexts):
                m = ctx[:, j] == c
                t = self.tables[j][c]
                bits += float(-np.log2(np.asarray(t.freqs, np.float64)[s[m, j] - t.offset] / entropy.TOTAL).sum())
        return bits / 8 / len(s)

    def payload_bytes(self, s: np.ndarray) -> float:
        return float(np.mean([len(entropy.encode(row.tolist(), tabs)) for row, tabs in zip(s, self.chosen(s))]))


def models_for(fit: np.ndarray) -> list[ContextModel]:
    dims = fit.shape[1]

    def prev(k):
        def ctx(s):
            out = np.zeros_like(s)
            out[:, 1:] = bucket(s[:, :-1], k)
            return out
        return ctx

    def parents(k, n):
        chosen = best_parents(fit, k, n)

        def ctx(s):
            out = np.zeros_like(s)
            for j, ps in enumerate(chosen):
                if ps:
                    out[:, j] = _joint([bucket(s[:, p], k) for p in ps], k)
            return out
        ctx.parents = chosen
        return ctx

    run = np.concatenate([np.zeros((len(fit), 1), np.int64), np.cumsum(np.abs(fit), axis=1)[:, :-1]], axis=1)
    edges = [np.unique(np.quantile(run[:, j], [0.25, 0.5, 0.75])) for j in range(dims)]

    def activity(s):
        r = np.concatenate([np.zeros((len(s), 1), np.int64), np.cumsum(np.abs(s), axis=1)[:, :-1]], axis=1)
        return np.stack([np.searchsorted(edges[j], r[:, j], side="right") for j in range(dims)], axis=1)

    return [ContextModel("refit", 1, lambda s: np.zeros_like(s)), ContextModel("prev3", 3, prev(3)),
            ContextModel("prev5", 5, prev(5)), ContextModel("parent5", 5, parents(5, 1)),
            ContextModel("parent5x2", 25, parents(5, 2)), ContextModel("activity4", 4, activity)]


def fit_with_beta(model: ContextModel, fit: np.ndarray, shipped) -> ContextModel:
    """beta chosen on the last fifth of the fit symbols (fitted on the rest), then refitted on all."""
    cut = len(fit) * 4 // 5
    best = min(BETAS, key=lambda b: model.fit(fit[:cut], shipped, b).information(fit[cut:]))
    return model.fit(fit, shipped, best)


def descriptor_sets() -> dict:
    cache = cache_dir()
    utk = np.load(cache / "utk_desc.npy").mean(axis=1)
    fit = [utk[:-UTK_VALIDATION]]
    if (cache / "utkx_desc.npy").exists():
        fit.append(np.load(cache / "utkx_desc.npy").mean(axis=1))
    return {"fit": np.concatenate(fit), "utk_validation": utk[-UTK_VALIDATION:],
            "lfw": np.load(cache / "lfw_desc.npy").mean(axis=1)}


def measure(model=None) -> dict:
    base = modelset.load(model).base
    sets = descriptor_sets()
    out = {"model": modelset.load(model).entry.name, "fit_faces": len(sets["fit"]), "rates": []}
    for rate in base.rates:
        identity = base.identity(rate)
        sym = {k: identity.quantize(v) for k, v in sets.items()}
        row = {"rate": rate, "models": {}}
        shipped = identity.tables
        for name in ("utk_validation", "lfw"):
            s = sym[name]
            row["models"].setdefault("factorized", {})[name] = {
                "payload_bytes": float(np.mean([len(entropy.encode(r.tolist(), shipped)) for r in s])),
                "information": _information(s, shipped)}
        row["models"]["factorized"]["fit_information"] = _information(sym["fit"], shipped)
        for m in models_for(sym["fit"]):
            fit_with_beta(m, sym["fit"], shipped)
            entry = {"contexts": m.n_contexts, "beta": m.beta, "tables": m.n_contexts * len(shipped)}
            if hasattr(m.contexts, "parents"):
                entry["parents"] = m.contexts.parents
            for name in ("utk_validation", "lfw"):
                entry[name] = {"payload_bytes": m.payload_bytes(sym[name]), "information": m.information(sym[name])}
            entry["fit_information"] = m.information(sym["fit"])
            row["models"][m.name] = entry
        base_row = row["models"]["factorized"]
        for name, entry in row["models"].items():
            for s in ("utk_validation", "lfw"):
                entry[s]["saved_vs_factorized"] = 1 - entry[s]["payload_bytes"] / base_row[s]["payload_bytes"]
        out["rates"].append(row)
    return out


def _information(s: np.ndarray, tables) -> float:
    bits = sum(float(-np.log2(np.asarray(t.freqs, np.float64)[s[:, j] - t.offset] / entropy.TOTAL).sum())
               for j, t in enumerate(tables))
    return bits / 8 / len(s)


def table(res: dict) -> str:
    names = list(res["rates"][0]["models"])
    lines = ["| rate point | set | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in res["rates"]:
        for s in ("utk_validation", "lfw"):
            cells = []
            for n in names:
                e = r["models"][n][s]
                cells.append(f"{e['payload_bytes']:.2f}" + ("" if n == "factorized" else f" ({-100 * e['saved_vs_factorized']:+.1f}%)"))
            lines.append(f"| {r['rate']} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("-o", "--output", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    res = measure(args.model)
    print(table(res))
    if args.output:
        args.output.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
