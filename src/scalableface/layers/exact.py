"""Decoder networks whose pixels do not depend on the batch or the thread count.

Float32 kernels choose their blocking, and with it the order of their sums and their rounding, from
the batch size and the number of threads; that moved decoded pixels by a grey level. Running the
decoder networks one face at a time on one intra-op thread makes a face's pixels a function of its
file alone on a given machine (same library, same CPU): the same in any batch, at any thread
setting, in any process. Across machines only the decoded symbols are guaranteed.

The cores are used by decoding several faces at once instead, one per Python thread (torch and
numpy release the GIL in their kernels), each face still computed on its one thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

import torch

T = TypeVar("T")


def map_faces(work: Callable[[int], T], n: int) -> list[T]:
    """[work(0), ..., work(n-1)], each call on one intra-op thread, up to torch's thread setting of
    them at a time; the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def one(i: int) -> T:
        with torch.inference_mode():  # thread-local, so entered in each worker
            return work(i)

    try:
        if threads < 2 or n < 2:
            return [one(i) for i in range(n)]
        with ThreadPoolExecutor(min(threads, n)) as pool:
            return list(pool.map(one, range(n)))
    finally:
        torch.set_num_threads(threads)


def per_face(network: Callable[..., torch.Tensor], *batches: Optional[torch.Tensor]) -> torch.Tensor:
    """network(*batches) computed one face at a time (map_faces), concatenated; None passes as None."""
    n = next(len(b) for b in batches if b is not None)
    return torch.cat(map_faces(lambda i: network(*(None if b is None else b[i : i + 1] for b in batches)), n))


def to_pixels(out: torch.Tensor):
    """N x H x W x 3 uint8 of a decoder network's output (N x 3 x H x W in [0, 1]; spec 7.5)."""
    return (out.permute(0, 2, 3, 1).numpy() * 255 + 0.5).clip(0, 255).astype("uint8")
