"""The training order as a function of (seed, epoch), so a run resumes mid-epoch exactly.

``DataLoader(shuffle=True)`` draws each epoch's order from the global RNG, which a resumed
process cannot reproduce: a run restarted in the middle of an epoch would see another order
from there on. Here epoch ``e``'s order is ``randperm(n)`` from a generator seeded with
``(seed, e)``, and a run resumed after ``start_step`` optimizer steps (one batch each, whole
batches only) starts epoch ``start_step // batches_per_epoch`` at its batch
``start_step % batches_per_epoch``: the same batches, in the same order, as the run that was
never stopped. Lightning tells the sampler its epoch through ``set_epoch`` (as it does for
``DistributedSampler``) before each epoch; nothing needs saving in the checkpoint, whose
step counter already says where the data stands.

torchdata's ``StatefulDataLoader`` solves the general case (workers, iterable datasets) by
saving the loader's state in the checkpoint; this in-memory dataset needs only the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1`` in epoch ``e``'s seeded order, from ``start_step``'s batch on in the
    epoch the run resumes in. Yields whole batches only (``n // batch_size`` per epoch), like
    ``drop_last=True``."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0) -> None:
        if n < batch_size:
            raise ValueError(f"EpochSampler needs at least one whole batch: {n} items, batch size {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self.resume_epoch, self.resume_batch = divmod(start_step, self.per_epoch)
        self.epoch = self.resume_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s whole order (its first ``per_epoch * batch_size`` items are used)."""
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        return torch.randperm(self.n, generator=g)

    def _skip(self) -> int:
        return self.resume_batch * self.batch_size if self.epoch == self.resume_epoch else 0

    def __iter__(self) -> Iterator[int]:
        yield from self.order(self.epoch)[self._skip(): self.per_epoch * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.per_epoch * self.batch_size - self._skip()
