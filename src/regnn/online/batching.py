"""The server's model batches: the pushes of the sessions due together, computed as one batch.

:class:`Batcher` lives on the server's event loop. A session hands it its ``frames`` message
(:meth:`Batcher.push`) and awaits the result. A small message (at most
:data:`INLINE_FRAMES` speaker frames and :data:`INLINE_SAMPLES` audio samples) to a stream
that splits its push (:func:`~regnn.online.stream.splits_push`) is buffered right away on the
loop (:func:`~regnn.online.stream.prepare_push`: the frames and samples copied, their audio
features left for when a chunk needs them): a
paced session sends one frame per message and needs a chunk computed only every ``hop``
frames, so most messages are answered without leaving the loop, and only the ones with
chunks due wait for a model worker. Whenever a worker is free, the batcher takes the queued
pushes in arrival order, up to :data:`BATCH_FRAMES` speaker frames (at least one push: a
250-frame message runs in a batch of its own, so it delays no one else's), and computes them
in the thread pool with :func:`~regnn.online.stream.finish_pushes` (large messages are
buffered there too), where the streams of one model share one forward pass. At most
``workers`` batches run at once.

``on_loop=True`` (``regnn serve --workers 0``, the default of each ``--processes`` server)
computes the small messages' batches on the event loop instead: the pushes with a chunk due
that arrive within ``wait`` seconds of the first (``regnn serve --batch-wait``, default
:data:`BATCH_WAIT`) form one batch, or fewer if they reach :data:`BATCH_FRAMES` frames first.
Paced sessions start at any moment, so their chunks fall due spread over the frame period,
and a batch formed of the pushes of one turn of the loop held 2-3 of them; a batch's fixed
cost (~2.2 ms for the demo online model at K = 10, against ~1.2 ms per chunk) then dominated.
Waiting a few milliseconds costs the few messages that carry a chunk that much latency and
saves the CPU that decides how many sessions stay in real time. A server process that has one
core to itself gains nothing from a model thread: the thread and the loop take turns with
the interpreter lock on that core, and every hand-off (a thread wake-up, the loop's self-pipe,
lock convoys) costs CPU. Large messages still go to the pool, so a 250-frame push never holds
up the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import numpy as np

from regnn.online.stream import (
    ChunkRequest,
    ReactionStream,
    finish_pushes,
    prepare_push,
    splits_push,
)

#: Speaker frames one model batch takes from the queue (at least one message): the frames of
#: up to this many paced sessions (one frame each) go together.
BATCH_FRAMES = 128

#: A message with at most this many speaker frames and :data:`INLINE_SAMPLES` audio samples is
#: buffered on the event loop (tens of microseconds); a larger one in a model worker, so that
#: its audio features never hold up the loop.
INLINE_FRAMES = 8
INLINE_SAMPLES = 16_000

#: Seconds the first push with a chunk due waits for others before an on-loop batch runs.
BATCH_WAIT = 0.008


class Batcher:
    """Queue of pushes and the batches computed from it (see the module docstring)."""

    def __init__(self, pool: concurrent.futures.Executor, workers: int,
                 max_frames: int = BATCH_FRAMES, on_loop: bool = False,
                 wait: float = BATCH_WAIT) -> None:
        self.pool, self.workers, self.max_frames = pool, workers, max_frames
        self.on_loop, self.wait = on_loop, wait
        self._queue: list[tuple[Any, ...]] = []
        self._loop_queue: list[tuple[Any, ...]] = []  # on_loop: small pushes with chunks due
        self._loop_timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._loop_frames = 0  # speaker frames of the pushes in _loop_queue
        self._running = 0
        self.messages = 0  # pushes computed
        self.batches = 0  # batches computed
        self.inline = 0  # pushes answered on the loop (no chunk due)

    @property
    def mean_batch(self) -> float | None:
        return round(self.messages / self.batches, 3) if self.batches else None

    async def push(self, stream: ReactionStream, face: np.ndarray,
                   samples: np.ndarray | None, sample_rate: int | None
                   ) -> tuple[Any, float, float]:
        """``stream.push(face, samples, sample_rate)`` in a batch: ``(result, began, done)``
        with the result an array of listener frames or the exception the push raised, and the
        ``perf_counter`` times at which its batch began and its share of the batch ended
        (for a message answered on the loop: when its buffering began and ended)."""
        prepared: list[ChunkRequest] | None = None
        if (len(face) <= INLINE_FRAMES and (samples is None or len(samples) <= INLINE_SAMPLES)
                and splits_push(stream)):
            began = time.perf_counter()
            ready = prepare_push(stream, face, samples, sample_rate)
            if not isinstance(ready, list):  # the input was refused
                return ready, began, time.perf_counter()
            if not ready:  # no chunk due: release the frames computed before
                result = finish_pushes([(stream, ready)])[0]
                self.inline += 1
                return result, began, time.perf_counter()
            prepared = ready
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        job = (stream, face, samples, sample_rate, prepared, fut)
        if prepared is not None and self.on_loop:
            self._loop_queue.append(job)
            self._loop_frames += len(face)
            full = self._loop_frames >= self.max_frames
            if self._loop_timer is None or (full and isinstance(self._loop_timer,
                                                                 asyncio.TimerHandle)):
                if self._loop_timer is not None:
                    self._loop_timer.cancel()
                # after the callbacks ready now (their pushes join), or after `wait` seconds
                # (the pushes of the next few milliseconds join too) unless the batch is full
                self._loop_timer = (loop.call_later(self.wait, self._loop_batch)
                                    if self.wait > 0 and not full
                                    else loop.call_soon(self._loop_batch))
        else:
            self._queue.append(job)
            self._start(loop)
        return await fut

    def _loop_batch(self) -> None:
        """``on_loop``: compute the queued small pushes as one batch on the event loop."""
        self._loop_timer, self._loop_frames = None, 0
        jobs, self._loop_queue = self._loop_queue, []
        began = time.perf_counter()
        try:
            results = finish_pushes([(j[0], j[4]) for j in jobs])
        except BaseException as exc:  # a fault in the model: every push of the batch fails
            self._deliver(jobs, exc)
        else:
            self._deliver(jobs, (results, began, time.perf_counter()))

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
            work = loop.run_in_executor(self.pool, _timed_push_many, [j[:5] for j in jobs])
            work.add_done_callback(lambda f, jobs=jobs: self._done(loop, jobs, f))

    def _done(self, loop: asyncio.AbstractEventLoop, jobs: list[tuple[Any, ...]],
              work: asyncio.Future) -> None:
        self._running -= 1
        try:
            outcome = work.result()
        except BaseException as exc:  # a fault in the model: every push of the batch fails
            outcome = exc
        self._deliver(jobs, outcome)
        self._start(loop)

    def _deliver(self, jobs: list[tuple[Any, ...]],
                 outcome: tuple[list[Any], float, float] | BaseException) -> None:
        """Hand a computed batch's results ``(results, began, done)``, or the fault that
        failed it, to the pushes awaiting them (each gets its share of the batch's time)."""
        self.messages += len(jobs)
        self.batches += 1
        for i, job in enumerate(jobs):
            if job[5].done():  # the session may be gone
                continue
            if isinstance(outcome, BaseException):
                job[5].set_exception(outcome)
            else:
                results, began, done = outcome
                job[5].set_result((results[i], began, began + (done - began) / len(jobs)))


def _timed_push_many(jobs: list[tuple[Any, ...]]) -> tuple[list[Any], float, float]:
    """The pushes ``(stream, face, samples, rate, prepared)`` of one batch in a model worker
    (:func:`~regnn.online.stream.prepare_push` where the loop did not, then
    :func:`~regnn.online.stream.finish_pushes`), with the batch's start and end."""
    began = time.perf_counter()
    results = finish_pushes([(j[0], j[4] if j[4] is not None else prepare_push(*j[:4]))
                             for j in jobs])
    return results, began, time.perf_counter()
