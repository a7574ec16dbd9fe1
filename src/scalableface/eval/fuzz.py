"""A long fuzz run over the container parser and the decoders (a command, not a test).

    python -m scalableface.eval.fuzz --cases 100000 [--seed 0]

Each case mutates a real .sfc file of the bundled example (bit flips, byte overwrites, cuts,
insertions, random layer payloads with their CRCs fixed so that the decoders, not only the CRCs, see
the damage) and runs extract_features and decode on it. A case passes when it returns a result or
raises the project's own error with a message; anything else, or a case slower than --max-seconds,
is a failure and is printed with its seed. The tally is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from .. import codec, container
from ..errors import SfaceError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "astronaut.jpg"


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
    else:  # well-framed layers with random payloads: reaches the entropy decoders and networks
        f = container.parse(data)
        layers = [(l.type, rng.randbytes(rng.randint(0, 2 * len(l.payload) + 2))) for l in f.layers]
        layers = layers[: rng.randint(1, len(layers))]
        return container.pack(f.header, layers)
    return bytes(d)


def run_case(data: bytes) -> str:
    try:
        codec.extract_features(data)
        codec.decode(data, layer="base")
        return "decoded"
    except SfaceError as e:
        if not str(e):
            raise AssertionError("an error without a message") from e
        return "refused"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=2.0, help="a case slower than this counts as a hang")
    args = ap.parse_args(argv)
    sample = codec.encode(str(EXAMPLE))
    codec.decode(sample, layer="base")  # model loading is not part of any case
    tally = {"decoded": 0, "refused": 0, "failed": 0}
    slowest = 0.0
    t0 = time.time()
    for case in range(args.cases):
        rng = random.Random(args.seed * 1_000_003 + case)
        data = mutate(rng, sample)
        t = time.perf_counter()
        try:
            outcome = run_case(data)
        except Exception as e:  # the finding this command exists for
            outcome = "failed"
            print(f"case {case} (seed {args.seed}): {type(e).__name__}: {e}", flush=True)
        elapsed = time.perf_counter() - t
        slowest = max(slowest, elapsed)
        if elapsed > args.max_seconds:
            outcome = "failed"
            print(f"case {case} (seed {args.seed}): took {elapsed:.2f} s", flush=True)
        tally[outcome] += 1
    print(json.dumps({"cases": args.cases, **tally, "slowest_case_s": round(slowest, 4),
                      "seconds": round(time.time() - t0, 1)}))
    raise SystemExit(1 if tally["failed"] else 0)


if __name__ == "__main__":
    main()
