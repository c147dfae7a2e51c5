"""The real serving process on a loopback port, no Docker: gunicorn's master, its worker, real sockets.

Tests start it with `LiveServer(model_dir, folder)`; run as a script it is `serve` (server.main)
with one test seam, the file named by SERVING_TEST_FORWARD_GATE: while it exists every forward pass
waits (a stuck model, for the liveness tests), or raises if it says "fail" (a bug, for the 500s).
A forward pass that finds the gate there first creates `entered` beside it, so a test knows when a
request is held inside the server (wait_entered). Nothing else about the server is replaced.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

START_DEADLINE_S = 90  # bounds a broken start; a healthy one takes a few seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    def __init__(self, model_dir: Path, folder: Path, env: dict[str, str] | None = None):
        base = folder / "opt-ml"
        base.mkdir()
        (base / "model").symlink_to(model_dir)
        # The workers run as `nobody`, who cannot enter pytest's private temp folders; 1777 lets them write `entered`.
        self.gate_dir = Path(tempfile.mkdtemp(prefix="serving-gate-"))
        self.gate_dir.chmod(0o1777)
        self.gate = self.gate_dir / "forward-gate"
        self.entered = _entered(self.gate)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "server.log"
        environment = {
            **os.environ,
            "SAGEMAKER_BASE_DIR": str(base),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SERVING_USER": "nobody",
            "SERVING_TEST_FORWARD_GATE": str(self.gate),
            **(env or {}),
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"/ping never answered 200 within {START_DEADLINE_S}s:\n{self.log()}")

    def wait_entered(self, timeout: float = 60) -> None:
        """Until a forward pass waits at the gate (the gate must exist)."""
        deadline = time.monotonic() + timeout
        while not self.entered.exists():
            assert time.monotonic() < deadline, f"no forward pass reached the gate:\n{self.log()}"
            time.sleep(0.02)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        shutil.rmtree(self.gate_dir, ignore_errors=True)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _entered(gate: Path) -> Path:
    return gate.with_name(gate.name + "-entered")


def _gated(predict):
    gate = Path(os.environ["SERVING_TEST_FORWARD_GATE"])

    def forward(self, batch, deadline=None):
        if gate.exists():
            _entered(gate).touch()
        while gate.exists():
            if gate.read_text() == "fail":
                raise RuntimeError(f"injected failure reading {gate}")
            time.sleep(0.02)
        return predict(self, batch, deadline)

    return forward


if __name__ == "__main__":
    from classifier.serving import handler, server

    handler.ServedModel.predict = _gated(handler.ServedModel.predict)
    sys.exit(server.main(["serve"]))
