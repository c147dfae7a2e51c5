"""Sessions, names and the SDK settings every SageMaker call of the project carries.

Nothing here touches the process: no environment variable is set, no SDK config file is written. The
region is passed to every boto3 session explicitly (local mode needs one even though it calls no AWS API).
"""

from __future__ import annotations

import os

BASE_JOB_NAME = "image-classifier"
# Local mode has no region of its own; boto3 still wants one to build clients (no AWS call is made).
LOCAL_REGION = "us-east-1"
# The SDK's defaults config (the schema of `sagemaker.core.config`): without the opt-out, local mode
# calls STS GetCallerIdentity and posts telemetry to an AWS host, and logs a traceback offline.
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def boto_session(region: str | None = None):
    """A boto3 session in `region` (default: $AWS_REGION, else LOCAL_REGION for local-mode work)."""
    import boto3

    return boto3.Session(region_name=region or os.environ.get("AWS_REGION") or LOCAL_REGION)


def sagemaker_client(boto):
    """The SageMaker client sagemaker-core's resources use for this boto3 session (cached per session and
    region), for the calls that have no resource method or must be sent as written."""
    from sagemaker.core.utils.utils import SageMakerClient

    return SageMakerClient(session=boto, region_name=boto.region_name).sagemaker_client


def new_job_name(base: str = BASE_JOB_NAME, max_length: int = 63) -> str:
    """A unique name, <base>-<UTC timestamp to the millisecond>: the SDK's scheme (63 characters allowed
    for jobs and endpoints, 32 for tuning jobs; a base too long for the limit is cut)."""
    from sagemaker.core.common_utils import name_from_base

    return name_from_base(base, max_length=max_length)


def local_session(container_root=None, boto=None):
    """A local-mode session (sagemaker.core.local: SDK v2's local mode, ported to v3's core).

    container_root: where local mode makes its working folders (default: the system's temp folder).
    """
    from sagemaker.core.local import LocalSession

    session = LocalSession(boto_session=boto or boto_session(), sagemaker_config=NO_TELEMETRY)
    session.config = {
        "local": {"local_code": True, **({"container_root": str(container_root)} if container_root else {})}
    }
    return session
