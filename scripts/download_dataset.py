"""Download the Udacity dog-breed set (dogImages.zip) and upload it to S3 for cloud runs.

    python scripts/download_dataset.py --s3 s3://BUCKET/dog-breeds [--workdir build/dogImages]

Leaves train/ valid/ test/ under the S3 prefix, the layout the trainer reads from one `training`
channel. The download needs the internet (not available on our CI machines); the upload is tested
against moto.
"""
from __future__ import annotations

import argparse
import sys
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DATASET_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or not uri[5:].strip("/"):
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://BUCKET/PREFIX)")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def download(url: str, workdir: Path) -> Path:
    """Fetch and unpack the archive once; returns the folder holding train/ valid/ test/."""
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / Path(url).name
    if not archive.exists():
        print(f"downloading {url} ...")
        partial = archive.with_suffix(".part")
        urllib.request.urlretrieve(url, partial)
        partial.rename(archive)
    root = workdir / "dogImages"
    if not (root / "train").is_dir():
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(workdir)
    return root


def upload_folder(client, local: Path, bucket: str, prefix: str, workers: int = 16) -> int:
    """Upload every file under `local` to s3://bucket/prefix/<relative path>; returns the count."""
    files = [p for p in sorted(local.rglob("*")) if p.is_file() and not p.name.startswith(".")]

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(local).as_posix()}" if prefix else path.relative_to(local).as_posix()
        client.upload_file(str(path), bucket, key)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, files))
    return len(files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3", required=True, help="destination, s3://BUCKET/PREFIX")
    parser.add_argument("--workdir", type=Path, default=Path("build/dogImages"))
    parser.add_argument("--url", default=DATASET_URL)
    args = parser.parse_args()
    try:
        bucket, prefix = parse_s3_uri(args.s3)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import boto3

    root = download(args.url, args.workdir)
    count = upload_folder(boto3.client("s3"), root, bucket, prefix)
    print(f"uploaded {count} files to s3://{bucket}/{prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
