"""Decoder networks whose pixels do not depend on the batch or the thread count.

Float32 kernels choose their blocking, and with it the order of their sums and their rounding, from
the batch size and the number of threads; that moved decoded pixels by a grey level. Running the
decoder networks one face at a time on one intra-op thread makes a face's pixels a function of its
file alone on a given machine (same library, same CPU): the same in any batch, at any thread
setting, in any process. Across machines only the decoded symbols are guaranteed.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch


def per_face(network: Callable[..., torch.Tensor], *batches: Optional[torch.Tensor]) -> torch.Tensor:
    """network(*batches) computed one face at a time on one thread, concatenated; None passes as None."""
    n = next(len(b) for b in batches if b is not None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            return torch.cat([network(*(None if b is None else b[i : i + 1] for b in batches)) for i in range(n)])
    finally:
        torch.set_num_threads(threads)
