"""The WSGI application: SageMaker's hosting contract (GET /ping, POST /invocations) over the handler.

It moves bytes and status codes only; decoding, the model and the answer's shape are the handler's.
One instance is built in the server's master process (model loaded there), then `start_worker` runs
in each worker after the fork: device, inference threads, batcher and warm-up are per process.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import numpy as np

from .batching import Batcher, BatchedModel
from .handler import ImageClassifierHandler, RequestContext, RequestError, ServedModel
from .limits import Deadline, Unavailable

DRAIN_CHUNK = 64 * 1024

log = logging.getLogger(__name__)


def _json(start_response, status: int, body: dict, extra_headers: tuple = ()) -> list[bytes]:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              406: "Not Acceptable", 413: "Payload Too Large", 415: "Unsupported Media Type",
              500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(payload))), *extra_headers])
    return [payload]


class ServingApp:
    def __init__(self, handler: ImageClassifierHandler, model: ServedModel, *, max_batch_size: int = 8,
                 max_delay: float = 0.005):
        self.handler = handler
        self.model = model
        self.served = model  # what predict_fn gets: the model behind the worker's Batcher once started
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.ready = threading.Event()
        self.failed: str | None = None

    # ---- per worker
    def start_worker(self, threads: int) -> None:
        """In the worker, after the fork (and after it dropped root): GPU, threads, batcher, warm-up."""
        try:
            self.model.start(threads)
        except Exception as err:  # /ping answers 503 with the reason (an exception here would crash-loop the worker)
            log.exception("starting the %s runtime failed", self.model.runtime.name)
            self.failed = f"starting the {self.model.runtime.name} runtime failed: {type(err).__name__}: {err}"
            return
        # Always one inference thread, even with batching off (batch size 1): forward passes never
        # overlap (each already uses every torch thread), and it is the thread the warm-up warmed.
        self.served = BatchedModel(self.model, Batcher(self.model.predict, self.max_batch_size, self.max_delay,
                                                       explain=self.model.explain))
        # In the background, so /ping answers 503 (not a hung connection) while it runs.
        threading.Thread(target=self.warm_up, name="warm-up", daemon=True).start()

    def warm_up(self) -> None:
        """One forward pass at batch size 1 and at the largest batch: the first calls are slow."""
        try:
            start = time.monotonic()
            crop = self.model.preprocessing["crop"]
            for size in sorted({1, self.max_batch_size}):
                self.served.predict(np.zeros((size, 3, crop, crop), dtype=np.uint8))
            log.info("warm-up done in %.2fs on %s: ready", time.monotonic() - start, self.model.runtime.describe())
            self.ready.set()
        except Exception as err:  # /ping keeps answering 503 with the reason
            log.exception("warm-up inference failed")
            self.failed = f"warm-up inference failed: {type(err).__name__}: {err}"

    # ---- WSGI
    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                return _json(start_response, 405, {"error": "use GET /ping"}, (("Allow", "GET, HEAD"),))
            return self.ping(start_response)
        if path == "/invocations":
            if method != "POST":
                return _json(start_response, 405, {"error": "use POST /invocations"}, (("Allow", "POST"),))
            return self.invoke(environ, start_response)
        return _json(start_response, 404, {"error": f"no route {path!r}: use GET /ping or POST /invocations"})

    def ping(self, start_response):
        problem = self.health_problem()
        runtime = {"runtime": self.model.runtime.name, "runtime_reason": self.model.reason}
        if problem is None:
            return _json(start_response, 200, {"status": "ready", **runtime})
        return _json(start_response, 503, {"status": problem, **runtime})

    def health_problem(self) -> str | None:
        """Why this worker cannot answer (SageMaker replaces an instance whose /ping fails), or None."""
        if not self.ready.is_set():
            return self.failed or "loading: warm-up inference not done"
        batcher = self.served.batcher
        if not batcher.alive:
            return "unhealthy: the inference thread died (see the log)"
        running = batcher.running_for()
        if running > self.handler.limits.timeout_s:
            return (f"unhealthy: a forward pass has been running for {running:.0f} s, longer than the "
                    f"request deadline of {self.handler.limits.timeout_s:g} s")
        return None

    def invoke(self, environ, start_response):
        request_id = uuid.uuid4().hex[:16]
        deadline = Deadline(self.handler.limits.timeout_s)
        if not self.ready.is_set():
            return _json(start_response, 503, {"error": self.failed or "model is still warming up; retry"})
        body = self.read_body(environ, start_response, deadline)
        if not isinstance(body, bytes):
            return body  # the 413 answer
        content_type = environ.get("CONTENT_TYPE")
        context = RequestContext(environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"), deadline)
        try:
            inputs = self.handler.input_fn(body, content_type, context)
            prediction = self.handler.predict_fn(inputs, self.served)
            payload, payload_type = self.handler.output_fn(prediction, environ.get("HTTP_ACCEPT"))
        except RequestError as err:
            return _json(start_response, err.status_code, {"error": err.message})
        except Unavailable as err:
            log.warning("request %s: 503: %s", request_id, err)
            return _json(start_response, 503, {"error": str(err), "request_id": request_id})
        except Exception:
            # The traceback may hold paths, library internals or input data: the log only.
            log.exception("request %s failed", request_id)
            return _json(start_response, 500, {"error": "internal error", "request_id": request_id},
                         (("X-Request-Id", request_id),))
        start_response("200 OK", [("Content-Type", payload_type), ("Content-Length", str(len(payload)))])
        return [payload]

    def read_body(self, environ, start_response, deadline: Deadline):
        """The body, or the 413 answer when it is larger than the limit.

        An oversized body is read and dropped first (up to limits.drain_bytes, within the deadline):
        closing with it unread makes the kernel reset the connection, and a client that sends its
        whole body before reading the answer (urllib, botocore) then sees a broken pipe, not the 413.
        """
        limit = self.handler.limits.max_payload_bytes
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if 0 <= length <= limit:
            return stream.read(length)
        # Too long, or chunked (no length; WSGI forbids reading past a declared one; chunked ends at EOF).
        body = stream.read(limit + 1) if length < 0 else b""
        if len(body) <= limit and length < 0:
            return body
        self.drain(stream, length if length >= 0 else None, deadline)
        size = f"{length:,} bytes" if length >= 0 else f"over {limit:,} bytes (chunked)"
        return _json(start_response, 413, {"error": f"request body is {size}; the limit is {limit:,} "
                                                    "(SERVING_MAX_PAYLOAD_MB)"})

    def drain(self, stream, remaining: int | None, deadline: Deadline) -> None:
        """Read and drop the rest of the body (`remaining` bytes, or to EOF when chunked), at most
        limits.drain_bytes and only until the deadline."""
        bound = self.handler.limits.drain_bytes
        if remaining is not None and remaining > bound:
            return  # too much to read: answer now (such a client may see a reset)
        read = 0
        while read < bound and deadline.remaining() > 0:
            chunk = stream.read(DRAIN_CHUNK if remaining is None else min(DRAIN_CHUNK, remaining - read))
            if not chunk:
                return
            read += len(chunk)
