"""The server's model batches: the pushes of the sessions due together, computed as one batch.

:class:`Batcher` lives on the server's event loop. A session hands it its ``frames`` message
(:meth:`Batcher.push`) and awaits the result; whenever a model worker is free, the batcher
takes the queued pushes in arrival order, up to :data:`BATCH_FRAMES` speaker frames (at least
one push: a 250-frame message runs in a batch of its own, so it delays no one else's), and
computes them in the thread pool with :func:`~regnn.online.stream.push_many`, where the
streams of one model share one forward pass. At most ``workers`` batches run at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import numpy as np

from regnn.online.stream import ReactionStream, push_many

#: Speaker frames one model batch takes from the queue (at least one message): the frames of
#: up to this many paced sessions (one frame each) go together.
BATCH_FRAMES = 128


class Batcher:
    """Queue of pushes and the batches computed from it (see the module docstring)."""

    def __init__(self, pool: concurrent.futures.Executor, workers: int,
                 max_frames: int = BATCH_FRAMES) -> None:
        self.pool, self.workers, self.max_frames = pool, workers, max_frames
        self._queue: list[tuple[Any, ...]] = []
        self._running = 0
        self.messages = 0  # pushes computed
        self.batches = 0  # batches computed

    @property
    def mean_batch(self) -> float | None:
        return round(self.messages / self.batches, 3) if self.batches else None

    async def push(self, stream: ReactionStream, face: np.ndarray,
                   samples: np.ndarray | None, sample_rate: int | None
                   ) -> tuple[Any, float, float]:
        """``stream.push(face, samples, sample_rate)`` in a batch: ``(result, began, done)``
        with the result an array of listener frames or the exception the push raised, and the
        ``perf_counter`` times at which its batch began and its share of the batch ended."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._queue.append((stream, face, samples, sample_rate, fut))
        self._start(loop)
        return await fut

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._running < self.workers:
            take, frames = 0, 0
            while take < len(self._queue):
                n = len(self._queue[take][1])
                if take and frames + n > self.max_frames:
                    break
                take, frames = take + 1, frames + n
            jobs, self._queue = self._queue[:take], self._queue[take:]
            self._running += 1
            work = loop.run_in_executor(self.pool, _timed_push_many, [j[:4] for j in jobs])
            work.add_done_callback(lambda f, jobs=jobs: self._done(loop, jobs, f))

    def _done(self, loop: asyncio.AbstractEventLoop, jobs: list[tuple[Any, ...]],
              work: asyncio.Future) -> None:
        self._running -= 1
        self.messages += len(jobs)
        self.batches += 1
        try:
            results, began, done = work.result()
        except BaseException as exc:  # a fault in the model: every push of the batch fails
            for job in jobs:
                if not job[4].done():
                    job[4].set_exception(exc)
        else:
            for job, result in zip(jobs, results):
                if not job[4].done():  # the session may be gone
                    job[4].set_result((result, began, began + (done - began) / len(jobs)))
        self._start(loop)


def _timed_push_many(jobs: list[tuple[Any, ...]]) -> tuple[list[Any], float, float]:
    """:func:`~regnn.online.stream.push_many` in a model worker, with its start and end."""
    began = time.perf_counter()
    results = push_many(jobs)  # type: ignore[arg-type]
    return results, began, time.perf_counter()
