"""What one request and one worker may use, so that no request can take the server down.

Every limit is an environment setting (server.py lists them with their defaults). Together they
bound a worker's memory: bodies are at most `max_payload_bytes` each (one per request thread),
a request holds at most `max_images` crops, and the pixels being decoded at any moment across all
of a worker's request threads are at most `decode_budget_pixels` (a decoded pixel costs 3-8 bytes
while PIL converts it). They bound its time too: every request has a deadline.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .. import presets

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    # SageMaker's real-time payload limit; batch transform and async endpoints allow more.
    max_payload_bytes: int = 6 * MIB
    max_images: int = 64
    # explain=gradcam: a pass with gradients (torch) and two PNGs per image.
    max_explanations: int = 8
    # Two of the largest photos accepted (presets.MAX_PIXELS each), or ten 12 MP phone photos.
    max_request_pixels: int = 120_000_000
    decode_budget_pixels: int = 100_000_000
    decode_wait_s: float = 2.0
    # Below SageMaker's 60 s real-time invocation timeout, so the client gets our 503, not theirs.
    timeout_s: float = 50.0

    @property
    def max_image_pixels(self) -> int:
        """One image may not exceed what a whole request or the worker's budget may hold."""
        return min(presets.MAX_PIXELS, self.max_request_pixels, self.decode_budget_pixels)

    @property
    def drain_bytes(self) -> int:
        """How much of an oversized body is read (and dropped) so the client sees the 413: a client
        that sends its whole body before reading (urllib, botocore) gets a reset if the server
        closes with the body unread. Beyond this the server answers and closes anyway."""
        return max(2 * self.max_payload_bytes, 32 * MIB)


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
            raise DeadlineExceeded(f"the request deadline of {self.seconds:g} s passed while {doing} "
                                   "(SERVING_REQUEST_TIMEOUT_S)")


class PixelBudget:
    """Decoded pixels in flight in one worker, shared by its request threads."""

    def __init__(self, pixels: int):
        self.capacity = pixels
        self.free = pixels
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int, wait_s: float):
        """Hold `pixels` while decoding; wait at most `wait_s` for them, then give up (503)."""
        pixels = min(pixels, self.capacity)
        with self._changed:
            if not self._changed.wait_for(lambda: self.free >= pixels, timeout=wait_s):
                raise BudgetExhausted(
                    f"the server is decoding {self.capacity - self.free:,} pixels for other requests and its "
                    f"budget is {self.capacity:,} (SERVING_DECODE_BUDGET_MEGAPIXELS); waited {wait_s:.1f} s; "
                    "retry shortly")
            self.free -= pixels
        try:
            yield
        finally:
            with self._changed:
                self.free += pixels
                self._changed.notify_all()
