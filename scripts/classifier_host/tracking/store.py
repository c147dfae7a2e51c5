"""Where tracking goes: MLFLOW_TRACKING_URI when set (any MLflow server; a SageMaker managed MLflow server by
its ARN, which the sagemaker-mlflow plugin signs), else a SQLite file under build/mlflow/ (nothing to start;
`make mlflow-ui` shows it). MLflow itself is imported only by the functions that talk to the store."""

from __future__ import annotations

import os
from pathlib import Path

from .. import settings

HOME = settings.ROOT / "build" / "mlflow"
DEFAULT_URI = f"sqlite:///{HOME / 'mlflow.db'}"
# With a SQLite store MLflow would put artifacts in ./mlruns of whatever folder a command runs from.
DEFAULT_ARTIFACTS = HOME / "artifacts"
UNSENT_DIR = HOME / "unsent"
EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "image-classifier")
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# MLflow's HTTP client retries a dead server for about two minutes per call; the journal retries on its own.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def is_default(uri: str) -> bool:
    return uri == DEFAULT_URI


def client(uri: str):
    """An MlflowClient on `uri` (the default store's folder created first)."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    import logging

    # The schema's creation (once per store) and sagemaker-mlflow's header hook, which fails on non-ARN URIs
    # and says so on every call: neither is something the user can act on.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client, name: str, uri: str) -> str:
    """The experiment's id, created when missing (artifacts under build/mlflow/ for a SQLite store)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.as_uri()
    # MLflow 3's UI opens an experiment of no stated kind as a GenAI one (traces); these are training runs.
    return mlflow_client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING})


def ui_command(uri: str, port: int) -> list[str]:
    """`mlflow ui` on localhost for a SQLite store (make mlflow-ui)."""
    return ["mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
