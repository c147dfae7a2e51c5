"""Push the built images to ECR (default) or to any registry, and record their digests, labels and SBOMs.

    python scripts/push_images.py [--registry HOST:PORT] [--output build/images.json] ROLE=IMAGE ...
    e.g. push_images.py train=sagemaker-image-classifier-train:3f2a... serve=sagemaker-image-classifier-serve:3f2a...

ECR: the account comes from STS, the region from AWS_REGION. --registry HOST:PORT pushes there instead
(login with REGISTRY_USER / REGISTRY_PASSWORD when set). A tag is never overwritten: images/push.py says
how a push decides, and what --output records.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..images.provenance import ProvenanceError
from ..images.push import Docker, EcrRegistry, PlainRegistry, parse_images, push, write_record
from ..settings import IMAGES_FILE, SettingsError, load
from .errors import exit_status


def main(argv: list[str] | None = None, docker: Docker | None = None, boto_session=None) -> int:
    """docker and boto_session: what the tests put in place of the docker CLI and AWS."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", metavar="ROLE=IMAGE")
    parser.add_argument("--registry", help="HOST:PORT of a registry to push to instead of ECR")
    parser.add_argument("--output", type=Path, default=IMAGES_FILE, help="digest record (default build/images.json)")
    args = parser.parse_args(argv)

    def push_and_record() -> None:
        images = parse_images(args.images)
        if args.registry:
            registry = PlainRegistry(
                args.registry, os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD")
            )
        else:
            region = load().region  # AWS_REGION, before any AWS call
            import boto3

            session = boto_session or boto3.Session(region_name=region)
            registry = EcrRegistry(session.client("ecr"), session.client("sts"), region)
        write_record(push(images, registry, docker or Docker(), args.output.parent), args.output)
        print(f"digests written to {args.output}")

    return exit_status(push_and_record, (ProvenanceError, SettingsError))


if __name__ == "__main__":  # python -m classifier_host.cli.push_images
    sys.exit(main())
