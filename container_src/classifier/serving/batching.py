"""Dynamic micro-batching: requests from many server threads share one forward pass.

Each request thread calls `predict(batch, deadline)` and blocks; one batching thread takes what is
queued (up to `max_batch_size` images), waits at most `max_delay` seconds for more, runs the model
once and hands each caller its rows. While the model is busy new requests pile up, so under load the
batches fill by themselves and the delay is rarely waited out. A request larger than
`max_batch_size` is split into several passes, so no request builds one giant tensor. A failing
forward pass fails only the requests of that batch; a caller whose deadline passes stops waiting,
and its images still queued are dropped.

Explanations (explain=gradcam) go through the same thread, in passes of their own (their forward
pass keeps what the gradients or the CAM output need): forward passes never overlap.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from .limits import Deadline, DeadlineExceeded

log = logging.getLogger(__name__)

PREDICT, EXPLAIN = "predict", "explain"
Item = tuple[np.ndarray, Future, str]  # a chunk of a request, its answer, and which pass it needs


def _rows(result, start: int, stop: int):
    """Rows start:stop of a pass's result: probabilities, or (probabilities, maps) for explanations."""
    return tuple(part[start:stop] for part in result) if isinstance(result, tuple) else result[start:stop]


def _joined(parts: list):
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    return np.concatenate(parts)


class Batcher:
    """ServedModel's `predict(batch) -> probabilities` and `explain(batch) -> (probabilities, maps)`,
    shared across threads."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int,
        max_delay: float,
        explain: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay}")
        self._passes = {PREDICT: predict, EXPLAIN: explain}
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._carry: Item | None = None  # taken from the queue but did not fit the last pass
        self.batch_sizes: list[int] = []  # recent forward-pass sizes (the benchmark reads them)
        self.busy_since: float | None = None  # monotonic start of the forward pass now running
        # A daemon thread: the server's graceful shutdown waits for the request threads, which wait here.
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    # ---- health (the server's /ping reads it)
    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def running_for(self) -> float:
        """Seconds the current forward pass has been running (0 when idle)."""
        since = self.busy_since
        return 0.0 if since is None else time.monotonic() - since

    # ---- callers
    def predict(self, batch: np.ndarray, deadline: Deadline | None = None) -> np.ndarray:
        return self._submit(batch, deadline, PREDICT)

    def explain(self, batch: np.ndarray, deadline: Deadline | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self._passes[EXPLAIN] is None:
            raise ValueError("this Batcher was built without an explain function")
        return self._submit(batch, deadline, EXPLAIN)

    def _submit(self, batch: np.ndarray, deadline: Deadline | None, task: str):
        futures = []
        for start in range(0, len(batch), self.max_batch_size):
            chunk = batch[start : start + self.max_batch_size]
            future: Future = Future()
            self._queue.put((chunk, future, task))
            futures.append(future)
        try:
            rows = [future.result(timeout=None if deadline is None else deadline.remaining()) for future in futures]
        except FutureTimeout:
            for future in futures:
                future.cancel()  # chunks not yet taken are skipped by the batching thread
            raise DeadlineExceeded(
                f"the model did not answer within the request deadline of "
                f"{deadline.seconds:g} s (SERVING_REQUEST_TIMEOUT_S)"
            ) from None
        return _joined(rows)

    # ---- the batching thread
    def _next(self, timeout: float | None) -> Item | None:
        """The carried-over item, else the next queued one that its caller still waits for."""
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        while True:
            try:
                if timeout is None:
                    item = self._queue.get()
                elif timeout <= 0:
                    item = self._queue.get_nowait()
                else:
                    item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if item[1].set_running_or_notify_cancel():
                return item

    def _collect(self) -> list[Item]:
        items = [self._next(None)]
        size = len(items[0][0])
        deadline = time.monotonic() + self.max_delay
        while size < self.max_batch_size:
            # Take what is already queued without waiting; then wait only until the deadline.
            item = self._next(deadline - time.monotonic())
            if item is None:
                break
            if size + len(item[0]) > self.max_batch_size:
                self._carry = item  # first in the next pass
                break
            items.append(item)
            size += len(item[0])
        return items

    def _run(self) -> None:
        try:
            while True:
                items = self._collect()
                # uint8 images and float tensors cannot share one array, nor predictions and explanations
                # one pass: one forward pass per kind.
                for task, dtype in {(task, batch.dtype): None for batch, _, task in items}:
                    self._forward([(b, f) for b, f, t in items if b.dtype == dtype and t == task], self._passes[task])
        except BaseException:  # /ping reports the dead thread; the log says why
            log.critical("the inference thread died", exc_info=True)
            raise

    def _forward(self, group: list[tuple[np.ndarray, Future]], function) -> None:
        self.busy_since = time.monotonic()
        try:
            batch = np.concatenate([b for b, _ in group]) if len(group) > 1 else group[0][0]
            result = function(batch)
        except Exception as err:  # the callers answer 500; this thread keeps serving
            log.exception("forward pass of %d request(s) failed", len(group))
            for _, future in group:
                future.set_exception(err)
            return
        finally:
            self.busy_since = None
        self.batch_sizes = (self.batch_sizes + [len(batch)])[-1000:]
        start = 0
        for b, future in group:
            future.set_result(_rows(result, start, start + len(b)))
            start += len(b)


class BatchedModel:
    """A ServedModel whose `predict` goes through a Batcher; everything else is the model's."""

    def __init__(self, model, batcher: Batcher):
        self._model = model
        self.batcher = batcher

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, batch: np.ndarray, deadline: Deadline | None = None) -> np.ndarray:
        return self.batcher.predict(batch, deadline)

    def explain(self, batch: np.ndarray, deadline: Deadline | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.batcher.explain(batch, deadline)
