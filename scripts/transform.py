"""Classify every image under a folder or an S3 prefix with a trained model, without an endpoint.

    python scripts/transform.py --local --model-data build/output/model.tar.gz --input DIR --output DIR
    python scripts/transform.py --input s3://BUCKET/PREFIX --output DIR [--training-job NAME] ...   (cloud)

The command lives in classifier_host.cli.transform (`--help` for every option).
"""

import sys

from classifier_host.cli import transform

if __name__ == "__main__":
    sys.exit(transform.main())
