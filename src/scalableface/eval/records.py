"""Bytes per face, all told, of a gallery in record files (.sfr) against identity-only .sfc files.

    python -m scalableface.eval.records [--data ../shared/data] [-o results/records.json]

For each base rate point of the installed model, the flip-averaged reference descriptors of all 7,701
LFW images and of the 500 held-out UTKFace images are coded as the encoder codes them, and stored
(a) one identity-only .sfc file per face (no transform), (b) one .sfr file for the whole set, with
1, 16, 64 (the default) and 256 records per CRC block, without and with the files' names (as `sface
pack` stores them: the paths `sface encode DIR --out-dir sfc/` writes). Every figure is the length of
real bytes written by the library; the .sfr files are decoded back and checked against the symbols.
Also reported: the information content of the symbols under the model's tables (what one
arithmetic code over the whole gallery would approach, with no per-face byte rounding or length),
and what a 1-byte CRC-8 instead of the identity layer's CRC-32 would make of a single .sfc file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import container, entropy, modelset, records
from ..facesets import UTK_VALIDATION
from ..paths import cache_dir, data_dir

BLOCKS = (1, 16, 64, 256)


def information_bytes(symbols: np.ndarray, tables) -> float:
    """Mean -log2 p(symbols) / 8 per face under the per-dimension tables."""
    bits = 0.0
    for j, t in enumerate(tables):
        f = np.asarray(t.freqs, np.float64)[symbols[:, j] - t.offset]
        bits += float(-np.log2(f / entropy.TOTAL).sum())
    return bits / 8 / len(symbols)


def gallery_bytes(symbols: np.ndarray, rate: int, names=None, model=None) -> dict:
    """Bytes per face of one face set's symbols at one rate point, stored each way."""
    ms = modelset.load(model)
    entry, base = ms.entry, ms.base
    identity = base.identity(rate)
    payloads = [entropy.encode(q.tolist(), identity.tables) for q in symbols]
    n = len(payloads)
    header = container.Header(model_id=entry.short_id, base_rate=rate)
    sfc = sum(len(container.pack(header, [(container.LayerType.IDENTITY, p)])) for p in payloads)
    out = {"faces": n, "payload": sum(map(len, payloads)) / n, "sfc_file": sfc / n,
           "sfc_file_with_crc8": (sfc - 3 * n) / n, "information": information_bytes(symbols, identity.tables)}
    for block in BLOCKS:
        data = records.to_bytes(entry.short_id, rate, payloads, None, block)
        assert np.array_equal(records.symbols(data)[1], symbols), "record file does not decode to its symbols"
        out[f"sfr_block{block}"] = len(data) / n
        if names is not None and block == records.DEFAULT_BLOCK:
            named = records.to_bytes(entry.short_id, rate, payloads, names, block)
            assert records.parse(named).names == tuple(names)
            out["sfr_with_names"] = len(named) / n
    out["gallery_bytes_per_face"] = out[f"sfr_block{records.DEFAULT_BLOCK}"]
    return out


def face_sets(data: Path) -> dict:
    """{name: (descriptors, names)}: LFW (every image of View 2) and the UTKFace validation hold-out."""
    from ..train.prepare import utk_files
    from .lfw import read_pairs

    cache = cache_dir()
    lfw = read_pairs(data / "lfw").images
    utk = utk_files(data)[-UTK_VALIDATION:]
    return {
        "lfw": (np.load(cache / "lfw_desc.npy").mean(axis=1),
                [f"sfc/{p.parent.name}/{p.stem}.sfc" for p in lfw]),
        "utk_validation": (np.load(cache / "utk_desc.npy")[-UTK_VALIDATION:].mean(axis=1),
                           [f"sfc/{p.with_suffix('.sfc').name}" for p in utk]),
    }


def measure(data: Path, model=None) -> dict:
    base = modelset.load(model).base
    sets = face_sets(data)
    out = {"model": modelset.load(model).entry.name, "default_block_records": records.DEFAULT_BLOCK, "rates": []}
    for rate in base.rates:
        identity = base.identity(rate)
        row = {"rate": rate}
        for name, (desc, names) in sets.items():
            row[name] = gallery_bytes(identity.quantize(desc), rate, names, model)
        out["rates"].append(row)
    return out


def table(res: dict) -> str:
    lines = ["| rate point | set | payload | .sfc file | .sfr, CRC per 1 / 16 / **64** / 256 records | .sfr with names | information |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rates"]:
        for name in ("lfw", "utk_validation"):
            g = r[name]
            blocks = " / ".join((f"**{g[f'sfr_block{b}']:.2f}**" if b == records.DEFAULT_BLOCK else f"{g[f'sfr_block{b}']:.2f}")
                                for b in BLOCKS)
            lines.append(f"| {r['rate']} | {name} | {g['payload']:.2f} | {g['sfc_file']:.2f} | {blocks} | "
                         f"{g['sfr_with_names']:.2f} | {g['information']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="folder holding lfw/ and utkface/ (default: ../shared/data)")
    ap.add_argument("--model", default=None)
    ap.add_argument("-o", "--output", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    res = measure(args.data or data_dir(), args.model)
    print(table(res))
    if args.output:
        args.output.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
