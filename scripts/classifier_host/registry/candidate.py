"""A model to register: its archive fetched (a local path, s3://, or a training job's model), checked to be
this project's artifact, and evaluated on a labelled folder the way the trainer and a CPU endpoint do it
(reports/evaluation.py: the runtime `auto` serves). The evaluation files are written before anything is
registered, so no version exists without its evaluation."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from classifier.contract import outputs

from ..data import fingerprint
from .gate import RegistryError

EVALUATION_PAGE = "evaluation.html"


@dataclass(frozen=True)
class Evaluated:
    model_uri: str  # as the registry records it: an absolute path or s3://
    metadata: dict
    result: dict  # classifier/model/evaluation.py's, on `folder`
    runtime: str | None  # what `auto` serves (passes the serving gate); None when nothing does
    folder: Path
    folder_fingerprint: fingerprint.Fingerprint
    files: tuple[Path, Path]  # evaluation.json, evaluation.html

    @property
    def top1(self) -> float:
        return float(self.result["top1"])


def local_archive(model_data: str, scratch: Path, s3_client=None) -> tuple[str, Path]:
    """(the model's URI as recorded, a local model.tar.gz): a path as given, s3:// downloaded into scratch."""
    if model_data.startswith("s3://"):
        if s3_client is None:
            raise RegistryError(f"--model-data {model_data}: an s3:// model needs AWS settings (AWS_REGION)")
        from ..data.s3 import parse_s3_uri

        bucket, key = parse_s3_uri(model_data)
        archive = scratch / "model.tar.gz"
        try:
            s3_client.download_file(bucket, key, str(archive))
        except Exception as err:  # botocore's ClientError and friends: say which object
            raise RegistryError(f"--model-data {model_data}: could not download it ({err})") from None
        return model_data, archive
    path = Path(model_data)
    if not path.is_file():
        raise RegistryError(f"--model-data {model_data}: no such file")
    return str(path.resolve()), path


def read_metadata(archive: Path, where: str) -> dict:
    """metadata.json of a model.tar.gz; RegistryError when the file is not this project's model artifact."""
    from classifier.model import artifact

    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile(outputs.METADATA_FILE)
            metadata = json.loads(member.read())
        return artifact.check_metadata(metadata, f"{where}: {outputs.METADATA_FILE}")
    except KeyError:
        raise RegistryError(f"{where} is not a model artifact: it has no {outputs.METADATA_FILE}") from None
    except (tarfile.TarError, OSError, EOFError) as err:
        raise RegistryError(f"{where} is not a model artifact (not a readable model.tar.gz: {err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise RegistryError(f"{where} is not a model artifact: unreadable {outputs.METADATA_FILE} ({err})") from None
    except artifact.ArtifactError as err:
        raise RegistryError(f"{where} is not a model artifact this code serves: {err}") from None


def evaluate(model_uri: str, archive: Path, folder: Path, out: Path) -> Evaluated:
    """The model's evaluation on `folder` (a folder per class, named as the model's classes), written to `out`."""
    from classifier.model import selection

    from ..reports import evaluation_page
    from ..reports.evaluation import EvaluationError, evaluate, model_folder

    metadata = read_metadata(archive, model_uri)
    folder = Path(folder)
    if not folder.is_dir():
        raise RegistryError(f"--evaluate-on {folder}: no such folder")
    unpacked = out / "model"
    unpacked.mkdir(parents=True, exist_ok=True)
    try:
        model_dir = model_folder(archive, unpacked)
        candidates, notes = selection.plan(model_dir, metadata, selection.Gate())
        if not candidates:
            raise RegistryError(f"{model_uri}: no runtime passes the serving gate ({'; '.join(notes)})")
        result = evaluate(model_dir, folder, candidates[0])
    except EvaluationError as err:
        raise RegistryError(str(err).replace("--data", "--evaluate-on")) from None
    files = (out / outputs.EVALUATION_FILE, out / EVALUATION_PAGE)
    files[0].write_text(json.dumps(result) + "\n")
    files[1].write_text(evaluation_page.render(result, f"Evaluation of {model_uri} on {folder}", folder))
    return Evaluated(model_uri, metadata, result, candidates[0], folder, fingerprint.of_folder(folder), files)
