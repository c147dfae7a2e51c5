"""The WSGI application: SageMaker's hosting contract (GET /ping, POST /invocations) over the handler.

It moves bytes and status codes only; decoding, the model and the answer's shape are the handler's.
One instance is built in the server's master process (model loaded there), then `start_worker` runs
in each worker after the fork: device, torch threads, batcher and warm-up are per process.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import torch
from sagemaker_inference import errors

from .batching import Batcher, BatchedModel
from .handler import MAX_PAYLOAD_BYTES, SUPPORTED_TYPES, ImageClassifierHandler, RequestContext, ServedModel

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
    def start_worker(self, torch_threads: int) -> None:
        """In the worker, after the fork (and after it dropped root): GPU, threads, batcher, warm-up."""
        torch.set_num_threads(torch_threads)
        self.model.to_best_device()
        # Always one inference thread, even with batching off (batch size 1): forward passes never
        # overlap (each already uses every torch thread), and it is the thread the warm-up warmed.
        self.served = BatchedModel(self.model, Batcher(self.model.predict, self.max_batch_size, self.max_delay))
        # In the background, so /ping answers 503 (not a hung connection) while it runs.
        threading.Thread(target=self.warm_up, name="warm-up", daemon=True).start()

    def warm_up(self) -> None:
        """One forward pass at batch size 1 and at the largest batch: the first calls are slow."""
        try:
            start = time.monotonic()
            crop = self.model.preprocessing["crop"]
            for size in sorted({1, self.max_batch_size}):
                self.served.predict(torch.zeros(size, 3, crop, crop, dtype=torch.uint8))
            log.info("warm-up done in %.2fs on %s (%d torch threads): ready",
                     time.monotonic() - start, self.model.device, torch.get_num_threads())
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
        if self.ready.is_set():
            return _json(start_response, 200, {"status": "ready"})
        return _json(start_response, 503, {"status": self.failed or "loading: warm-up inference not done"})

    def invoke(self, environ, start_response):
        if not self.ready.is_set():
            return _json(start_response, 503, {"error": self.failed or "model is still warming up; retry"})
        too_large = (("Connection", "close"),)  # do not read the rest of an oversized body
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > MAX_PAYLOAD_BYTES:
            return _json(start_response, 413, {"error": f"request body is {length:,} bytes; the limit is "
                                                        f"{MAX_PAYLOAD_BYTES:,}"}, too_large)
        # WSGI forbids reading past CONTENT_LENGTH; a chunked body has none and ends at EOF.
        body = environ["wsgi.input"].read(length if length >= 0 else MAX_PAYLOAD_BYTES + 1)
        if len(body) > MAX_PAYLOAD_BYTES:
            return _json(start_response, 413, {"error": f"request body exceeds {MAX_PAYLOAD_BYTES:,} bytes"},
                         too_large)
        content_type = environ.get("CONTENT_TYPE")
        context = RequestContext(custom_attributes=environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"))
        try:
            inputs = self.handler.input_fn(body, content_type, context)
            prediction = self.handler.predict_fn(inputs, self.served)
            payload, payload_type = self.handler.output_fn(prediction, environ.get("HTTP_ACCEPT"))
        except errors.UnsupportedFormatError:
            return _json(start_response, 415, {"error": f"Content-Type {content_type or '(none)'!r} is not "
                                                        f"supported; send one of {', '.join(SUPPORTED_TYPES)}"})
        except errors.BaseInferenceToolkitError as err:
            return _json(start_response, err.status_code, {"error": err.message})
        except Exception as err:
            log.exception("invocation failed")
            return _json(start_response, 500, {"error": f"internal error: {type(err).__name__}: {err}"})
        start_response("200 OK", [("Content-Type", payload_type), ("Content-Length", str(len(payload)))])
        return [payload]
