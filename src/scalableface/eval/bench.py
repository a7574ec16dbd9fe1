"""`sface bench`: rate-fidelity and rate-accuracy of sface against conventional codecs on LFW.

Protocol (docs: ../shared/notes/DESIGN.md, "How we measure"): the LFW View-2 images aligned by our
aligner to 128x128 crops; per codec and quality, every crop is coded and decoded, and we record
payload and whole-file bytes (bpp = 8 x bytes / 128^2), PSNR-RGB, MS-SSIM (window 7) and the LFW
10-fold accuracy of the reference recognizer on the decoded crops (no flip averaging; the reference
is the same recognizer on the uncompressed crops). `--limit N` keeps the first pairs of every fold
(same and different alike) up to about N images, so a quick run still gives a 10-fold accuracy.

Each (codec, quality) point is cached under <cache>/bench/<image list's hash> (bench-sharp/ for the
sharp set; ~/.cache/scalableface unless $SFACE_CACHE says otherwise) as soon as it is done, keyed by
the image list and the codec's settings (for sface, the model's hash and the encoder's effort), so an
interrupted run resumes where it stopped and runs on different subsets keep their points apart. Outputs:
<out>/<codec>.json in CompressAI's eval format (plus our fields), <out>/bd_rate.md and .json,
<out>/points.md (every point), and <out>/rate_psnr.png, <out>/rate_accuracy.png.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from .. import codec as sface
from .. import container, models, modelset
from ..facesets import SHARP_FACES, aligned_crops, list_key, reference_descriptors, sharp_files, sharp_set_name
from ..layers import refine
from ..paths import cache_dir
from .bdrate import bd_rate
from .conventional import CODECS, CodedBatch, bpp
from .lfw import Pairs, read_pairs, verification_accuracy
from .metrics import psnr_msssim

CHUNK = 256
SFC_FRAMING = 14 + 1 + 2 + 4  # header + a layer's type, 2-byte length and CRC: the single-layer codec's "file"


@dataclass(frozen=True)
class Contender:
    """A codec under test: `run(crops, quality, descriptors)` -> (CodedBatch, descriptors decoded from
    the bitstream without pixels, or None)."""

    name: str
    label: str
    qualities: tuple
    run: object
    key: str = ""  # changes when the codec changes (a model's hash), so stale cache entries are not reused
    unavailable: Optional[str] = None


def payload_bytes(data: bytes) -> int:
    """The bytes of an .sfc file's layer payloads (what the bench calls payload: no header or framing)."""
    return sum(len(l.payload) for l in container.parse(data).layers)


def sface_full(model: str, effort: int = 0) -> Contender:
    """The full layer of `model`, encoded at `effort` (named <model>-e<effort> when above 0; the
    cache key names the effort's search, so a level whose search changes is measured again)."""
    ms = modelset.load(model)
    entry, enh = ms.entry, ms.enhancement
    key = entry.sha256 + (f":e{effort}:{refine.signature(effort)}" if effort else "")

    def run(crops, q, desc):
        files = sface.encode_crops(crops, layers="full", quality=q, model=entry.name, descriptors=desc, effort=effort)
        images = np.stack([d.image for d in sface.decode_many(files)])
        return CodedBatch(np.array([len(f) for f in files]), np.array([payload_bytes(f) for f in files]), images), None

    name, label = (entry.name, f"sface full ({entry.name}, {enh.mode})") if not effort else (
        f"{entry.name}-e{effort}", f"sface full ({entry.name}, {enh.mode}, effort {effort})")
    return Contender(name, label, tuple(range(1, enh.qualities + 1)), run, key)


def sface_base(model: str) -> Contender:
    entry = models.find(model)

    def run(crops, q, desc):
        files = sface.encode_crops(crops, layers="base", model=entry.name, descriptors=desc)
        images = np.stack([d.image for d in sface.decode_many(files, layer="base")])
        features = np.stack([sface.extract_features(f) for f in files])
        return CodedBatch(np.array([len(f) for f in files]), np.array([payload_bytes(f) for f in files]), images), features

    return Contender(f"{entry.name}-base", f"sface base layer ({entry.name})", ("base",), run, models.base_of(entry).sha256)


def single_layer(model: str) -> Contender:
    ms = modelset.load(model)
    entry, enh = ms.entry, ms.enhancement

    def run(crops, q, desc):
        payloads = enh.compress(crops, None, q)
        images = enh.decompress(payloads, [q] * len(payloads), np.zeros_like(crops))
        sizes = np.array([len(p) for p in payloads])
        return CodedBatch(sizes + SFC_FRAMING, sizes, images), None

    return Contender(entry.name, f"single-layer learned ({entry.name})", tuple(range(1, enh.qualities + 1)), run, entry.sha256)


def conventional() -> list[Contender]:
    return [Contender(c.name, c.label, tuple(c.qualities), lambda crops, q, desc, c=c: (c.run(crops, q), None), c.describe(),
                      c.unavailable()) for c in CODECS]


def subset(pairs: Pairs, limit: int) -> tuple[Pairs, np.ndarray]:
    """(pairs re-indexed to a subset of images, the subset's indexes into pairs.images): the first k
    same and first k different pairs of every fold, with k as large as keeps about `limit` images."""
    if not limit or limit >= len(pairs.images):
        return pairs, np.arange(len(pairs.images))
    rank = np.zeros(len(pairs.same), int)
    for f in range(int(pairs.fold.max()) + 1):
        for s in (True, False):
            sel = np.nonzero((pairs.fold == f) & (pairs.same == s))[0]
            rank[sel] = np.arange(len(sel))
    k = 1
    while k < rank.max() + 1:
        chosen = rank < k + 1
        if len(np.unique(np.concatenate([pairs.left[chosen], pairs.right[chosen]]))) > limit:
            break
        k += 1
    chosen = rank < k
    images = np.unique(np.concatenate([pairs.left[chosen], pairs.right[chosen]]))
    remap = {int(old): new for new, old in enumerate(images)}
    sub = Pairs([pairs.images[i] for i in images], np.array([remap[int(i)] for i in pairs.left[chosen]]),
                np.array([remap[int(i)] for i in pairs.right[chosen]]), pairs.same[chosen], pairs.fold[chosen])
    return sub, images


def measure(c: Contender, q, crops: np.ndarray, desc: np.ndarray, cache: Path, key: str, recognise: bool = True) -> dict:
    """Per-image arrays for one (codec, quality) point, from the cache or by running the codec;
    `recognise` adds the recognizer's descriptors of the decoded crops (for accuracy)."""
    from ..recognizer import describe

    path = cache / c.name / f"{q}.npz"
    if path.exists():
        data = dict(np.load(path))
        if str(data.get("key")) == key:
            return data
    cols: dict[str, list] = {}
    seconds = 0.0
    for i in tqdm(range(0, len(crops), CHUNK), desc=f"{c.name} q={q}", leave=False):
        chunk = np.asarray(crops[i : i + CHUNK])
        t = time.perf_counter()
        coded, features = c.run(chunk, q, desc[i : i + CHUNK])
        seconds += time.perf_counter() - t
        psnr, msssim = psnr_msssim(chunk, coded.images)
        for k, v in (("file_bytes", coded.file_bytes), ("payload_bytes", coded.payload_bytes), ("psnr", psnr),
                     ("msssim", msssim), ("descriptors", describe(coded.images) if recognise else None),
                     ("features", features if recognise else None)):
            if v is not None:
                cols.setdefault(k, []).append(np.asarray(v))
    data = {k: np.concatenate(v) for k, v in cols.items()} | {"key": np.array(key), "seconds_per_image": np.array(seconds / len(crops))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.npz")
    np.savez(tmp, **data)
    tmp.rename(path)
    return data


def summarise(c: Contender, points: list[tuple], pairs: Optional[Pairs], images: int) -> dict:
    """CompressAI's eval JSON for one codec (one entry per quality), plus our fields; without pairs
    (the sharp set) the accuracy fields are left out."""
    res = {k: [] for k in ("quality", "bpp", "bpp-file", "psnr-rgb", "ms-ssim-rgb", "lfw-accuracy", "lfw-accuracy-std",
                           "lfw-accuracy-pixels", "payload-bytes", "file-bytes", "coding_time")}
    for q, d in points:
        # the base layer's accuracy is that of the descriptors in its identity layer (no pixels), as
        # extract-features reads them; every other point's is the recognizer's on the decoded crops
        res["quality"].append(q)
        res["bpp"].append(float(np.mean(bpp(d["payload_bytes"]))))
        res["bpp-file"].append(float(np.mean(bpp(d["file_bytes"]))))
        res["psnr-rgb"].append(float(np.mean(d["psnr"])))
        res["ms-ssim-rgb"].append(float(np.mean(d["msssim"])))
        if pairs is not None:
            pixels = verification_accuracy(pairs, d["descriptors"])
            acc = verification_accuracy(pairs, d["features"]) if "features" in d else pixels
            res["lfw-accuracy-pixels"].append(100 * pixels.mean)
            res["lfw-accuracy"].append(100 * acc.mean)
            res["lfw-accuracy-std"].append(100 * acc.std)
        res["payload-bytes"].append(float(np.mean(d["payload_bytes"])))
        res["file-bytes"].append(float(np.mean(d["file_bytes"])))
        res["coding_time"].append(float(d["seconds_per_image"]))
    if pairs is None:
        res = {k: v for k, v in res.items() if not k.startswith("lfw-")}
    return {"name": c.name, "description": c.label, "settings": c.key,
            "images": images, "pairs": len(pairs.same) if pairs is not None else 0, "ms-ssim-window": 7,
            "notes": "bpp = payload bits per pixel (coded data without container headers); bpp-file = whole "
                     "file; lfw-accuracy = from the identity layer's descriptors for the base layer, else "
                     "the recognizer on the decoded crops (lfw-accuracy-pixels); coding_time = seconds per "
                     "image to encode and decode, in batches", "results": res}


def bd_table(summaries: dict, ours: str, baselines: list[str], sharp: Optional[dict] = None) -> list[dict]:
    """BD-rates of `ours` against each baseline on LFW and, where measured, on the sharp set."""
    rows = []
    s = summaries[ours]["results"]
    for name in baselines:
        b = summaries[name]["results"]
        row = {
            "anchor": name, "label": summaries[name]["description"],
            "bd_rate_psnr": bd_rate(b["bpp"], b["psnr-rgb"], s["bpp"], s["psnr-rgb"]),
            "bd_rate_accuracy": bd_rate(b["bpp"], b["lfw-accuracy"], s["bpp"], s["lfw-accuracy"], method="pchip"),
            "bd_rate_psnr_file": bd_rate(b["bpp-file"], b["psnr-rgb"], s["bpp-file"], s["psnr-rgb"]),
        }
        if sharp and ours in sharp and name in sharp:
            ss, sb = sharp[ours]["results"], sharp[name]["results"]
            row["sharp_bd_rate_psnr"] = bd_rate(sb["bpp"], sb["psnr-rgb"], ss["bpp"], ss["psnr-rgb"])
            row["sharp_bd_rate_psnr_file"] = bd_rate(sb["bpp-file"], sb["psnr-rgb"], ss["bpp-file"], ss["psnr-rgb"])
        rows.append(row)
    return rows


def points_table(summaries: dict) -> str:
    """Every measured point, one Markdown table row each (accuracy "-" on a set without pairs)."""
    rows = ["| codec | quality | bpp (payload) | bpp (file) | PSNR-RGB dB | MS-SSIM (win 7) | LFW accuracy % | s/image |",
            "|---|---|---|---|---|---|---|---|"]
    for s in summaries.values():
        r = s["results"]
        for i, q in enumerate(r["quality"]):
            acc = f"{r['lfw-accuracy'][i]:.2f} +- {r['lfw-accuracy-std'][i]:.2f}" if "lfw-accuracy" in r else "-"
            rows.append(f"| {s['description']} | {q} | {r['bpp'][i]:.3f} | {r['bpp-file'][i]:.3f} | {r['psnr-rgb'][i]:.2f} | "
                        f"{r['ms-ssim-rgb'][i]:.4f} | {acc} | {r['coding_time'][i]:.4f} |")
    return "\n".join(rows) + "\n"


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def plot(summaries: dict, reference_accuracy: Optional[float], out: Path, set_name: str = "LFW", suffix: str = "") -> None:
    """rate_psnr<suffix>.png and, with a reference accuracy, rate_accuracy<suffix>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = [("psnr-rgb", "PSNR-RGB (dB)", f"rate_psnr{suffix}.png")]
    if reference_accuracy is not None:
        figures.append(("lfw-accuracy", "LFW verification accuracy (%)", f"rate_accuracy{suffix}.png"))
    for metric, ylabel, fname in figures:
        fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
        for name, s in summaries.items():
            r = s["results"]
            style = "-o" if name.startswith("sface") else ("--s" if "single" in name else "-.")
            ax.plot(r["bpp"], r[metric], style, label=s["description"], markersize=4,
                    linewidth=2.2 if name.startswith("sface") else 1.2)
        if metric == "lfw-accuracy":
            ax.axhline(reference_accuracy, color="grey", linestyle=":", label=f"uncompressed crops ({reference_accuracy:.2f}%)")
            ax.set_ylim(max(50, min(min(s["results"][metric]) for s in summaries.values()) - 1), 100)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (payload), log scale")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{set_name} 128x128 aligned crops: {ylabel.split(' (')[0]} vs rate")
        ax.legend(fontsize=7.5, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / fname)
        plt.close(fig)


def _write_summaries(summaries: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, summary in summaries.items():
        (out / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")


def run(lfw: Path, out: Path, *, limit: int = 0, model: Optional[str] = None, baseline_model: str = "single-layer-v1",
        only: Optional[list[str]] = None, extra_models: tuple = (), sharp: Optional[Path] = None, sharp_limit: int = SHARP_FACES,
        effort: Optional[int] = None, log=print) -> dict:
    pairs = read_pairs(lfw)
    crops_all, _ = aligned_crops("lfw", pairs.images)
    ref_all = reference_descriptors("lfw", crops_all)
    pairs, images = subset(pairs, limit)
    crops = np.asarray(crops_all[images]) if len(images) < len(crops_all) else crops_all
    ref = ref_all[images]
    encoder_desc = ref.mean(axis=1)  # flip-averaged: what sface's encoder codes (layers.base.BaseLayer.describe)
    reference = verification_accuracy(pairs, ref[:, 0])
    image_key = list_key(pairs.images)
    log(f"{len(pairs.images)} images, {len(pairs.same)} pairs; reference accuracy {reference}")
    # one cache folder per set of images, so that runs on different subsets do not evict each other's points
    sets = [("lfw", crops, encoder_desc, image_key, cache_dir() / "bench" / image_key)]
    if sharp is not None:
        files = sharp_files(sharp, sharp_limit)
        name = sharp_set_name(sharp, files)
        sharp_crops, _ = aligned_crops(name, files)
        sharp_desc = reference_descriptors(name, sharp_crops).mean(axis=1)
        sharp_key = list_key(files)
        sets.append(("sharp", np.asarray(sharp_crops), sharp_desc, sharp_key, cache_dir() / "bench-sharp" / sharp_key))
        log(f"sharp set: {len(files)} faces from {sharp}")

    model = model or models.default_model().name
    main = sface_full(model, refine.level(effort))
    ours = main.name
    contenders = [main, sface_base(model)] + [sface_full(m) for m in extra_models]
    try:
        contenders.append(single_layer(baseline_model))
    except Exception as e:  # a missing baseline model is reported, not fatal
        log(f"skipped {baseline_model}: {e}")
    contenders += conventional()
    if only:
        contenders = [c for c in contenders if c.name in only]
    summaries: dict[str, dict] = {name: {} for name, *_ in sets}
    skipped = {}
    for c in contenders:
        if c.unavailable:
            skipped[c.name] = c.unavailable
            log(f"skipped {c.label}: {c.unavailable}")
            continue
        for set_name, set_crops, set_desc, set_key, set_cache in sets:
            lfw_set = set_name == "lfw"
            points = [(q, measure(c, q, set_crops, set_desc, set_cache, f"{set_key}:{c.key}", recognise=lfw_set))
                      for q in c.qualities]
            summaries[set_name][c.name] = summarise(c, points, pairs if lfw_set else None, len(set_crops))
            r = summaries[set_name][c.name]["results"]
            log(f"{c.label} ({set_name}): " + ", ".join(f"{b:.3f} bpp {p:.2f} dB" for b, p in zip(r["bpp"], r["psnr-rgb"])))

    lfw_sums, sharp_sums = summaries["lfw"], summaries.get("sharp")
    _write_summaries(lfw_sums, out)
    baselines = [n for n in lfw_sums if n not in (ours, f"{model}-base")]
    table = bd_table(lfw_sums, ours, baselines, sharp_sums) if ours in lfw_sums else []
    result = {"images": len(pairs.images), "pairs": len(pairs.same), "limit": limit,
              "sharp_images": len(sets[1][1]) if sharp is not None else 0,
              "sharp_folder": str(sharp) if sharp is not None else None,
              "reference_accuracy": {"mean": 100 * reference.mean, "std": 100 * reference.std},
              "bd_rate_of": ours, "bd_rate_method": {"psnr": "cubic (VCEG-M33)", "accuracy": "pchip"}, "bd_rate": table, "skipped": skipped}
    (out / "bd_rate.json").write_text(json.dumps(result, indent=1) + "\n")
    sharp_label = f", and {result['sharp_images']} sharper faces from {sharp.name} (never trained on)" if sharp is not None else ""
    lines = [f"BD-rate of {ours} (full layer) against each codec, {len(pairs.images)} LFW crops, {len(pairs.same)} pairs"
             f"{sharp_label} (negative = sface needs fewer bits for the same quality; PSNR: cubic fit, VCEG-M33; "
             f"accuracy: piecewise cubic, as accuracy saturates):", "",
             "| anchor | LFW: BD-rate (PSNR, payload) | LFW: BD-rate (PSNR, whole file) | LFW: BD-rate (accuracy, payload) "
             "| sharp: BD-rate (PSNR, payload) | sharp: BD-rate (PSNR, whole file) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {_pct(r['bd_rate_psnr'])} | {_pct(r['bd_rate_psnr_file'])} | {_pct(r['bd_rate_accuracy'])} "
              f"| {_pct(r.get('sharp_bd_rate_psnr'))} | {_pct(r.get('sharp_bd_rate_psnr_file'))} |" for r in table]
    lines += [f"| {name} | skipped: {why} | | | | |" for name, why in skipped.items()]
    (out / "bd_rate.md").write_text("\n".join(lines) + "\n")
    (out / "points.md").write_text(points_table(lfw_sums))
    if lfw_sums:
        plot(lfw_sums, 100 * reference.mean, out)
    if sharp_sums:
        _write_summaries(sharp_sums, out / "sharp")
        (out / "sharp" / "points.md").write_text(points_table(sharp_sums))
        plot(sharp_sums, None, out, set_name=f"Sharper faces ({sharp.name})", suffix="_sharp")
    log("\n".join(lines))
    return result
