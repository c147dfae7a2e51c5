"""Dynamic micro-batching: requests from many server threads share one forward pass.

Each request thread calls `predict(batch)` and blocks; one batching thread takes what is queued
(up to `max_batch_size` images), waits at most `max_delay` seconds for more, runs the model once
and hands each caller its rows. While the model is busy new requests pile up, so under load the
batches fill by themselves and the delay is rarely waited out. A failing forward pass fails only
the requests of that batch.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

import torch

log = logging.getLogger(__name__)


class Batcher:
    """The `predict(batch) -> probabilities` interface of ServedModel, shared across threads."""

    def __init__(self, predict: Callable[[torch.Tensor], torch.Tensor], max_batch_size: int, max_delay: float):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay}")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self._queue: queue.SimpleQueue[tuple[torch.Tensor, Future]] = queue.SimpleQueue()
        self.batch_sizes: list[int] = []  # recent forward-pass sizes (the benchmark reads them)
        # A daemon thread: the server's graceful shutdown waits for the request threads, which wait here.
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        future: Future = Future()
        self._queue.put((batch, future))
        return future.result()

    def _collect(self) -> list[tuple[torch.Tensor, Future]]:
        items = [self._queue.get()]
        size = len(items[0][0])
        deadline = time.monotonic() + self.max_delay
        while size < self.max_batch_size:
            try:
                # Take what is already queued without waiting; then wait only until the deadline.
                remaining = deadline - time.monotonic()
                item = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            items.append(item)
            size += len(item[0])
        return items

    def _run(self) -> None:
        while True:
            items = self._collect()
            # uint8 images and float tensors cannot share one tensor: one forward pass per kind.
            for dtype in {batch.dtype for batch, _ in items}:
                group = [(b, f) for b, f in items if b.dtype == dtype]
                self._forward(group)

    def _forward(self, group: list[tuple[torch.Tensor, Future]]) -> None:
        try:
            batch = torch.cat([b for b, _ in group]) if len(group) > 1 else group[0][0]
            probabilities = self._predict(batch)
        except Exception as err:  # the callers answer 500; this thread keeps serving
            log.exception("forward pass of %d request(s) failed", len(group))
            for _, future in group:
                future.set_exception(err)
            return
        self.batch_sizes = (self.batch_sizes + [len(batch)])[-1000:]
        start = 0
        for b, future in group:
            future.set_result(probabilities[start:start + len(b)])
            start += len(b)


class BatchedModel:
    """A ServedModel whose `predict` goes through a Batcher; everything else is the model's."""

    def __init__(self, model, batcher: Batcher):
        self._model = model
        self.batcher = batcher

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        return self.batcher.predict(batch)
