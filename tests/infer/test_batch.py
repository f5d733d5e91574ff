"""Read-ahead of a batch: order, overlap, and errors delivered with their item."""

from __future__ import annotations

import threading
import time

import pytest

from lungcad.infer.batch import prefetch


def test_order_and_values() -> None:
    got = [(p.item, p.get()) for p in prefetch([3, 1, 2], lambda x: x * 10)]
    assert got == [(3, 30), (1, 10), (2, 20)]
    assert [p.get() for p in prefetch([5], lambda x: -x)] == [-5]
    assert list(prefetch([], lambda x: x)) == []


def test_next_item_is_read_while_the_current_one_is_worked_on() -> None:
    started: dict[int, float] = {}

    def read(x: int) -> int:
        started[x] = time.perf_counter()
        return x

    it = prefetch([0, 1, 2], read)
    first = next(it)
    time.sleep(0.2)  # the consumer "works" on item 0 ...
    assert first.get() == 0 and 1 in started  # ... while item 1 has already been read
    assert 2 not in started  # only one item ahead
    assert [p.get() for p in it] == [1, 2]


def test_a_failed_read_comes_back_with_its_item_and_the_batch_goes_on() -> None:
    def read(x: int) -> int:
        if x == 1:
            raise ValueError(f"unreadable scan {x}")
        return x

    items = list(prefetch([0, 1, 2], read))
    assert items[0].get() == 0 and items[2].get() == 2
    with pytest.raises(ValueError, match="unreadable scan 1"):
        items[1].get()


def test_reads_run_in_another_thread() -> None:
    threads = [p.get() for p in prefetch([0, 1], lambda _: threading.current_thread().name)]
    assert all(t.startswith("lungcad-prefetch") for t in threads)
    assert [p.get() for p in prefetch([0], lambda _: threading.current_thread().name, ahead=True)] == [
        threading.current_thread().name
    ]
