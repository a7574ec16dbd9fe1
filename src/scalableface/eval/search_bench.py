"""Gallery search at scale (a benchmark, not a test).

    python -m scalableface.eval.search_bench open-set [--data ../shared/data/lfw] [--synthetic 1000000]
    python -m scalableface.eval.search_bench speed [--entries 1000000] [--files 100000]

open-set: open-set identification on LFW (the 7,701 View-2 images). Gallery: the first image of every
person with two or more; known probes: their other images (rank-1: the nearest entry is the right
person); unknown probes: the images of people with one image (false accept: the nearest entry is
nearer than the threshold). Also the threshold that accepts 1% of the unknown probes and the share of
known probes identified (rank 1 and nearer than it) there: a verification threshold is far too loose
for 1:N search. Descriptors: the flip-averaged reference descriptors as the encoder codes
them, through each base rate point's identity codec (quantise, decode: what an .sfc file's identity
layer gives), and uncompressed. Distractors added to the gallery: none; the 16,000 UTKFace faces
(the same way); and synthetic faces: identity symbols drawn from the rate point's own entropy tables,
each dimension independently, decoded by its synthesis MLP (for the uncompressed column: rate point
4's). Thresholds: the model's for decoded descriptors, dlib's 0.6 for uncompressed ones.

speed: index build from --build synthetic identity-only .sfc files (rate point 3) held in memory and
from --files of them on disk (identity decoding included; the cost per face does not depend on the
count), with its parts timed alone (container parsing, entropy decoding one payload at a time and
vectorised, the synthesis MLP); then a gallery of --entries synthetic faces: exact and approximate (IVF) search, batched
(1,000 queries at once) and one query at a time (--single of them), the index's memory, and recall@1 / @10 of the
approximate index against exact search at several nprobe values, for random queries (faces drawn
like the gallery's: the hardest case) and for queries near an entry (a gallery face plus noise,
about 0.23 away: a probe of someone enrolled). Times are given as CPU seconds of this process
(the cost on one core, as other jobs share the machine) and wall seconds.
Run with OMP_NUM_THREADS=1 to measure one core (FAISS follows it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import codec, container
from ..facesets import aligned_crops, reference_descriptors
from ..gallery import Gallery, NPROBE
from ..paths import cache_dir, data_dir
from .lfw import read_pairs

DLIB_THRESHOLD = 0.6  # dlib's convention for two uncompressed descriptors
CHUNK = 100_000  # descriptors decoded per MLP pass


def synthetic(identity, n: int, seed: int) -> np.ndarray:
    """n decoded descriptors of symbols drawn from the codec's entropy tables."""
    rng = np.random.default_rng(seed)
    return np.concatenate([identity.reconstruct(identity.sample_symbols(min(CHUNK, n - i), rng)) for i in range(0, n, CHUNK)])


def _faiss():
    import faiss

    return faiss


def nearest(gallery: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) of each query's nearest gallery entry, exact."""
    index = _faiss().IndexFlatL2(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery, np.float32))
    d, i = index.search(np.ascontiguousarray(queries, np.float32), 1)
    return i[:, 0], np.sqrt(np.maximum(d[:, 0], 0))


def open_set(lfw: Path, n_synthetic: int, only: list[str] | None = None, probes: int = 0) -> dict:
    pairs = read_pairs(lfw)
    crops, _ = aligned_crops("lfw", pairs.images)
    lfw_desc = reference_descriptors("lfw", crops).mean(axis=1)
    utk_file = cache_dir() / "utk_desc.npy"
    utk_desc = np.load(utk_file).mean(axis=1) if utk_file.exists() else None
    people = [p.parent.name for p in pairs.images]
    count: dict[str, int] = {}
    for name in people:
        count[name] = count.get(name, 0) + 1
    first: dict[str, int] = {}
    for i, name in enumerate(people):
        if count[name] >= 2:
            first.setdefault(name, i)
    gallery_idx = np.array(sorted(first.values()))
    gallery_people = [people[i] for i in gallery_idx]
    known = np.array([i for i, n in enumerate(people) if count[n] >= 2 and first[n] != i])
    unknown = np.array([i for i, n in enumerate(people) if count[n] == 1])
    if probes:  # a seeded random subset of each kind, to bound the time of a million distractors
        rng = np.random.default_rng(0)
        known, unknown = (np.sort(rng.choice(a, min(probes, len(a)), replace=False)) for a in (known, unknown))
    threshold = codec.model_threshold()
    rates = codec.base_rates()
    columns = {f"rate {r}": r for r in rates} | {"uncompressed": None}
    if only:
        columns = {c: r for c, r in columns.items() if (str(r) if r is not None else "uncompressed") in only}
    out = {"gallery": len(gallery_idx), "known_probes": len(known), "unknown_probes": len(unknown), "results": {}}
    synthetic_cache: dict[int, np.ndarray] = {}
    for column, rate in columns.items():
        identity = codec.identity_codec(rate if rate is not None else max(rates))
        code = (lambda d: identity.reconstruct(identity.quantize(d))) if rate is not None else (lambda d: d)
        t = threshold if rate is not None else DLIB_THRESHOLD
        desc = code(lfw_desc)
        sets = {"none": np.zeros((0, desc.shape[1]), np.float32)}
        if utk_desc is not None:
            sets["utkface"] = code(utk_desc)
        if n_synthetic:
            key = rate if rate is not None else max(rates)
            if key not in synthetic_cache:
                synthetic_cache[key] = synthetic(identity, n_synthetic, seed=key)
            sets["synthetic"] = synthetic_cache[key]
        g_ref, g_dist = nearest(desc[gallery_idx], desc[np.concatenate([known, unknown])])
        res = {"threshold": t}
        for name, distractors in sets.items():
            gi, gd = g_ref, g_dist
            if len(distractors):
                _, dd = nearest(distractors, desc[np.concatenate([known, unknown])])
                gi = np.where(dd < gd, -1, gi)  # -1: a distractor is nearest
                gd = np.minimum(dd, gd)
            k, u = len(known), len(unknown)
            right = np.array([gi[j] >= 0 and gallery_people[gi[j]] == people[known[j]] for j in range(k)])
            strict = float(np.quantile(gd[k:], 0.01))  # accepts 1% of the unknown probes
            res[name] = {"distractors": len(distractors), "rank1": float(right.mean()),
                         "identified_at_threshold": float((right & (gd[:k] < t)).mean()),
                         "false_accept_rate": float((gd[k:] < t).mean()), "unknown_probes": u,
                         "threshold_at_far_1pct": strict, "identified_at_far_1pct": float((right & (gd[:k] < strict)).mean())}
        out["results"][column] = res
        print(json.dumps({column: res}), flush=True)
    return out


def _timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process): on a shared machine the CPU time is the
    cost on one core (with OMP_NUM_THREADS=1 nothing here runs in parallel)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def _rate(n: int, wall: float, cpu: float, what: str) -> dict:
    return {f"{what}_per_s_wall": round(n / wall), f"{what}_per_s_cpu": round(n / cpu), "wall_seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2)}


def _query_rates(g: Gallery, queries: np.ndarray, single: int) -> tuple[dict, list]:
    """(queries/s batched and one at a time, the batched results)."""
    found, wall, cpu = _timed(g.search_descriptors, queries, 10)
    batched = _rate(len(queries), wall, cpu, "queries")
    _, wall, cpu = _timed(lambda: [g.search_descriptors(q[None], 10) for q in queries[:single]])
    one = _rate(single, wall, cpu, "queries")
    return {"batched_queries_per_s_cpu": batched["queries_per_s_cpu"], "batched_queries_per_s_wall": batched["queries_per_s_wall"],
            "single_queries_per_s_cpu": one["queries_per_s_cpu"], "single_queries_per_s_wall": one["queries_per_s_wall"]}, found


def _ids(found: list) -> list[list[int]]:
    return [[int(m.file[4:]) for m in ms] for ms in found]


def build_speed(n_memory: int, n_files: int) -> dict:
    """Index build from .sfc files (rate point 3, identity layers only): held in memory, and on disk."""
    identity = codec.identity_codec(3)
    files = codec.identity_files(identity.sample_symbols(n_memory, np.random.default_rng(1)), base_rate=3)
    names = [f"face{i}.sfc" for i in range(n_memory)]
    Gallery.build(files[:10], names=names[:10])  # model loading is not part of the rate
    out = {"mean_file_bytes": float(np.mean([len(f) for f in files]))}
    payloads = [container.parse(f).layer(container.LayerType.IDENTITY).payload for f in files]
    sample = payloads[:20_000]
    _, wall, cpu = _timed(lambda: [identity.decode_symbols(p) for p in sample])
    out["entropy_decoding_one_by_one"] = _rate(len(sample), wall, cpu, "payloads")
    _, wall, cpu = _timed(identity.decode_symbols_many, payloads)
    out["entropy_decoding_vectorised"] = _rate(len(payloads), wall, cpu, "payloads")
    _, wall, cpu = _timed(lambda: [container.parse(f) for f in files])
    out["container_parsing"] = _rate(len(files), wall, cpu, "files")
    symbols, _ = identity.decode_symbols_many(payloads)
    _, wall, cpu = _timed(identity.reconstruct, symbols)
    out["synthesis_mlp"] = _rate(len(files), wall, cpu, "faces")
    _, wall, cpu = _timed(lambda: Gallery.build(files, names=names, approximate=False))
    out["from_memory"] = {"files": n_memory} | _rate(n_memory, wall, cpu, "faces")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        paths = []
        for i, f in enumerate(files[:n_files]):
            if i % 1000 == 0:
                os.mkdir(f"{tmp}/{i // 1000}")
            paths.append(f"{tmp}/{i // 1000}/{i}.sfc")
            Path(paths[-1]).write_bytes(f)
        _, wall, cpu = _timed(lambda: Gallery.build(paths, approximate=False))
        out["from_files"] = {"files": n_files, "page_cache": "warm (just written)"} | _rate(n_files, wall, cpu, "faces")
    return out


def search_speed(entries: int, n_queries: int = 1000, single: int = 50, nprobes=(16, 32, 64)) -> dict:
    """Exact and approximate search over `entries` synthetic faces (rate point 3)."""
    identity = codec.identity_codec(3)
    names = [f"face{i}" for i in range(entries)]
    vectors = synthetic(identity, entries, seed=1)
    queries = synthetic(identity, n_queries, seed=99)  # random faces: the hardest case for an IVF index
    near = vectors[:n_queries] + np.random.default_rng(5).normal(0, 0.02, (n_queries, 128)).astype(np.float32)  # ~0.23 away
    out: dict = {"entries": entries, "queries": n_queries, "single_queries": single}
    exact = Gallery.empty()
    _, wall, cpu = _timed(exact.add_descriptors, vectors, names, [None] * entries, False)
    rates, found = _query_rates(exact, queries, single)
    out["exact"] = {"build_cpu_seconds": round(cpu, 2), "index_bytes": exact.index.ntotal * exact.index.d * 4} | rates
    truth = {"random": _ids(found), "near": _ids(exact.search_descriptors(near, 10))}
    del exact
    approx = Gallery.empty()
    _, wall, cpu = _timed(approx.add_descriptors, vectors, names, [None] * entries, True)
    out["approximate"] = {"build_cpu_seconds": round(cpu, 2), "build_wall_seconds": round(wall, 2),
                          "lists": int(approx.index.nlist), "index_bytes": len(_faiss().serialize_index(approx.index)),
                          "default_nprobe": NPROBE, "by_nprobe": {}}
    for nprobe in nprobes:
        approx.nprobe = nprobe
        row, found = _query_rates(approx, queries, single)
        for name, got in (("random", _ids(found)), ("near", _ids(approx.search_descriptors(near, 10)))):
            row[f"recall@1_{name}"] = float(np.mean([f[0] == t[0] for f, t in zip(got, truth[name])]))
            row[f"recall@10_{name}"] = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(got, truth[name])]))
        out["approximate"]["by_nprobe"][nprobe] = row
        print(json.dumps({"nprobe": nprobe} | row), flush=True)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", default=None, help="also write the results as JSON here")
    sub = ap.add_subparsers(dest="what", required=True)
    o = sub.add_parser("open-set", parents=[common])
    o.add_argument("--data", type=Path, default=None, help="LFW folder with pairs.txt (default: ../shared/data/lfw)")
    o.add_argument("--synthetic", type=int, default=1_000_000, help="synthetic distractors (0: none)")
    o.add_argument("--probes", type=int, default=0, help="use a random N known and N unknown probes (0: all)")
    o.add_argument("--columns", default=None, help="comma-separated rate points and/or 'uncompressed' (default: all), "
                                                  "to split a long run")
    s = sub.add_parser("speed", parents=[common])
    s.add_argument("--entries", type=int, default=1_000_000, help="gallery size for the search figures (0: skip them)")
    s.add_argument("--build", type=int, default=200_000, help=".sfc files (in memory) for the build figure (0: skip it)")
    s.add_argument("--queries", type=int, default=1000, help="queries for the batched and recall figures")
    s.add_argument("--files", type=int, default=100_000, help="of them, written to disk for the from-files build")
    args = ap.parse_args(argv)
    if args.what == "open-set":
        res = open_set(args.data or data_dir() / "lfw", args.synthetic, args.columns.split(",") if args.columns else None,
                       args.probes)
    else:
        res = {"omp_threads": os.environ.get("OMP_NUM_THREADS", "unset")}
        if args.build:
            res["build"] = build_speed(args.build, min(args.files, args.build))
            print(json.dumps(res), flush=True)
        if args.entries:
            res["search"] = search_speed(args.entries, args.queries)
    text = json.dumps(res, indent=1)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
