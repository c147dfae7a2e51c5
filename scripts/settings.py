"""AWS settings of the cloud targets, read from the environment once and checked before any AWS call.

    AWS_REGION          region of every job, endpoint and repository (required)
    SAGEMAKER_ROLE_ARN  execution role SageMaker jobs and endpoints run as (required for train/deploy)
    S3_BUCKET           bucket for data, model artifacts, checkpoints, Debugger output (required for train)
    S3_PREFIX           key prefix inside the bucket (default: image-classifier)
    KMS_KEY_ID          optional KMS key for S3 output, volumes and endpoint storage
    SUBNETS             optional comma-separated subnet ids (jobs and models run in that VPC)
    SECURITY_GROUP_IDS  optional comma-separated security group ids (needed with SUBNETS)

The files under build/cloud/ record what the cloud scripts created (job, endpoint), so deploy.py finds
the last training job, query.py the last endpoint and teardown.py what to delete.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / "build" / "cloud"
IMAGES_FILE = ROOT / "build" / "images.json"
DEFAULT_PREFIX = "image-classifier"
# scripts/train.py --debugger: SageMaker Debugger, the project's own hook and rules, or neither.
DEBUGGER_MODES = ("sagemaker", "project", "off")

REQUIRED_HELP = {
    "AWS_REGION": "the AWS region to work in, e.g. export AWS_REGION=us-east-1",
    "SAGEMAKER_ROLE_ARN": "the ARN of the SageMaker execution role (README: 'IAM'), "
                          "e.g. arn:aws:iam::123456789012:role/image-classifier-sagemaker",
    "S3_BUCKET": "an S3 bucket in AWS_REGION for data and model artifacts, e.g. export S3_BUCKET=my-bucket",
}
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")


class SettingsError(ValueError):
    """A missing or malformed setting; the message names the variable and how to set it."""


@dataclass(frozen=True)
class Settings:
    region: str
    role_arn: str | None
    bucket: str | None
    prefix: str
    kms_key_id: str | None
    subnets: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    def s3_uri(self, *parts: str) -> str:
        """s3://BUCKET/PREFIX/part/part..."""
        keys = [p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/")]
        return "s3://" + "/".join([self.bucket, *keys])

    @property
    def vpc_config(self) -> dict[str, list[str]] | None:
        if not self.subnets:
            return None
        return {"Subnets": list(self.subnets), "SecurityGroupIds": list(self.security_group_ids)}


def load(*required: str, env: dict[str, str] | None = None) -> Settings:
    """Read the settings; every name in `required` (and AWS_REGION) must be set, else SettingsError
    naming all the missing ones at once."""
    env = os.environ if env is None else env
    names = ("AWS_REGION", *required)
    unknown = [n for n in names if n not in REQUIRED_HELP]
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known: {sorted(REQUIRED_HELP)}")
    missing = [n for n in dict.fromkeys(names) if not env.get(n, "").strip()]
    if missing:
        lines = [f"  {n}: {REQUIRED_HELP[n]}" for n in missing]
        raise SettingsError("missing AWS setting(s) " + ", ".join(missing) + ":\n" + "\n".join(lines))
    role = env.get("SAGEMAKER_ROLE_ARN", "").strip() or None
    if role and not ROLE_ARN.match(role):
        raise SettingsError(f"SAGEMAKER_ROLE_ARN={role!r} is not an IAM role ARN "
                            "(expected arn:aws:iam::ACCOUNT:role/NAME)")
    bucket = env.get("S3_BUCKET", "").strip().removeprefix("s3://").strip("/") or None
    if bucket and "/" in bucket:
        raise SettingsError(f"S3_BUCKET={bucket!r} must be a bucket name only; put the key prefix in S3_PREFIX")
    subnets = _split(env.get("SUBNETS", ""))
    groups = _split(env.get("SECURITY_GROUP_IDS", ""))
    if bool(subnets) != bool(groups):
        raise SettingsError("SUBNETS and SECURITY_GROUP_IDS go together: set both (comma-separated ids) or neither")
    return Settings(
        region=env["AWS_REGION"].strip(),
        role_arn=role,
        bucket=bucket,
        prefix=env.get("S3_PREFIX", DEFAULT_PREFIX).strip().strip("/"),
        kms_key_id=env.get("KMS_KEY_ID", "").strip() or None,
        subnets=subnets,
        security_group_ids=groups,
    )


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# ---- what the cloud scripts created (plain text files under build/cloud/) ----

def record(name: str, value: str, state_dir: Path | None = None) -> Path:
    """Remember a created resource (e.g. record('training-job', NAME)); returns the file."""
    folder = state_dir or STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    path.write_text(value + "\n")
    return path


def recorded(name: str, state_dir: Path | None = None) -> str | None:
    path = (state_dir or STATE_DIR) / f"{name}.txt"
    return path.read_text().strip() or None if path.is_file() else None


def forget(name: str, state_dir: Path | None = None) -> None:
    ((state_dir or STATE_DIR) / f"{name}.txt").unlink(missing_ok=True)



# ---- the image digests `make push` recorded (build/images.json) ----

def cloud_image(given: str | None, role: str) -> str:
    """--image when it names a registry (ECR...), else the digest `make push` recorded for `role`:
    a local name (TRAIN_IMAGE / SERVE_IMAGE / SERVE_CPU_IMAGE from the Makefile) cannot run in the cloud."""
    if given and "/" in given and "." in given.split("/")[0]:
        return given
    return pushed_image(role)


def pushed_image(role: str, images_file: Path | None = None) -> str:
    """The digest reference `make push` recorded for `role` ('train', 'serve' or 'serve-cpu')."""
    path = images_file or IMAGES_FILE
    if not path.is_file():
        raise SettingsError(f"{path} is missing: run `make build push` first (it records the pushed image digests)")
    images = json.loads(path.read_text())
    if role not in images:
        raise SettingsError(f"{path} has no '{role}' image (it has {', '.join(images) or 'none'}): run `make push`")
    return images[role]["uri"]

if __name__ == "__main__":  # `python scripts/settings.py recorded endpoint` (the Makefile's cloud targets)
    import sys

    if len(sys.argv) != 3 or sys.argv[1] not in ("recorded", "pushed"):
        sys.exit("usage: settings.py recorded NAME | settings.py pushed ROLE")
    if sys.argv[1] == "pushed":  # the digest reference of the pushed 'train', 'serve' or 'serve-cpu' image
        try:
            print(pushed_image(sys.argv[2]))
        except SettingsError as err:
            sys.exit(f"error: {err}")
        sys.exit(0)
    value = recorded(sys.argv[2])
    if not value:
        sys.exit(f"error: no {sys.argv[2]} recorded in {STATE_DIR}/ (run the cloud target that creates it first)")
    print(value)
