"""The WSGI application: SageMaker's hosting contract (GET /ping, POST /invocations) over the handler.

It moves bytes and status codes only; decoding, the model and the answer's shape are the handler's.
One instance is built in the server's master process (model loaded there), then `start_worker` runs
in each worker after the fork: device, inference threads, batcher and warm-up are per process.

In batch mode (SageMaker Batch Transform, SAGEMAKER_BATCH) it also answers GET /execution-parameters,
and a request that fails for a reason of its own is answered 200 with an error record
{"error": ..., "status": ...}: a non-2xx answer fails the job's file and, after its retries, the
whole job, so one bad image would stop the thousands beside it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from contextlib import ExitStack

import numpy as np

from .batching import BatchedModel, Batcher
from .handler import ImageClassifierHandler, RequestContext, RequestError, ServedModel
from .limits import MIB, BudgetExhausted, Deadline, Unavailable

DRAIN_CHUNK = 64 * 1024

log = logging.getLogger(__name__)


def _content_length(environ) -> int:
    """The declared body length; -1 when none is declared (chunked) or it is not a number."""
    try:
        return int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return -1


def _json(start_response, status: int, body: dict, extra_headers: tuple = ()) -> list[bytes]:
    payload = json.dumps(body).encode()
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        406: "Not Acceptable",
        413: "Payload Too Large",
        415: "Unsupported Media Type",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *extra_headers],
    )
    return [payload]


class ServingApp:
    def __init__(
        self,
        handler: ImageClassifierHandler,
        model: ServedModel,
        *,
        max_batch_size: int = 8,
        max_delay: float = 0.005,
        batch: bool = False,
        max_concurrent_transforms: int = 1,
    ):
        self.handler = handler
        self.model = model
        self.served = model  # what predict_fn gets: the model behind the worker's Batcher once started
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.batch = batch  # SageMaker Batch Transform: error records, /execution-parameters
        self.max_concurrent_transforms = max_concurrent_transforms
        self.bodies = handler.limits.body_budget()  # each worker gets its own at the fork
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
        self.served = BatchedModel(
            self.model, Batcher(self.model.predict, self.max_batch_size, self.max_delay, explain=self.model.explain)
        )
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
        if path == "/execution-parameters":
            if method not in ("GET", "HEAD"):
                return _json(start_response, 405, {"error": "use GET /execution-parameters"}, (("Allow", "GET, HEAD"),))
            return self.execution_parameters(start_response)
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
            return (
                f"unhealthy: a forward pass has been running for {running:.0f} s, longer than the "
                f"request deadline of {self.handler.limits.timeout_s:g} s"
            )
        return None

    def execution_parameters(self, start_response):
        """What a transform job asks before its first record, for what the job itself does not set.

        BatchStrategy is left out: the job sets it, and SageMaker local mode accepts only its own
        spellings. MaxConcurrentTransforms defaults to enough requests to fill every worker's batch."""
        if not self.batch:
            return _json(
                start_response,
                404,
                {
                    "error": "GET /execution-parameters is for SageMaker Batch Transform; "
                    "this server is not in batch mode (SAGEMAKER_BATCH)"
                },
            )
        return _json(
            start_response,
            200,
            {
                "MaxConcurrentTransforms": self.max_concurrent_transforms,
                "MaxPayloadInMB": self.handler.limits.max_payload_bytes // MIB,
            },
        )

    def invoke(self, environ, start_response):
        request_id = uuid.uuid4().hex[:16]
        deadline = Deadline(self.handler.limits.timeout_s)
        if not self.ready.is_set():
            # A real 503 even in batch mode: the server is not ready (SageMaker waits for /ping and
            # retries), nothing is wrong with the record.
            return _json(start_response, 503, {"error": self.failed or "model is still warming up; retry"})
        try:
            payload, payload_type = self.answer(environ, deadline)
        except RequestError as err:
            return self.failure(start_response, request_id, err.status_code, {"error": err.message})
        except Unavailable as err:
            log.warning("request %s: 503: %s", request_id, err)
            return self.failure(start_response, request_id, 503, {"error": str(err), "request_id": request_id})
        except Exception:
            # The traceback may hold paths, library internals or input data: the log only.
            log.exception("request %s failed", request_id)
            return self.failure(
                start_response,
                request_id,
                500,
                {"error": "internal error", "request_id": request_id},
                (("X-Request-Id", request_id),),
            )
        start_response("200 OK", [("Content-Type", payload_type), ("Content-Length", str(len(payload)))])
        return [payload]

    def failure(self, start_response, request_id: str, status: int, body: dict, headers: tuple = ()):
        """The answer to a request that failed for a reason of its own: its status, or in batch mode a
        200 whose body is the error record (the module docstring says why)."""
        if not self.batch:
            return _json(start_response, status, body, headers)
        log.warning("request %s: %d answered as a 200 error record (batch mode): %s", request_id, status, body["error"])
        return _json(start_response, 200, {**body, "status": status}, headers)

    def answer(self, environ, deadline: Deadline) -> tuple[bytes, str]:
        """The answer's bytes and content type; raises RequestError or Unavailable.

        The body's bytes are held from the worker's body budget (limits.py) from before it is read
        until the answer is built. A request that cannot get them in time has its body drained first
        (see read_body), then its 503."""
        stream, length = environ["wsgi.input"], _content_length(environ)
        wait = min(self.handler.limits.decode_wait_s, deadline.remaining())
        with ExitStack() as held:
            try:  # only the body budget's own refusal: the handler's pixel budget raises the same inside
                held.enter_context(self.bodies.hold(self.body_share(length), wait))
            except BudgetExhausted:
                self.drain(stream, None if length < 0 else length, deadline)
                raise
            body = self.read_body(stream, length, deadline)
            context = RequestContext(environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"), deadline)
            inputs = self.handler.input_fn(body, environ.get("CONTENT_TYPE"), context)
            prediction = self.handler.predict_fn(inputs, self.served)
            return self.handler.output_fn(prediction, environ.get("HTTP_ACCEPT"))

    def body_share(self, length: int) -> int:
        """The bytes a body of `length` (-1: chunked) holds from the body budget."""
        limit = self.handler.limits.max_payload_bytes
        if length > limit:
            return 0  # refused with a 413 after draining: never held whole
        return limit if length < 0 else length  # a chunked body's size is unknown until it is read

    def read_body(self, stream, length: int, deadline: Deadline) -> bytes:
        """The body of `length` bytes (-1: chunked); RequestError 413 when it is larger than the limit.

        An oversized body is read and dropped first (up to limits.drain_bytes, within the deadline):
        closing with it unread makes the kernel reset the connection, and a client that sends its
        whole body before reading the answer (urllib, botocore) then sees a broken pipe, not the 413.
        """
        limit = self.handler.limits.max_payload_bytes
        if 0 <= length <= limit:
            return stream.read(length)
        # Too long, or chunked (no length; WSGI forbids reading past a declared one; chunked ends at EOF).
        body = stream.read(limit + 1) if length < 0 else b""
        if len(body) <= limit and length < 0:
            return body
        self.drain(stream, length if length >= 0 else None, deadline)
        size = f"{length:,} bytes" if length >= 0 else f"over {limit:,} bytes (chunked)"
        raise RequestError(
            413, f"request body is {size}; the limit is {limit:,} ({self.handler.limits.payload_setting})"
        )

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
