"""Stop requests (SIGTERM: spot interruption, StopTrainingJob, `docker stop`) and the image's PID 1.

SageMaker stops a training container the way `docker stop` does: SIGTERM to PID 1, SIGKILL after a
grace period. PID 1 would be sagemaker-training's `train`, which installs no SIGTERM handler and
forwards nothing to the trainer it runs as a child; Linux drops default-action signals sent to PID 1,
so the trainer would never hear of the stop and die by SIGKILL. The training image's ENTRYPOINT is
therefore `python -m classifier.training.signals`, a small init: it runs `train` (the command SageMaker gives)
as its child, forwards SIGTERM/SIGINT to the trainer processes that registered themselves (so they
save a resumable checkpoint and exit), reaps orphans, and exits with `train`'s exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Trainer processes write their PID here; the init forwards stop signals to them.
REGISTRY = Path(os.environ.get("CLASSIFIER_STOP_REGISTRY", "/tmp/classifier-stop-registry"))
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Set by SIGTERM/SIGINT; the training loop checks it between steps."""

    def __init__(self):
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def _handle(self, signum, frame) -> None:
        if self.signal is None:
            log.warning(
                "received %s: stopping at the next step with a resumable checkpoint", signal.Signals(signum).name
            )
        self.signal = signum


@contextlib.contextmanager
def stop_requests():
    """Catch stop signals in this process (and register it with the init) for the block's duration."""
    request = StopRequest()
    previous = {sig: signal.signal(sig, request._handle) for sig in STOP_SIGNALS}
    entry = REGISTRY / str(os.getpid())
    try:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        entry.touch()
    except OSError as err:  # outside the image (tests, a laptop) the registry is merely unused
        log.debug("no stop registry at %s: %s", REGISTRY, err)
    try:
        yield request
    finally:
        entry.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def registered() -> list[int]:
    """PIDs of live registered trainer processes."""
    pids = []
    for entry in REGISTRY.glob("[0-9]*") if REGISTRY.is_dir() else ():
        pid = int(entry.name)
        try:
            os.kill(pid, 0)
            pids.append(pid)
        except ProcessLookupError:
            entry.unlink(missing_ok=True)
    return pids


def init(command: list[str]) -> int:
    """PID 1 of the training image: run `command`, forward stop signals to the trainer, reap orphans."""
    child = None
    early: list[int] = []  # stop signals that came before `command` started

    def forward(signum, frame):
        if child is None:
            early.append(signum)
            return
        # Before the trainer registered there is nothing to save: stop `train` itself.
        targets = registered() or [child.pid]
        print(f"[init] {signal.Signals(signum).name} forwarded to {targets}", file=sys.stderr, flush=True)
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    # Handlers first: a stop signal at any moment after this reaches `command`, none is lost in between.
    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)
    child = subprocess.Popen(command)
    for signum in early:
        forward(signum, None)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)  # any child: orphans are re-parented to PID 1
        except ChildProcessError:
            return 1
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(init(sys.argv[1:] or ["train"]))
