"""Download the Udacity dog-breed set (dogImages.zip) and upload it to S3 for cloud runs.

    python scripts/download_dataset.py --s3 s3://BUCKET/dog-breeds [--workdir build/dogImages]

Leaves train/ valid/ test/ under the S3 prefix, the layout the trainer reads from one `training`
channel. The download needs the internet (not available on our CI machines); the upload is tested
against moto.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.download import DATASET_URL, download
from ..data.s3 import parse_s3_uri, upload_folder
from . import errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3", required=True, help="destination, s3://BUCKET/PREFIX")
    parser.add_argument("--workdir", type=Path, default=Path("build/dogImages"))
    parser.add_argument("--url", default=DATASET_URL)
    args = parser.parse_args(argv)
    try:
        bucket, prefix = parse_s3_uri(args.s3)
    except ValueError as err:
        return errors.fail(err, 2)
    import boto3

    root = download(args.url, args.workdir)
    count = upload_folder(boto3.client("s3"), root, bucket, prefix)
    print(f"uploaded {count} files to s3://{bucket}/{prefix}")
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.download_dataset
    sys.exit(main())
