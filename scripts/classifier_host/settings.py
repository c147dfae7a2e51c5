"""AWS settings of the cloud targets, read from the environment once and checked before any AWS call.

    AWS_REGION          region of every job, endpoint and repository (required)
    SAGEMAKER_ROLE_ARN  execution role SageMaker jobs and endpoints run as (required for train/deploy)
    S3_BUCKET           bucket for data, model artifacts, checkpoints, Debugger output, async endpoints'
                        requests and answers (required for train, deploy --async, querying an async endpoint)
    S3_PREFIX           key prefix inside the bucket (default: image-classifier)
    KMS_KEY_ID          optional KMS key for S3 output, volumes and endpoint storage
    SUBNETS             optional comma-separated subnet ids (jobs and models run in that VPC)
    SECURITY_GROUP_IDS  optional comma-separated security group ids (needed with SUBNETS)

Also the project's paths (ROOT, build/...): the one place that knows where the checkout is.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# The repository: build outputs, the Makefile (image names), reports live under it.
ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / "build" / "cloud"
IMAGES_FILE = ROOT / "build" / "images.json"
DEFAULT_PREFIX = "image-classifier"
# Async endpoints' traffic, under S3_PREFIX: query.py uploads requests to input/, SageMaker writes answers
# to output/ and errors to failures/ (deploy.py --async sets both); teardown.py lists the prefix with the rest.
ASYNC_PREFIX = "async"
ASYNC_INPUT = f"{ASYNC_PREFIX}/input"
ASYNC_OUTPUT = f"{ASYNC_PREFIX}/output"
ASYNC_FAILURES = f"{ASYNC_PREFIX}/failures"
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
        raise SettingsError(
            f"SAGEMAKER_ROLE_ARN={role!r} is not an IAM role ARN (expected arn:aws:iam::ACCOUNT:role/NAME)"
        )
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
