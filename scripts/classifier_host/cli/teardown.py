"""Delete what the cloud targets created and still costs money by the hour, and say what is left.

    python scripts/teardown.py [--endpoint NAME]      (make teardown)

Deletes the endpoint deploy.py recorded (or NAME): endpoint, its shadow tests, the endpoint configs and models
of its deployment and of each in-place update, scaling target and policies, the wake-up alarm of an async
endpoint that scales to zero and the rollback alarms of its updates. Leaves, and lists with the commands to
remove them: the S3 prefix (data, model artifacts, checkpoints, Debugger output, captured data, async
endpoints' requests, answers and failures) and the ECR images `make push` recorded. Training and tuning jobs cost
nothing once finished and cannot be deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import records, settings
from ..deployment import deletion
from ..settings import SettingsError
from . import errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="endpoint to delete (default: the one deploy.py recorded)")
    args = parser.parse_args(argv)
    try:
        cfg = settings.load()
    except SettingsError as err:
        return errors.fail(err, 2)
    status = 0
    name = args.endpoint or records.recorded("endpoint")
    if name:
        status = errors.run(lambda: deletion.delete_endpoint(name), errors.DELETION)
    else:
        print("no endpoint recorded (build/cloud/endpoint.txt): nothing billed by the hour to delete")
    print("\nleft in place (delete them yourself when you no longer need them):")
    if os.environ.get("S3_BUCKET"):
        cfg = settings.load("S3_BUCKET")
        prefix = cfg.s3_uri()
        async_parts = ", ".join(
            cfg.s3_uri(part) + "/" for part in (settings.ASYNC_INPUT, settings.ASYNC_OUTPUT, settings.ASYNC_FAILURES)
        )
        print(
            f"  S3 {prefix}/ (data, model artifacts, checkpoints, Debugger output, captured requests; and, "
            f"under it, async endpoints' requests, answers and failures: {async_parts}):\n"
            f"    aws s3 rm --recursive {prefix}/"
        )
    else:
        print(
            "  S3: the data and artifacts under s3://$S3_BUCKET/$S3_PREFIX, async endpoints' requests and "
            f"answers under its {settings.ASYNC_PREFIX}/ (S3_BUCKET is not set here)"
        )
    if settings.IMAGES_FILE.is_file():
        for role, entry in sorted(json.loads(settings.IMAGES_FILE.read_text()).items()):
            repository, _, digest = entry["uri"].partition("@")
            host, _, repo = repository.partition("/")
            where = "ECR" if ".dkr.ecr." in host else host
            print(f"  {where} image {entry.get('image', entry['uri'])} ({role}):")
            if where == "ECR":
                print(
                    f"    aws ecr batch-delete-image --region {cfg.region} --repository-name {repo} "
                    f"--image-ids imageDigest={digest}"
                )
    job = records.recorded("training-job")
    if job:
        print(f"  training job {job} (finished jobs cost nothing and cannot be deleted)")
    return status


if __name__ == "__main__":  # python -m classifier_host.cli.teardown
    sys.exit(main())
