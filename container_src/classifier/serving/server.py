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
                                  it (default: the request deadline + 10, so 60 real-time and 600 in
                                  batch mode). The heartbeat comes from the worker's main loop, which
                                  request threads do not block: a stuck forward pass is caught by
                                  SERVING_REQUEST_TIMEOUT_S and /ping instead. A value not above the
                                  request deadline is refused: SageMaker's own serving containers read
                                  this variable as the longest a request may take, which this
                                  server would not keep.
  SERVING_MAX_BATCH_SIZE          images per forward pass; 1 turns batching off (default 8)
  SERVING_MAX_BATCH_DELAY_MS      how long a forward pass waits for more requests (default 5)
  SERVING_THREADS                 concurrent requests per worker (default 32)
  SERVING_INFERENCE_THREADS       threads of each worker's forward pass, torch or ONNX Runtime (default:
                                  available cores / workers; SERVING_TORCH_THREADS, its older name, works too)
Batch mode (SageMaker Batch Transform sets these; SageMaker local mode too):
  SAGEMAKER_BATCH                 true (any case) or 1: batch mode (default off). GET
                                  /execution-parameters answers MaxConcurrentTransforms and
                                  MaxPayloadInMB, and a request that fails (4xx, 500, 503) is answered
                                  200 with an error record {"error": ..., "status": ...}, logged at
                                  WARNING: a non-2xx answer would fail the job's file, then the job
  SAGEMAKER_MAX_PAYLOAD_IN_MB     the job's MaxPayloadInMB, 1 to 100: the payload limit in batch mode
                                  (unset: SERVING_MAX_PAYLOAD_MB, at most 100 here, else 6)
  SAGEMAKER_MAX_CONCURRENT_TRANSFORMS  the job's MaxConcurrentTransforms, as /execution-parameters
                                  answers it (unset: workers x SERVING_MAX_BATCH_SIZE, at most workers
                                  x SERVING_THREADS: enough concurrent requests to fill each batch;
                                  and at most 100 / the payload limit, SageMaker's bound)
  SAGEMAKER_BATCH_STRATEGY        not read: each request is answered alone, whatever the job put in it
Runtime (selection.py):
  SERVING_RUNTIME                 auto (default) | torch | onnx | onnx-int8. auto: torch with AMP on a
                                  GPU; on a CPU the fastest runtime in the artifact and this image that
                                  passes the gate and the start-up check
  SERVING_MIN_AGREEMENT           the gate: top-1 agreement with torch fp32 (default 0.99)
  SERVING_MAX_ACCURACY_DROP       the gate: test accuracy points below torch fp32 (default 0.5)
  SERVING_USER                    the unprivileged user of the workers (default model-server)
Limits (limits.py; each refusal names its setting):
  SERVING_MAX_PAYLOAD_MB          request body, MiB, 1 to 1024 (default 6, SageMaker's real-time
                                  limit; async endpoints take up to 1 GB): 413
  SERVING_BODY_BUDGET_MB          bodies held at once by one worker's requests, MiB, at least the
                                  payload limit (default max(64, 2 x the payload limit), and at
                                  least 100 in batch mode, where a job's concurrent bodies stay
                                  within 100 MB); a request waits SERVING_DECODE_WAIT_MS for its
                                  body's share, then gets a 503
  SERVING_MAX_IMAGES              images per request (default 64): 413
  SERVING_MAX_EXPLANATIONS        images per request with explain=gradcam (default 8): 413
  SERVING_MAX_REQUEST_MEGAPIXELS  decoded pixels per request, all images together (default 120): 413
  SERVING_DECODE_BUDGET_MEGAPIXELS  pixels being decoded at once in one worker (default 100); a
                                  request waits SERVING_DECODE_WAIT_MS (default 2000) for its share,
                                  then gets a 503
  SERVING_REQUEST_TIMEOUT_S       each request's deadline (default 50, under SageMaker's real-time
                                  60 s; in batch mode 590, under a transform job's default invocation
                                  timeout of 600 s): a request not answered by then gets a 503, and
                                  /ping fails while a forward pass runs longer than this
"""

from __future__ import annotations

import logging
import math
import os
import pwd
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from classifier.contract import resources
from classifier.model.selection import AUTO, CHOICES, Gate, RuntimeRequest

from .limits import BATCH_TIMEOUT_S, MIB, Limits, default_body_budget

log = logging.getLogger("classifier.serving")

MAX_PAYLOAD_MB = 1024  # an async endpoint's 1 GB
MAX_BATCH_PAYLOAD_MB = 100  # botocore's bound for a transform job's MaxPayloadInMB
TIMEOUT_MARGIN_S = 10  # gunicorn's worker timeout over the request deadline


class SettingsError(ValueError):
    """A serving setting (environment variable) with a bad value; the message names it."""


def _int(env, name: str, default: int, minimum: int, maximum: int | None = None, why: str = "") -> int:
    """`name`'s whole number from minimum to maximum, or `default` when unset; `why` ends the error."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number {bounds}, got {raw!r}{why}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingsError(f"{name} must be {bounds}, got {value}{why}")
    return value


def _flag(env, name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise SettingsError(f"{name} must be true or false (or 1 or 0), got {raw!r}")


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
    batch: bool  # SageMaker Batch Transform (SAGEMAKER_BATCH)
    max_concurrent_transforms: int  # what /execution-parameters answers in batch mode

    @classmethod
    def from_env(cls, env=os.environ) -> Settings:
        from classifier.contract.paths import SageMakerPaths

        batch = _flag(env, "SAGEMAKER_BATCH")
        workers = _int(env, "SAGEMAKER_MODEL_SERVER_WORKERS", 1, 1)
        # More inference threads than cores (workers x threads) makes every worker slower.
        threads_name = (
            "SERVING_TORCH_THREADS" if "SERVING_INFERENCE_THREADS" not in env else "SERVING_INFERENCE_THREADS"
        )
        threads = _int(env, threads_name, max(1, resources.available_cpus() // workers), 1)
        max_batch_size = _int(env, "SERVING_MAX_BATCH_SIZE", 8, 1)
        request_threads = _int(env, "SERVING_THREADS", 32, 1)
        limits = limits_from_env(env, batch)
        # Enough concurrent requests to fill every worker's batch, and no more than its request threads.
        fill = workers * min(max_batch_size, request_threads)
        if batch:  # and within SageMaker's MaxConcurrentTransforms x MaxPayloadInMB <= 100 MB
            fill = max(1, min(fill, MAX_BATCH_PAYLOAD_MB * MIB // limits.max_payload_bytes))
        return cls(
            port=_int(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1),
            workers=workers,
            timeout=worker_timeout(env, limits.timeout_s),
            max_batch_size=max_batch_size,
            max_delay_ms=_int(env, "SERVING_MAX_BATCH_DELAY_MS", 5, 0),
            threads=request_threads,
            inference_threads=threads,
            user=env.get("SERVING_USER", "model-server"),
            model_dir=SageMakerPaths.from_env().model,
            limits=limits,
            runtime=runtime_from_env(env, threads),
            batch=batch,
            max_concurrent_transforms=max_concurrent_transforms(env, batch, fill),
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
    gate = Gate(
        min_agreement=_fraction(env, "SERVING_MIN_AGREEMENT", default.min_agreement),
        max_accuracy_drop=_fraction(env, "SERVING_MAX_ACCURACY_DROP", default.max_accuracy_drop, 100),
    )
    return RuntimeRequest(name, gate, threads, resources.gpu_visible())


def limits_from_env(env, batch: bool) -> Limits:
    default = Limits()
    megapixels = lambda name, value: _int(env, name, value // 1_000_000, 1) * 1_000_000  # noqa: E731
    payload_mb, payload_setting = payload_limit_mb(env, batch)
    default_budget = default_body_budget(payload_mb * MIB)
    if batch:  # SageMaker keeps MaxConcurrentTransforms x MaxPayloadInMB <= 100 MB: a job's bodies all fit at once
        default_budget = max(default_budget, MAX_BATCH_PAYLOAD_MB * MIB)
    budget_mb = _int(
        env,
        "SERVING_BODY_BUDGET_MB",
        default_budget // MIB,
        payload_mb,
        why=f": a body of the largest size ({payload_setting}) must fit; raise it or lower the limit",
    )
    timeout_s = BATCH_TIMEOUT_S if batch else default.timeout_s
    return Limits(
        max_payload_bytes=payload_mb * MIB,
        payload_setting=payload_setting,
        body_budget_bytes=budget_mb * MIB,
        max_images=_int(env, "SERVING_MAX_IMAGES", default.max_images, 1),
        max_explanations=_int(env, "SERVING_MAX_EXPLANATIONS", default.max_explanations, 1),
        max_request_pixels=megapixels("SERVING_MAX_REQUEST_MEGAPIXELS", default.max_request_pixels),
        decode_budget_pixels=megapixels("SERVING_DECODE_BUDGET_MEGAPIXELS", default.decode_budget_pixels),
        decode_wait_s=_int(env, "SERVING_DECODE_WAIT_MS", int(default.decode_wait_s * 1000), 0) / 1000,
        timeout_s=_int(env, "SERVING_REQUEST_TIMEOUT_S", int(timeout_s), 1),
    )


def payload_limit_mb(env, batch: bool) -> tuple[int, str]:
    """The payload limit in MiB and the variable that set it.

    In batch mode it is announced to the job as MaxPayloadInMB, so it keeps to that field's 1..100;
    SageMaker sets SAGEMAKER_MAX_PAYLOAD_IN_MB when the job sets MaxPayloadInMB."""
    if batch and env.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip():
        name, maximum, why = (
            "SAGEMAKER_MAX_PAYLOAD_IN_MB",
            MAX_BATCH_PAYLOAD_MB,
            (
                " (the transform job's MaxPayloadInMB; 0, unbounded chunked payloads, is not served: this server "
                "bounds the memory a request may take)"
            ),
        )
    elif batch:
        name, maximum, why = (
            "SERVING_MAX_PAYLOAD_MB",
            MAX_BATCH_PAYLOAD_MB,
            (" in batch mode (SAGEMAKER_BATCH): it is announced as the job's MaxPayloadInMB, at most 100"),
        )
    else:
        name, maximum, why = "SERVING_MAX_PAYLOAD_MB", MAX_PAYLOAD_MB, " (1024 MiB holds an async endpoint's 1 GB)"
    return _int(env, name, Limits().max_payload_bytes // MIB, 1, maximum, why), name


def max_concurrent_transforms(env, batch: bool, default: int) -> int:
    """SAGEMAKER_MAX_CONCURRENT_TRANSFORMS in batch mode when the job sets it, else `default`."""
    return _int(env, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", default, 1) if batch else default


def worker_timeout(env, deadline_s: float) -> int:
    """gunicorn's worker timeout: SAGEMAKER_MODEL_SERVER_TIMEOUT, above the request deadline (the
    module docstring says why); by default the deadline plus a margin."""
    default = math.ceil(deadline_s) + TIMEOUT_MARGIN_S
    timeout = _int(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", default, 1)
    if timeout <= deadline_s:
        raise SettingsError(
            f"SAGEMAKER_MODEL_SERVER_TIMEOUT ({timeout} s) must be above the request deadline, "
            f"SERVING_REQUEST_TIMEOUT_S ({deadline_s:g} s): raise it, lower the deadline, or "
            f"leave it unset (it then follows the deadline: {default} s)"
        )
    return timeout


def worker_identity(user: str) -> dict:
    """gunicorn's user/group for the workers: `user` when started as root, else whoever we are."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SettingsError(
            f"SERVING_USER {user!r} does not exist: the workers will not parse requests "
            "as root; create the user (the serving image has model-server)"
        ) from None
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
        print(
            f"error: this is the serving image; it runs `serve` (as SageMaker does), not {' '.join(argv)!r}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    try:
        settings = Settings.from_env()
        identity = worker_identity(settings.user)  # fail before the slow model load
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from classifier.model import artifact
    from classifier.model.selection import SelectionError

    from .app import ServingApp
    from .handler import ImageClassifierHandler

    handler = ImageClassifierHandler(settings.limits, settings.runtime)
    try:
        model = handler.model_fn(settings.model_dir)
    except (artifact.ArtifactError, SelectionError) as err:
        print(f"error: cannot serve {settings.model_dir}: {err}", file=sys.stderr)
        return 1
    log.info("runtime %s: %s", model.runtime.name, model.reason)
    log.info(
        "loaded %s (%d classes) from %s in %.2fs; %d worker(s) x %d inference threads, batch <= %d, "
        "delay <= %d ms, workers run as %s",
        model.metadata["model_name"],
        len(model.classes),
        settings.model_dir,
        time.monotonic() - start,
        settings.workers,
        settings.inference_threads,
        settings.max_batch_size,
        settings.max_delay_ms,
        settings.user if identity else f"uid {os.geteuid()} (not started as root)",
    )
    log.info("limits: %s; gunicorn worker timeout %d s", settings.limits, settings.timeout)
    if settings.batch:
        log.info(
            "batch mode (SAGEMAKER_BATCH): failed requests are answered 200 with an error record; "
            "MaxConcurrentTransforms %d",
            settings.max_concurrent_transforms,
        )
    app = ServingApp(
        handler,
        model,
        max_batch_size=settings.max_batch_size,
        max_delay=settings.max_delay_ms / 1000,
        batch=settings.batch,
        max_concurrent_transforms=settings.max_concurrent_transforms,
    )
    run(app, gunicorn_options(settings, app))
    return 0
