"""`serve`: the serving container's entry point (SageMaker runs `docker run IMAGE serve`).

gunicorn runs the WSGI app (app.py) with gthread workers: each worker is one process whose request
threads share one model through the micro-batcher. The master process starts as root (SageMaker's
hosting docs ask for it), loads the model once, then forks the workers, which switch to an
unprivileged user before they read any request.

Settings (environment):
  SAGEMAKER_BIND_TO_PORT          port (default 8080; the image carries the accept-bind-to-port label)
  SAGEMAKER_MODEL_SERVER_WORKERS  worker processes (default 1: one process batching over all cores
                                  beats several processes splitting them on small instances)
  SAGEMAKER_MODEL_SERVER_TIMEOUT  seconds gunicorn waits for a worker's heartbeat before restarting
                                  it (default 60). The heartbeat comes from the worker's main loop,
                                  which request threads do not block: a stuck forward pass is caught
                                  by SERVING_REQUEST_TIMEOUT_S and /ping instead.
  SERVING_MAX_BATCH_SIZE          images per forward pass; 1 turns batching off (default 8)
  SERVING_MAX_BATCH_DELAY_MS      how long a forward pass waits for more requests (default 5)
  SERVING_THREADS                 concurrent requests per worker (default 32)
  SERVING_INFERENCE_THREADS       threads of each worker's forward pass, torch or ONNX Runtime (default:
                                  available cores / workers; SERVING_TORCH_THREADS, its older name, works too)
Runtime (selection.py):
  SERVING_RUNTIME                 auto (default) | torch | onnx | onnx-int8. auto: torch with AMP on a
                                  GPU; on a CPU the fastest runtime in the artifact and this image that
                                  passes the gate and the start-up check
  SERVING_MIN_AGREEMENT           the gate: top-1 agreement with torch fp32 (default 0.99)
  SERVING_MAX_ACCURACY_DROP       the gate: test accuracy points below torch fp32 (default 0.5)
  SERVING_USER                    the unprivileged user of the workers (default model-server)
Limits (limits.py; each refusal names its setting):
  SERVING_MAX_PAYLOAD_MB          request body, MiB (default 6, SageMaker's real-time limit): 413
  SERVING_MAX_IMAGES              images per request (default 64): 413
  SERVING_MAX_EXPLANATIONS        images per request with explain=gradcam (default 8): 413
  SERVING_MAX_REQUEST_MEGAPIXELS  decoded pixels per request, all images together (default 120): 413
  SERVING_DECODE_BUDGET_MEGAPIXELS  pixels being decoded at once in one worker (default 100); a
                                  request waits SERVING_DECODE_WAIT_MS (default 2000) for its share,
                                  then gets a 503
  SERVING_REQUEST_TIMEOUT_S       each request's deadline (default 50, under SageMaker's 60 s): a
                                  request not answered by then gets a 503, and /ping fails while a
                                  forward pass runs longer than this
"""
from __future__ import annotations

import logging
import os
import pwd
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import resources
from .limits import MIB, Limits
from .selection import AUTO, CHOICES, Gate, RuntimeRequest

log = logging.getLogger("classifier.serving")


class SettingsError(ValueError):
    """A serving setting (environment variable) with a bad value; the message names it."""


def _int(env, name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    port: int
    workers: int
    timeout: int
    max_batch_size: int
    max_delay_ms: int
    threads: int
    inference_threads: int
    user: str
    model_dir: Path
    limits: Limits
    runtime: RuntimeRequest

    @classmethod
    def from_env(cls, env=os.environ) -> "Settings":
        from ..paths import SageMakerPaths

        workers = _int(env, "SAGEMAKER_MODEL_SERVER_WORKERS", 1, 1)
        # More inference threads than cores (workers x threads) makes every worker slower.
        threads_name = "SERVING_TORCH_THREADS" if "SERVING_INFERENCE_THREADS" not in env else "SERVING_INFERENCE_THREADS"
        threads = _int(env, threads_name, max(1, resources.available_cpus() // workers), 1)
        return cls(
            port=_int(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1),
            workers=workers,
            timeout=_int(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1),
            max_batch_size=_int(env, "SERVING_MAX_BATCH_SIZE", 8, 1),
            max_delay_ms=_int(env, "SERVING_MAX_BATCH_DELAY_MS", 5, 0),
            threads=_int(env, "SERVING_THREADS", 32, 1),
            inference_threads=threads,
            user=env.get("SERVING_USER", "model-server"),
            model_dir=SageMakerPaths.from_env().model,
            limits=limits_from_env(env),
            runtime=runtime_from_env(env, threads),
        )


def _fraction(env, name: str, default: float, scale: float = 1.0) -> float:
    """A number in [0, 1] after dividing by `scale` (percentage points: scale 100)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw) / scale
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise SettingsError(f"{name} must be a number from 0 to {scale:g}, got {raw!r}")
    return value


def runtime_from_env(env, threads: int) -> RuntimeRequest:
    name = env.get("SERVING_RUNTIME", AUTO).strip().lower() or AUTO
    if name not in CHOICES:
        raise SettingsError(f"SERVING_RUNTIME must be one of {', '.join(CHOICES)}, got {name!r}")
    default = Gate()
    gate = Gate(min_agreement=_fraction(env, "SERVING_MIN_AGREEMENT", default.min_agreement),
                max_accuracy_drop=_fraction(env, "SERVING_MAX_ACCURACY_DROP", default.max_accuracy_drop, 100))
    return RuntimeRequest(name, gate, threads, resources.gpu_visible())


def limits_from_env(env) -> Limits:
    default = Limits()
    megapixels = lambda name, value: _int(env, name, value // 1_000_000, 1) * 1_000_000  # noqa: E731
    return Limits(
        max_payload_bytes=_int(env, "SERVING_MAX_PAYLOAD_MB", default.max_payload_bytes // MIB, 1) * MIB,
        max_images=_int(env, "SERVING_MAX_IMAGES", default.max_images, 1),
        max_explanations=_int(env, "SERVING_MAX_EXPLANATIONS", default.max_explanations, 1),
        max_request_pixels=megapixels("SERVING_MAX_REQUEST_MEGAPIXELS", default.max_request_pixels),
        decode_budget_pixels=megapixels("SERVING_DECODE_BUDGET_MEGAPIXELS", default.decode_budget_pixels),
        decode_wait_s=_int(env, "SERVING_DECODE_WAIT_MS", int(default.decode_wait_s * 1000), 0) / 1000,
        timeout_s=_int(env, "SERVING_REQUEST_TIMEOUT_S", int(default.timeout_s), 1),
    )


def worker_identity(user: str) -> dict:
    """gunicorn's user/group for the workers: `user` when started as root, else whoever we are."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SettingsError(f"SERVING_USER {user!r} does not exist: the workers will not parse requests "
                            "as root; create the user (the serving image has model-server)") from None
    if entry.pw_uid == 0:
        raise SettingsError(f"SERVING_USER {user!r} is root: choose an unprivileged user")
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def gunicorn_options(settings: Settings, app) -> dict:
    return {
        "bind": [f"0.0.0.0:{settings.port}"],
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": settings.timeout,
        # SageMaker sends SIGKILL 30 s after SIGTERM: finish the requests in flight before that.
        "graceful_timeout": 25,
        # SageMaker's front end reuses connections; gunicorn's 2 s default would close them under it.
        "keepalive": 75,
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "control_socket_disable": True,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "classifier-serve",
        "post_worker_init": lambda worker: app.start_worker(settings.inference_threads),
        **worker_identity(settings.user),
    }


def run(app, options: dict) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv != ["serve"]:
        print(f"error: this is the serving image; it runs `serve` (as SageMaker does), not {' '.join(argv)!r}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    try:
        settings = Settings.from_env()
        identity = worker_identity(settings.user)  # fail before the slow model load
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from .. import artifact
    from .app import ServingApp
    from .handler import ImageClassifierHandler
    from .selection import SelectionError

    handler = ImageClassifierHandler(settings.limits, settings.runtime)
    try:
        model = handler.model_fn(settings.model_dir)
    except (artifact.ArtifactError, SelectionError) as err:
        print(f"error: cannot serve {settings.model_dir}: {err}", file=sys.stderr)
        return 1
    log.info("runtime %s: %s", model.runtime.name, model.reason)
    log.info("loaded %s (%d classes) from %s in %.2fs; %d worker(s) x %d inference threads, batch <= %d, "
             "delay <= %d ms, workers run as %s", model.metadata["model_name"], len(model.classes),
             settings.model_dir, time.monotonic() - start, settings.workers, settings.inference_threads,
             settings.max_batch_size, settings.max_delay_ms,
             settings.user if identity else f"uid {os.geteuid()} (not started as root)")
    log.info("limits: %s", settings.limits)
    app = ServingApp(handler, model, max_batch_size=settings.max_batch_size,
                     max_delay=settings.max_delay_ms / 1000)
    run(app, gunicorn_options(settings, app))
    return 0
