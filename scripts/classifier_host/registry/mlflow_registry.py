"""register.py's local registry: MLflow's model registry on the tracking store (build/mlflow/ by default).

One registered model (REGISTERED_MODEL) owned by this project (a tag says so: a model of that name without it
is someone else's and is left alone); one version per registered archive, its source the archive's URI (not
copied), with tags for the evaluation, provenance and the verdict; the alias `champion` on the promoted one.
Each registration also makes an MLflow run holding the evaluation files and linking the training run."""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass

from ..tracking import runs, store
from .candidate import Evaluated
from .gate import RegistryError, Rule, Verdict

REGISTERED_MODEL = "image-classifier"
CHAMPION = "champion"
OWNER_TAG, OWNER = "classifier.owner", "sagemaker-image-classifier"
# Version tags the registry itself reads back.
TOP1, FOLDER_FINGERPRINT, FOLDER, RUNTIME, STATUS = (
    "evaluation.top1",
    "evaluation.fingerprint",
    "evaluation.folder",
    "runtime.served",
    "status",
)


@dataclass(frozen=True)
class Registered:
    version: str
    champion: bool
    reason: str

    def line(self) -> str:
        return json.dumps({"version": str(self.version), "champion": self.champion, "reason": self.reason})


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class MlflowRegistry:
    def __init__(self, uri: str | None = None, name: str = REGISTERED_MODEL):
        self.uri, self.name = uri or store.tracking_uri(), name
        try:
            self.client = store.client(self.uri)
            self._model = self._owned_model()
        except RegistryError:
            raise
        except Exception as err:  # an unreachable or broken store: nothing was registered
            raise RegistryError(f"the MLflow registry at {self.uri} cannot be used: {first_line(err)}") from None

    def _owned_model(self):
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return self.client.create_registered_model(
                self.name, tags={OWNER_TAG: OWNER}, description="Image classifiers registered by register.py"
            )
        if model.tags.get(OWNER_TAG) != OWNER:
            raise RegistryError(
                f"registered model {self.name!r} in {self.uri} is in use by something else (it has no "
                f"{OWNER_TAG}={OWNER} tag): choose another name with --registry-name"
            )
        return model

    # ---- reading ----

    def version(self, version: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(self.name, str(version))
        except MlflowException:
            raise RegistryError(f"{self.name} has no version {version!r} (see make mlflow-ui)") from None

    def champion(self):
        """The champion's model version, or None before the first promotion."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.name, CHAMPION)
        except MlflowException:
            return None

    def resolve(self, reference: str):
        """`champion` or a version number -> that model version."""
        if reference == CHAMPION:
            found = self.champion()
            if found is None:
                raise RegistryError(f"{self.name} has no champion yet: register a model first (register.py)")
            return found
        if not reference.isdigit():
            raise RegistryError(f"--model {reference!r}: give 'champion' or a version number of {self.name}")
        return self.version(reference)

    # ---- writing ----

    def register(self, candidate: Evaluated, verdict: Verdict, extra_tags: dict[str, str]) -> Registered:
        """A run with the evaluation, then one version with every tag in the same call (no version without its
        evaluation), then the alias when it is the new champion."""
        training_run = runs.find_training_run(self.client, candidate.model_uri)
        experiment = store.experiment_id(self.client, store.EXPERIMENT, self.uri)
        run = self.client.create_run(
            experiment,
            run_name=f"register {candidate.model_uri.rsplit('/', 2)[-2] if '/' in candidate.model_uri else ''}",
            tags={runs.KIND_TAG: "registration", runs.MODEL_URI_TAG: candidate.model_uri}
            | ({"training.run_id": training_run} if training_run else {}),
        )
        run_id = run.info.run_id
        try:
            for path in candidate.files:
                self.client.log_artifact(run_id, str(path))
            self.client.log_metric(run_id, "evaluation_top1", candidate.top1)
            self.client.log_metric(run_id, "evaluation_top5", float(candidate.result["top5"]))
            tags = {
                TOP1: f"{candidate.top1:.6f}",
                FOLDER: str(candidate.folder.resolve()),
                FOLDER_FINGERPRINT: candidate.folder_fingerprint.digest,
                RUNTIME: candidate.runtime or "none",
                STATUS: CHAMPION if verdict.champion else "candidate",
                "verdict.reason": verdict.reason[:5000],
                "verdict.by": who(),
                "verdict.at": now(),
                "model.name": candidate.metadata.get("model_name", ""),
                "model.classes": str(len(candidate.metadata["classes"])),
                "hyperparameters": json.dumps(candidate.metadata.get("hyperparameters", {}), sort_keys=True)[:5000],
                **extra_tags,
            }
            version = self.client.create_model_version(
                self.name, candidate.model_uri, run_id=training_run or run_id, tags=tags, description=verdict.reason
            )
        except Exception as err:
            self.client.set_terminated(run_id, "FAILED")
            raise RegistryError(
                f"registering {candidate.model_uri} failed, nothing registered: {first_line(err)}"
            ) from None
        try:
            if verdict.champion:
                self.client.set_registered_model_alias(self.name, CHAMPION, version.version)
        except Exception as err:
            self.client.delete_model_version(self.name, version.version)
            self.client.set_terminated(run_id, "FAILED")
            raise RegistryError(
                f"promoting {candidate.model_uri} failed, nothing registered: {first_line(err)}"
            ) from None
        self.client.set_tag(run_id, "registry.version", version.version)
        self.client.set_terminated(run_id, "FINISHED")
        return Registered(version.version, verdict.champion, verdict.reason)

    def approve(self, version: str, reason: str) -> Registered:
        """A person's promotion: VERSION becomes the champion, whatever the gate said."""
        found = self.version(version)
        self.client.set_registered_model_alias(self.name, CHAMPION, found.version)
        self._decided(found.version, CHAMPION, "approved", reason)
        return Registered(found.version, True, f"approved by {who()}: {reason}")

    def reject(self, version: str, reason: str) -> Registered:
        found = self.version(version)
        champion = self.champion()
        if champion is not None and champion.version == found.version:
            raise RegistryError(
                f"version {found.version} is the champion: approve another version first (--approve VERSION)"
            )
        self._decided(found.version, "rejected", "rejected", reason)
        return Registered(found.version, False, f"rejected by {who()}: {reason}")

    def _decided(self, version: str, status: str, action: str, reason: str) -> None:
        for key, value in {
            STATUS: status,
            f"{action}.by": who(),
            f"{action}.at": now(),
            f"{action}.reason": reason,
        }.items():
            self.client.set_model_version_tag(self.name, version, key, value)


def champion_standing(registry: MlflowRegistry, candidate: Evaluated, reevaluate) -> tuple[float | None, str | None]:
    """The champion's top-1 on the candidate's evaluation folder: its recorded one when it was evaluated on the
    same folder (same fingerprint), else `reevaluate(model_uri)` there."""
    champion = registry.champion()
    if champion is None:
        return None, None
    if champion.tags.get(FOLDER_FINGERPRINT) == candidate.folder_fingerprint.digest and TOP1 in champion.tags:
        return float(champion.tags[TOP1]), champion.version
    print(
        f"the champion (v{champion.version}) was evaluated on another folder "
        f"({champion.tags.get(FOLDER, '?')}): evaluating it on {candidate.folder}"
    )
    return reevaluate(champion.source).top1, champion.version


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


__all__ = ["MlflowRegistry", "Registered", "Rule", "champion_standing"]
