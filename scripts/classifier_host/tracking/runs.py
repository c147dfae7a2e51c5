"""What a training job, a search and each of its trials record in MLflow.

Parameters: the hyperparameters as the job received them, instance type and count, spot. Metrics: each metric
line of the job's log as it passes (step: the epoch), then each runtime's test accuracy and agreement from the
artifact's metadata.json. Tags: git commit, image id or digest and its inputs-digest label, data location and
fingerprint, job name, model URI. Artifacts: metadata.json and evaluation.json out of model.tar.gz (the archive
itself by its URI, not copied), the reports a job produced; a search's CSV, plot and best hyperparameters."""

from __future__ import annotations

import contextlib
import json
import subprocess
import tarfile
from pathlib import Path

from classifier.contract import outputs

from ..images import provenance
from .journal import Journal
from .metric_tap import EpochSteps, tapping_stdout

# Tag names the registry reads back (registry/) as well as people in the UI.
MODEL_URI_TAG = "model.uri"
JOB_TAG = "sagemaker.job_name"
COMMIT_TAG = "git.commit"
KIND_TAG = "job.kind"  # training | search | trial
BEST_TAG = "search.best_trial"


def git_commit() -> str:
    try:
        return provenance.revision()
    except provenance.ProvenanceError:
        return "unknown"


def local_image_tags(image: str, role: str = "train") -> dict[str, str]:
    """The local image's id and its inputs-digest label (empty when docker cannot say)."""
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}", image],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {f"image.{role}": image}
    if done.returncode:
        return {f"image.{role}": image}
    image_id, _, labels = done.stdout.strip().partition(" ")
    inputs = (json.loads(labels) or {}).get(provenance.INPUTS_LABEL, "")
    return {f"image.{role}": image, f"image.{role}.id": image_id, f"image.{role}.inputs_digest": inputs}


def pushed_image_tags(record: dict, role: str) -> dict[str, str]:
    """build/images.json's entry of a role: the digest reference and its inputs-digest label."""
    entry = record.get(role, {})
    return {
        f"image.{role}": entry.get("uri", ""),
        f"image.{role}.inputs_digest": entry.get("labels", {}).get(provenance.INPUTS_LABEL, ""),
    }


def find_training_run(client, model_uri: str) -> str | None:
    """The id of the training run that wrote model_uri (its MODEL_URI_TAG), in any experiment of the store."""
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`{MODEL_URI_TAG}` = '{model_uri}' and tags.`{KIND_TAG}` = 'training'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


class TrainingRun:
    """One MLflow run of a training job (or of a trial); metrics as the log passes, the model at the end."""

    def __init__(self, journal: Journal, key: str):
        self.journal, self.key = journal, key
        self._steps = EpochSteps()

    @classmethod
    def start(
        cls,
        journal: Journal,
        name: str,
        params: dict,
        tags: dict,
        parent: str | None = None,
    ) -> TrainingRun:
        key = journal.start_run(name, {COMMIT_TAG: git_commit(), JOB_TAG: name, **tags}, parent=parent)
        journal.log_params(key, params)
        return cls(journal, key)

    def on_metrics(self, values: dict[str, float]) -> None:
        for name, value, step in self._steps.points(values):
            self.journal.log_metric(self.key, name, value, step)

    def tapping(self):
        """sys.stdout read for metric lines while the job runs."""
        return tapping_stdout(self.on_metrics)

    def log_model(self, model_uri: str, model_tar: Path | None, staging: Path) -> None:
        """The model by its URI; metadata.json and evaluation.json from the local archive (staged in `staging`,
        which must outlive the sending), the runtimes' scores as metrics."""
        self.journal.set_tags(self.key, {MODEL_URI_TAG: model_uri})
        if model_tar is None or not Path(model_tar).is_file():
            return
        staging.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(model_tar) as tar:
                for name in (outputs.METADATA_FILE, outputs.EVALUATION_FILE):
                    member = tar.extractfile(name) if name in tar.getnames() else None
                    if member is not None:
                        (staging / name).write_bytes(member.read())
                        self.journal.log_artifact(self.key, staging / name)
        except (tarfile.TarError, OSError, KeyError) as err:
            print(f"warning: {model_tar}: its metadata was not tracked ({err})")
            return
        metadata_file = staging / outputs.METADATA_FILE
        if metadata_file.is_file():
            metadata = json.loads(metadata_file.read_text())
            step = self._steps.epoch
            for runtime, scores in metadata.get("runtimes", {}).items():
                for score in ("test_acc", "agreement"):
                    if isinstance(scores.get(score), int | float):
                        self.journal.log_metric(self.key, f"{runtime.replace('-', '_')}_{score}", scores[score], step)

    def log_files(self, *paths: Path | None, artifact_path: str | None = None) -> None:
        for path in paths:
            if path is not None and Path(path).exists():
                self.journal.log_artifact(self.key, Path(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.journal.end_run(self.key, status)


@contextlib.contextmanager
def run_ending(run: TrainingRun):
    """End the run FINISHED, or FAILED (KILLED on Ctrl-C) when the block raises."""
    try:
        yield run
    except KeyboardInterrupt:
        run.end("KILLED")
        raise
    except BaseException:
        run.end("FAILED")
        raise
    run.end("FINISHED")


@contextlib.contextmanager
def journal_session(journal: Journal | None = None):
    """A journal for one command (a fresh one unless given), closed at the end: what the store did not take is
    saved to a file then (the journal says where)."""
    own = journal is None
    journal = journal or Journal()
    try:
        yield journal
    finally:
        if own:
            journal.close()
