"""A sampler that makes a stopped-and-resumed run see exactly the batches an uninterrupted run sees.

Lightning restores the optimiser, scheduler and its loop counters from a mid-epoch checkpoint, and knows
how many batches of the interrupted epoch are left, but it iterates the dataloader from its first batch
again.  This sampler yields ``(epoch, index)`` keys (the dataset derives each item's randomness from
them) and, after ``skip(n)``, starts the next epoch it iterates at index ``n``: the remaining batches are
then exactly the ones the interrupted run had not yet trained on.  Lightning calls ``set_epoch``.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length = int(length)
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip(self, n_items: int) -> None:
        """Start the next iteration at item ``n_items`` (items already trained on before a stop)."""
        if not 0 <= n_items <= self.length:
            raise ValueError(f"n_items must be in [0, {self.length}], got {n_items}")
        self._skip = int(n_items)

    def __len__(self) -> int:
        return self.length - self._skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self._skip = self._skip, 0
        epoch = self.epoch
        for index in range(start, self.length):
            yield (epoch, index)
