"""What the cloud commands created and pushed, as files under build/, so the next command finds it.

build/cloud/NAME.txt: the last training job (deploy.py reads it), endpoint (query.py, teardown.py).
build/cloud/endpoints.json: what each endpoint deploy.py created or updated serves (its endpoint config,
model and registry version), and what it served before its last update.
build/images.json: the digests `make push` recorded; cloud jobs and endpoints run exactly those.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import settings
from .settings import SettingsError


def record(name: str, value: str, state_dir: Path | None = None) -> Path:
    """Remember a created resource (e.g. record('training-job', NAME)); returns the file."""
    folder = state_dir or settings.STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    path.write_text(value + "\n")
    return path


def recorded(name: str, state_dir: Path | None = None) -> str | None:
    path = (state_dir or settings.STATE_DIR) / f"{name}.txt"
    return path.read_text().strip() or None if path.is_file() else None


def forget(name: str, state_dir: Path | None = None) -> None:
    ((state_dir or settings.STATE_DIR) / f"{name}.txt").unlink(missing_ok=True)


ENDPOINTS_FILE = "endpoints.json"


def served_by(state_dir: Path | None = None) -> dict[str, dict]:
    """{endpoint: {"serving": {...}, "previous": {...} | None}} for the endpoints deploy.py recorded."""
    path = (state_dir or settings.STATE_DIR) / ENDPOINTS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_serving(endpoint: str, serving: dict, previous: dict | None = None, state_dir: Path | None = None) -> None:
    """Remember what `endpoint` serves now (config, model data, registry version) and, after an update,
    what it served before (what --rollback returns to)."""
    folder = state_dir or settings.STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    entries = served_by(folder)
    entries[endpoint] = {"serving": serving, "previous": previous}
    (folder / ENDPOINTS_FILE).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


def forget_serving(endpoint: str, state_dir: Path | None = None) -> None:
    folder = state_dir or settings.STATE_DIR
    entries = served_by(folder)
    if entries.pop(endpoint, None) is not None:
        (folder / ENDPOINTS_FILE).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


def cloud_model(model_data: str | None, training_job: str | None) -> tuple[str | None, str | None]:
    """What a cloud command serves (deploy.py, transform.py): (the s3:// model.tar.gz given, None) or
    (None, the training job whose model it is: --training-job, else the last one train.py recorded).
    SettingsError, before any AWS call, for a local path or when there is neither."""
    if model_data:
        if not model_data.startswith("s3://"):
            raise SettingsError(f"--model-data {model_data}: the cloud needs an s3:// URI of a model.tar.gz")
        return model_data, None
    job = training_job or recorded("training-job")
    if not job:
        raise SettingsError(
            "no model: give --training-job NAME or --model-data s3://..., "
            "or train first (make train MODE=cloud records the job)"
        )
    return None, job


# ---- the image digests `make push` recorded (build/images.json) ----


def cloud_image(given: str | None, role: str) -> str:
    """--image when it names a registry (ECR...), else the digest `make push` recorded for `role`:
    a local name (TRAIN_IMAGE / SERVE_IMAGE / SERVE_CPU_IMAGE from the Makefile) cannot run in the cloud."""
    if given and "/" in given and "." in given.split("/")[0]:
        return given
    return pushed_image(role)


def pushed_image(role: str, images_file: Path | None = None) -> str:
    """The digest reference `make push` recorded for `role` ('train', 'serve' or 'serve-cpu')."""
    path = images_file or settings.IMAGES_FILE
    if not path.is_file():
        raise SettingsError(f"{path} is missing: run `make build push` first (it records the pushed image digests)")
    images = json.loads(path.read_text())
    if role not in images:
        raise SettingsError(f"{path} has no '{role}' image (it has {', '.join(images) or 'none'}): run `make push`")
    return images[role]["uri"]
