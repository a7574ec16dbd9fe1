"""Many files through one function, in one process or a pool of forked workers.

A failure is recorded by file and the others go on. On Ctrl-C or SIGTERM the workers are stopped and
the temporary files of writes in flight are removed, so no partial output is left (files.write_bytes
writes `.<name>.*.part` beside its target and renames it when complete).
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import SfaceError, Terminated

Job = tuple[str, str]  # (input, output)
Outcome = tuple[str, str, Optional[str]]  # (input, output, error message or None)

_work: Optional[Callable[[str, str], None]] = None  # set before forking: closures do not pickle


def _run_one(job: Job) -> Outcome:
    src, dst = job
    try:
        if dst != "-":
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
        _work(src, dst)
        return src, dst, None
    except SfaceError as e:
        return src, dst, str(e)
    except OSError as e:
        return src, dst, f"{e.strerror or e}"


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler would outlive pool.terminate()
    # One compute thread per worker: N workers of N threads each would fight over the cores.
    # torch reads this when it is first imported, which happens in the worker.
    os.environ["OMP_NUM_THREADS"] = "1"


def _remove_partials(jobs: list[Job]) -> None:
    for _, dst in jobs:
        if dst != "-":
            # NAME.sfc's own temporaries, and NAME-1.sfc's, NAME-2.sfc's ... of `encode --all`
            for tmp in Path(dst).parent.glob(f".{Path(dst).stem}*{Path(dst).suffix}.*.part"):
                tmp.unlink(missing_ok=True)


def run(jobs: list[Job], work: Callable[[str, str], None], workers: int = 1) -> Iterator[Outcome]:
    """Yield one outcome per job (in completion order when workers > 1)."""
    global _work
    _work = work
    if workers <= 1 or len(jobs) <= 1:
        try:
            for job in jobs:
                yield _run_one(job)
        except (KeyboardInterrupt, Terminated):
            _remove_partials(jobs)
            raise
        return
    pool = get_context("fork").Pool(workers, initializer=_worker_init)
    try:
        yield from pool.imap_unordered(_run_one, jobs)
        pool.close()
    except (KeyboardInterrupt, Terminated):
        pool.terminate()
        pool.join()
        _remove_partials(jobs)
        raise
    finally:
        pool.terminate()
        sys.stderr.flush()
