"""The one seam for blocking work: threads and subprocesses go through here."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in the default thread pool so the event loop keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(fn, *args, **kwargs)
    )


async def run_command(*argv: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run a program and return (exit code, stdout, stderr); kill it after ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except BaseException:  # timed out or cancelled: never leave the program running
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


class SerialLane:
    """One worker thread that runs what it is given in order: a pipeline stage
    (write a stream's blocks, or hash them) that can run ahead of the event
    loop by several blocks without two of them ever running at once."""

    def __init__(self, name: str = "lane") -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue ``fn`` after everything queued before; await the future for its result."""
        return asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(fn, *args, **kwargs)
        )

    def close(self) -> None:
        """Let the thread end once its queue is done (does not wait)."""
        self._pool.shutdown(wait=False)


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any],
             Callable[[Any], None] | None]


class BatchLane:
    """Worker threads that take what is queued in batches: every call queued while
    they are busy is run on a thread's next wake-up, and the results of a batch go
    back to the event loop with one wake-up of the loop.

    For many small, short calls at once (opening the replicas of small objects for
    concurrent GETs): ``run_blocking`` costs two thread wake-ups per call, which on
    a virtual machine cost more than opening a cached file does.
    """

    IDLE_SECONDS = 30.0  # a thread left without work this long ends

    def __init__(self, name: str = "batch", threads: int = 2) -> None:
        self._name = name
        self._size = threads
        self._jobs: collections.deque[_Job] = collections.deque()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue ``fn(*args, **kwargs)``; await the future for its result."""
        return self.submit_owned(None, functools.partial(fn, *args, **kwargs))

    def submit_owned(self, discard: Callable[[T], None] | None,
                     call: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``call()``, whose result must be released (an open file): when the
        caller was cancelled meanwhile, ``discard(result)`` runs on the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._ready:
            self._jobs.append((loop, future, call, discard))
            if self._idle:
                self._ready.notify()
            elif len(self._threads) < self._size:
                thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._idle += 1
                    woken = self._ready.wait(self.IDLE_SECONDS)
                    self._idle -= 1
                    if not woken and not self._jobs:  # idle for long: end (a call starts another)
                        self._threads.remove(threading.current_thread())
                        return
                batch = list(self._jobs)
                self._jobs.clear()
            done: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
            for loop, future, call, discard in batch:
                try:
                    outcome, failed = call(), False
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    outcome, failed = exc, True
                done.setdefault(loop, []).append((future, outcome, failed, discard))
            for loop, results in done.items():
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, results)


_Result = tuple["asyncio.Future[Any]", Any, bool, Callable[[Any], None] | None]


def _settle(results: list[_Result]) -> None:
    for future, outcome, failed, discard in results:
        if future.done():  # the caller was cancelled: nobody will release the result
            if discard is not None and not failed:
                discard(outcome)
            continue
        if failed:
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
