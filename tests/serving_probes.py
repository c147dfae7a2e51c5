"""How tests and benchmarks run and probe a serving container: `docker run IMAGE serve`, requests sent
as most clients send them, and the memory the container used."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

# The serving tests' containers, (image fixture, environment): the torch image on torch (the GPU image's
# path), the slim image on what `auto` picks (ONNX Runtime).
VARIANTS = {"serve-torch": ("serve_image", {"SERVING_RUNTIME": "torch"}), "serve-cpu-auto": ("serve_cpu_image", {})}


class ServingContainer:
    """`docker run -d IMAGE serve` with `model_dir` mounted read-only at /opt/ml/model, published on an
    ephemeral loopback port; ready (and its cold start measured) once /ping answers 200. close() removes it."""

    path = "/invocations"
    headers = {"Content-Type": "image/jpeg"}

    def __init__(
        self,
        image: str,
        model_dir: Path,
        env: dict[str, str] | None = None,
        port: int = 8080,
        ping_deadline_s: float = 60,
        docker_args: tuple[str, ...] = (),
    ):
        """`docker_args`: more options of `docker run` (e.g. `--memory 3g`), before the image."""
        args = ["docker", "run", "-d", "-p", f"127.0.0.1::{port}", "-v", f"{model_dir}:/opt/ml/model:ro"]
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        args += docker_args
        self.model_dir = model_dir
        self.started = time.monotonic()
        self.id = subprocess.run([*args, image, "serve"], capture_output=True, text=True, check=True).stdout.strip()
        try:
            mapping = subprocess.run(
                ["docker", "port", self.id, str(port)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
            self.url = "http://" + mapping
            self.cold_start_s = self.wait_ready(ping_deadline_s)
            self.runtime = self.ping()[1]["runtime"]
        except BaseException:
            self.close()  # a container that never became ready is not left behind
            raise

    def ping(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=2) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as err:
            return err.code, {}

    def wait_ready(self, deadline_s: float) -> float:
        """Seconds from `docker run` to the first 200 on /ping."""
        while time.monotonic() - self.started < deadline_s:
            try:
                if self.ping()[0] == 200:
                    return time.monotonic() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet
            time.sleep(0.1)
        raise AssertionError(f"/ping never answered 200 within {deadline_s:g}s:\n{self.logs()}")

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.id], capture_output=True, text=True)
        return done.stdout + done.stderr

    def close(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True)


def urllib_post(url: str, body: bytes, content_type: str, attributes: str = "") -> tuple[int, dict]:
    """POST /invocations with urllib, which sends the whole body before it reads a byte of the answer
    (as urllib3 and botocore do): (status, JSON answer)."""
    headers = {
        "Content-Type": content_type,
        **({"X-Amzn-SageMaker-Custom-Attributes": attributes} if attributes else {}),
    }
    request = urllib.request.Request(url + "/invocations", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def cgroup_memory(container_id: str) -> tuple[int, int]:
    """(current, peak) bytes of the container's cgroup: v2 memory.current/peak, v1 usage/max_usage."""
    script = (
        "cat /sys/fs/cgroup/memory.current /sys/fs/cgroup/memory.peak 2>/dev/null || "
        "cat /sys/fs/cgroup/memory/memory.usage_in_bytes /sys/fs/cgroup/memory/memory.max_usage_in_bytes"
    )
    out = subprocess.run(
        ["docker", "exec", container_id, "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1])


def random_model(sample_data: Path, folder: Path, image_size: int = 224) -> Path:
    """A ResNet18 with seeded random weights for the sample set's classes at `image_size`, with its ONNX
    exports scored on the sample test split, as the trainer writes them: what a crafted image costs the
    server depends on the preprocessing (a ResNet50's at 224), not on the network's weights."""
    import numpy as np
    import torch

    from classifier.model import artifact, decoding
    from classifier.model import network as model_lib
    from classifier.training import data, export

    torch.manual_seed(0)
    classes = data.class_folders(sample_data / "train")
    prep = decoding.eval_preprocessing(image_size)
    network = model_lib.build("resnet18", len(classes)).eval()
    artifact.save(
        folder,
        network.state_dict(),
        classes=classes,
        model_name="resnet18",
        image_size=image_size,
        preprocessing=prep,
        hyperparameters={},
        metrics={},
        export={"enabled": True},
    )
    samples = data.list_samples(sample_data / "test", classes)
    images = torch.from_numpy(np.stack([decoding.eval_image(p, prep) for p, _ in samples]))
    labels = torch.tensor([label for _, label in samples])
    calibration = export.calibration_images(data.list_samples(sample_data / "train", classes)[:16], prep, seed=0)
    outcome = export.export_and_evaluate(network, prep, folder, images, labels, calibration)
    artifact.record_runtimes(
        folder, outcome.scores, {"enabled": True, "seconds": outcome.seconds, "skipped": outcome.skipped}
    )
    folder.chmod(0o755)  # the container's user reads it through the bind mount
    return folder
