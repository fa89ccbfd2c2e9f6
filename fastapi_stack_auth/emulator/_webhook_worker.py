"""``LoopWorker``: an asyncio event loop in a daemon thread of its own, the tasks started on it
and the ``httpx.AsyncClient`` they share; stopping it cancels and awaits every task first, so
nothing is left pending (no "Task was destroyed" warnings)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
logger = logging.getLogger("fastapi_stack_auth.emulator")
#: How long stopping may wait for the loop to finish its tasks.
STOP_TIMEOUT = 10.0


class LoopWorker:
    """An event loop running in a daemon thread (started at once). ``start`` may be called from
    any thread; ``cancel_tasks`` and ``stop`` from any thread but the loop's own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        # Touched on the loop only:
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, job: Callable[[LoopWorker], Coroutine[Any, Any, None]]) -> None:
        """Run ``job(self)`` as a task on the loop (returns at once)."""
        self.loop.call_soon_threadsafe(self._spawn, job)

    def _spawn(self, job: Callable[[LoopWorker], Coroutine[Any, Any, None]]) -> None:
        task = self.loop.create_task(job(self))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("Stack Auth emulator: a webhook job failed", exc_info=error)

    def client(self) -> httpx.AsyncClient:
        """The loop's HTTP client (on the loop only): no proxies from the environment, no
        redirects followed (a 3xx answer is a failed attempt, as for Svix)."""
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(STOP_TIMEOUT)

    async def _cancel_all(self) -> None:
        # Cancelled again until done: a cancellation that arrives as an awaited result does
        # can be lost on some Pythons, and that task would go on to its next retry.
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.05)

    async def _close(self) -> None:
        await self._cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def cancel_tasks(self) -> None:
        """Cancel every task and wait until each has ended."""
        if self.alive:
            self._call(self._cancel_all())

    def stop(self) -> None:
        """Cancel every task, close the client, stop the loop and end the thread."""
        if not self.alive:
            return
        try:
            self._call(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STOP_TIMEOUT)
            if not self._thread.is_alive():
                self.loop.close()
