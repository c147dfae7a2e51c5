"""What one request and one worker may use, so that no request can take the server down.

Every limit is an environment setting (server.py lists them with their defaults). Together they
bound a worker's memory: a request body is at most `max_payload_bytes`, and the bodies being read
and handled at any moment across all of a worker's request threads are at most `body_budget_bytes`
(without it 32 threads could each hold a body of the largest size: 32 GiB at the 1 GiB an async
endpoint allows). A request holds its body's bytes from that budget from before it reads the body
until its answer is built (a chunked body, of unknown size, holds the whole payload limit). The
default budget is two of the largest bodies, at least 64 MiB (small requests then never wait on each
other); parsing adds short-lived copies it does not count (a JSON body's text and decoded images,
about twice the body). The payload limit is 6 MiB by default (SageMaker's real-time limit), up to
100 MB in batch mode (MaxPayloadInMB) and up to 1 GiB when configured for an async endpoint; only
the budget keeps such limits from multiplying by the thread count. A request also holds at most
`max_images` crops, and the pixels being decoded at any moment across a worker's threads are at
most `decode_budget_pixels` (a decoded pixel costs 3-8 bytes while PIL converts it). A request that
cannot get its share of either budget within `decode_wait_s` gets a 503: the worker is busy, the
request is fine. They bound its time too: every request has a deadline, 50 s for a real-time
endpoint (SageMaker's own timeout is 60 s) and 590 s in batch mode (a transform job's invocation
timeout defaults to 600 s).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from classifier.model import decoding

MIB = 1024 * 1024
# SageMaker's batch invocation timeout (ModelClientConfig.InvocationsTimeoutInSeconds) defaults to 600 s:
# answer before it, so the job records our error, not its own timeout.
BATCH_TIMEOUT_S = 590.0


def default_body_budget(max_payload_bytes: int) -> int:
    """Two of the largest bodies, and at least 64 MiB so that requests of a few MiB never wait."""
    return max(64 * MIB, 2 * max_payload_bytes)


@dataclass(frozen=True)
class Limits:
    # SageMaker's real-time payload limit; batch transform and async endpoints allow more.
    max_payload_bytes: int = 6 * MIB
    # The variable that set max_payload_bytes, for the 413's message (SAGEMAKER_MAX_PAYLOAD_IN_MB in batch mode).
    payload_setting: str = "SERVING_MAX_PAYLOAD_MB"
    # Bytes of bodies held at once by one worker's request threads; None: default_body_budget.
    body_budget_bytes: int | None = None
    max_images: int = 64
    # explain=gradcam: a pass with gradients (torch) and two PNGs per image.
    max_explanations: int = 8
    # Two of the largest photos accepted (presets.MAX_PIXELS each), or ten 12 MP phone photos.
    max_request_pixels: int = 120_000_000
    decode_budget_pixels: int = 100_000_000
    # How long a request waits for its share of either budget before its 503.
    decode_wait_s: float = 2.0
    # Below SageMaker's 60 s real-time invocation timeout, so the client gets our 503, not theirs.
    timeout_s: float = 50.0

    def __post_init__(self):
        if self.body_budget_bytes is None:
            object.__setattr__(self, "body_budget_bytes", default_body_budget(self.max_payload_bytes))

    @property
    def max_image_pixels(self) -> int:
        """One image may not exceed what a whole request or the worker's budget may hold."""
        return min(decoding.MAX_PIXELS, self.max_request_pixels, self.decode_budget_pixels)

    @property
    def drain_bytes(self) -> int:
        """How much of an oversized body is read (and dropped) so the client sees the 413: a client
        that sends its whole body before reading (urllib, botocore) gets a reset if the server
        closes with the body unread. Beyond this the server answers and closes anyway."""
        return max(2 * self.max_payload_bytes, 32 * MIB)

    def pixel_budget(self) -> Budget:
        return Budget(self.decode_budget_pixels, "decoded pixels", "SERVING_DECODE_BUDGET_MEGAPIXELS")

    def body_budget(self) -> Budget:
        return Budget(self.body_budget_bytes, "bytes of request bodies", "SERVING_BODY_BUDGET_MB")


class Unavailable(Exception):
    """The request is fine but cannot be served now (503): the message says why."""


class DeadlineExceeded(Unavailable):
    pass


class BudgetExhausted(Unavailable):
    pass


class Deadline:
    """The moment a request must be answered by."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def check(self, doing: str) -> None:
        if time.monotonic() >= self.at:
            raise DeadlineExceeded(
                f"the request deadline of {self.seconds:g} s passed while {doing} (SERVING_REQUEST_TIMEOUT_S)"
            )


class Budget:
    """An amount one worker's request threads share (decoded pixels, body bytes): a request holds its
    part while it uses it, and waits a while for others to give theirs back."""

    def __init__(self, capacity: int, unit: str, setting: str):
        self.capacity = capacity
        self.free = capacity
        self.unit = unit  # for the 503's message, as is the setting that sized the budget
        self.setting = setting
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int, wait_s: float):
        """Hold `amount` (at most the whole budget) while the block runs; wait at most `wait_s` for it,
        then give up (503)."""
        amount = min(amount, self.capacity)
        with self._changed:
            if not self._changed.wait_for(lambda: self.free >= amount, timeout=wait_s):
                raise BudgetExhausted(
                    f"this request needs {amount:,} {self.unit} and other requests hold "
                    f"{self.capacity - self.free:,} of the worker's {self.capacity:,} ({self.setting}); "
                    f"waited {wait_s:.1f} s; retry shortly"
                )
            self.free -= amount
        try:
            yield
        finally:
            with self._changed:
                self.free += amount
                self._changed.notify_all()
