"""The one seam for blocking work: threads and subprocesses go through here."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

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
