"""A sampler that makes a stopped-and-resumed run see exactly the batches an uninterrupted run sees.

Lightning restores the optimiser, scheduler and its loop counters from a mid-epoch checkpoint, and knows
how many batches of the interrupted epoch are left, but it iterates the dataloader from its first batch
again.  This sampler yields ``(epoch, index)`` keys (the dataset derives each item's randomness from
them) and, after ``skip(n)``, starts the next epoch it iterates at its ``n``-th item: the remaining
batches are then exactly the ones the interrupted run had not yet trained on.  Lightning calls
``set_epoch``.

Under DDP each rank takes every ``world_size``-th index (``rank, rank + world, ...``), so the trainer is
run with ``use_distributed_sampler=False`` and the keys stay the same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank {rank} of {world_size}")
        self.indices = list(range(rank, int(length), world_size))
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip(self, n_items: int) -> None:
        """Start the next iteration at this rank's item ``n_items`` (items trained on before a stop)."""
        if not 0 <= n_items <= len(self.indices):
            raise ValueError(f"n_items must be in [0, {len(self.indices)}], got {n_items}")
        self._skip = int(n_items)

    def __len__(self) -> int:
        # The full length even when skipping: Lightning subtracts the batches it restored as completed
        # from the dataloader's length to know how many are left in the interrupted epoch.
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self._skip = self._skip, 0
        epoch = self.epoch
        for index in self.indices[start:]:
            yield (epoch, index)
