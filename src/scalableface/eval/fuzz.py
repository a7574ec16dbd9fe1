"""A long fuzz run over the container parser and the decoders of all three layers (a command, not a test).

    python -m scalableface.eval.fuzz --cases 100000 [--seed 0] [--input PHOTO] [--state FILE]

Each case mutates a real .sfc file of a photo (default: the bundled example) with all three layers
(bit flips, byte overwrites, cuts, insertions, random layer payloads with their CRCs fixed so that the
decoders, not only the CRCs, see the damage) and runs extract_features, the base-layer decode and the
full decode on it. A case passes when each returns a result or raises the project's own error with a
message; anything else, or a case slower than --max-seconds, is a failure and is printed with its
number. Case k depends only on the seed and k, so a long run can be cut into chunks: with --state,
the tally is saved every --every cases and a rerun of the same command resumes after the last saved
case (a million cases is about 13 CPU-hours at the 21 cases/s measured on one core: run it in the
background, in chunks). The tally is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from tqdm import tqdm

from .. import codec, container
from ..errors import SfaceError
from ..files import write_bytes
from ..paths import example_photo


def mutate(rng: random.Random, data: bytes) -> bytes:
    d = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(d))
            d[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # byte overwrites
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(len(d))] = rng.randrange(256)
    elif kind == 2:  # cut
        del d[rng.randrange(len(d)) :]
    elif kind == 3:  # insertion
        i = rng.randrange(len(d) + 1)
        d[i:i] = rng.randbytes(rng.randint(1, 16))
    else:  # well-framed layers, some with random payloads: reaches the entropy decoders and networks
        f = container.parse(data)
        layers = [(l.type, l.payload if rng.random() < 0.5 else rng.randbytes(rng.randint(0, 2 * len(l.payload) + 2)))
                  for l in f.layers]
        layers = layers[: rng.randint(1, len(layers))]
        return container.pack(f.header, layers)
    return bytes(d)


def run_case(data: bytes) -> str:
    """"decoded" (the full decode gave a face), "base" (only the lower layers decoded) or "refused"."""
    outcome = "refused"
    try:
        codec.extract_features(data)
        codec.decode(data, layer="base")
        outcome = "base"
        codec.decode(data, layer="full")
        return "decoded"
    except SfaceError as e:
        if not str(e):
            raise AssertionError("an error without a message") from e
        return outcome


def _tally(state: Path | None, seed: int) -> dict:
    if state and state.is_file():
        saved = json.loads(state.read_text())
        if saved.get("seed") != seed:
            raise SystemExit(f"{state} holds a run with seed {saved.get('seed')}, not {seed}")
        return saved
    return {"seed": seed, "next_case": 0, "decoded": 0, "base": 0, "refused": 0, "failed": 0, "failures": [],
            "slowest_case_s": 0.0, "seconds": 0.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000, help="cases in all (a resumed run stops there too)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--input", type=Path, default=None, help="photo to encode and mutate (default: the bundled example)")
    ap.add_argument("--state", type=Path, default=None, help="JSON file to save the tally in and resume from")
    ap.add_argument("--every", type=int, default=1000, help="save the state every this many cases")
    ap.add_argument("--max-seconds", type=float, default=2.0, help="a case slower than this counts as a hang")
    args = ap.parse_args(argv)
    try:
        sample = codec.encode(str(args.input or example_photo()))
    except SfaceError as e:
        raise SystemExit(f"error: {e}") from None
    codec.decode(sample)  # model loading is not part of any case
    tally = _tally(args.state, args.seed)
    start = tally["next_case"]
    t0 = time.time() - tally["seconds"]

    def save():
        tally["seconds"] = round(time.time() - t0, 1)
        if args.state:
            write_bytes(str(args.state), json.dumps(tally).encode(), force=True)

    for case in tqdm(range(start, args.cases), initial=start, total=args.cases, desc="fuzz", mininterval=5):
        rng = random.Random(args.seed * 1_000_003 + case)
        data = mutate(rng, sample)
        t = time.perf_counter()
        try:
            outcome = run_case(data)
        except Exception as e:  # the finding this command exists for
            outcome = "failed"
            tally["failures"].append(f"case {case}: {type(e).__name__}: {e}")
            tqdm.write(f"case {case} (seed {args.seed}): {type(e).__name__}: {e}")
        elapsed = time.perf_counter() - t
        tally["slowest_case_s"] = round(max(tally["slowest_case_s"], elapsed), 4)
        if elapsed > args.max_seconds:
            outcome = "failed"
            tally["failures"].append(f"case {case}: took {elapsed:.2f} s")
            tqdm.write(f"case {case} (seed {args.seed}): took {elapsed:.2f} s")
        tally[outcome] += 1
        tally["next_case"] = case + 1
        if (case + 1) % args.every == 0:
            save()
    save()
    cases = tally["next_case"]
    print(json.dumps({"cases": cases, **{k: tally[k] for k in ("decoded", "base", "refused", "failed", "slowest_case_s", "seconds")},
                      "cases_per_s": round(cases / max(tally["seconds"], 1e-9), 2)}))
    raise SystemExit(1 if tally["failed"] else 0)


if __name__ == "__main__":
    main()
