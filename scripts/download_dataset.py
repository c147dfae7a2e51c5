"""Download the Udacity dog-breed set (dogImages.zip) and upload it to S3 for cloud runs.

    python scripts/download_dataset.py --s3 s3://BUCKET/dog-breeds [--workdir build/dogImages]

Leaves train/ valid/ test/ under the S3 prefix, the layout the trainer reads from one `training`
channel. The download needs the internet (not available on our CI machines); the upload is tested
against moto.
"""
from __future__ import annotations

import argparse
import hashlib
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


# The checksum the project stores in each object's metadata: ETags are not MD5s under KMS or multipart.
CHECKSUM_KEY = "sha256"


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def upload_folder(client, local: Path, bucket: str, prefix: str, workers: int = 16,
                  kms_key_id: str | None = None) -> int:
    """Upload every file under `local` to s3://bucket/prefix/<relative path>; returns how many went up.

    A file already there with the same size and the same sha256 in its metadata is skipped, so a
    second upload of the same folder sends nothing.
    """
    files = [p for p in sorted(local.rglob("*")) if p.is_file() and not p.name.startswith(".")]

    def key_of(path: Path) -> str:
        rel = path.relative_to(local).as_posix()
        return f"{prefix}/{rel}" if prefix else rel

    existing = {}  # key -> size, one listing instead of a HEAD per file
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        existing.update((o["Key"], o["Size"]) for o in page.get("Contents", []))
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}

    def put(path: Path) -> bool:
        key, checksum = key_of(path), sha256_of(path)
        if existing.get(key) == path.stat().st_size:
            stored = client.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(CHECKSUM_KEY)
            if stored == checksum:
                return False
        client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {CHECKSUM_KEY: checksum}, **extra})
        return True

    with ThreadPoolExecutor(workers) as pool:
        sent = sum(pool.map(put, files))
    if len(files) > sent:
        print(f"skipped {len(files) - sent} files already in s3://{bucket}/{prefix} (same size and sha256)")
    return sent


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
