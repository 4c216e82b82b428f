"""core.concurrency.BatchLane: calls run in worker threads, in batches."""

from __future__ import annotations

import asyncio
import threading

import pytest

from onestack.core import concurrency
from onestack.core.concurrency import BatchLane


async def test_results_and_errors_come_back_to_their_callers() -> None:
    lane = BatchLane("t")
    main = threading.get_ident()

    def where(x: int) -> tuple[int, int]:
        return x * 2, threading.get_ident()

    def fails() -> None:
        raise OSError("EIO")

    results = await asyncio.gather(*(lane.submit(where, i) for i in range(50)))
    assert [r for r, _ in results] == [i * 2 for i in range(50)]
    assert main not in {t for _, t in results}  # never on the event loop's thread
    with pytest.raises(OSError, match="EIO"):
        await lane.submit(fails)
    assert (await lane.submit(where, x=3))[0] == 6


async def test_calls_queued_while_the_threads_work_run_as_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of the lane: twenty calls queued behind a busy thread are run on
    its next wake-up and answered with one wake-up of the event loop."""
    lane = BatchLane("t", threads=1)
    gate = threading.Event()
    deliveries: list[int] = []
    real = concurrency._settle

    def settle(results: list) -> None:  # type: ignore[type-arg]
        deliveries.append(len(results))
        real(results)

    monkeypatch.setattr(concurrency, "_settle", settle)
    blocked = lane.submit(gate.wait, 10)
    await asyncio.sleep(0.05)  # the one thread is waiting on the gate
    queued = [lane.submit(lambda i=i: i) for i in range(20)]
    gate.set()
    assert await blocked is True
    assert await asyncio.gather(*queued) == list(range(20))
    assert deliveries == [1, 20]


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    lane = BatchLane("t", threads=1)
    gate = threading.Event()
    blocked = lane.submit(gate.wait, 10)
    await asyncio.sleep(0.05)
    gone = lane.submit(lambda: "gone")
    kept = lane.submit(lambda: "kept")
    gone.cancel()
    gate.set()
    assert await blocked is True
    assert await kept == "kept"
    assert gone.cancelled()


async def test_the_result_of_a_cancelled_call_is_released() -> None:
    """An open file that nobody will get (the caller went away while it was being
    opened) is handed to ``discard``; a result that was taken is not."""
    lane = BatchLane("t", threads=1)
    gate = threading.Event()
    discarded: list[str] = []
    blocked = lane.submit(gate.wait, 10)
    await asyncio.sleep(0.05)
    gone = lane.submit_owned(discarded.append, lambda: "gone")
    kept = lane.submit_owned(discarded.append, lambda: "kept")
    gone.cancel()
    gate.set()
    assert await blocked is True
    assert await kept == "kept"
    assert discarded == ["gone"]


async def test_idle_threads_end_and_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    lane = BatchLane("t", threads=2)
    monkeypatch.setattr(lane, "IDLE_SECONDS", 0.05)
    assert await asyncio.gather(*(lane.submit(lambda: 1) for _ in range(10))) == [1] * 10
    threads = list(lane._threads)
    assert threads
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()
    assert lane._threads == []
    assert await lane.submit(lambda: 2) == 2
