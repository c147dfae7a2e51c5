"""Classify every image under a folder or an S3 prefix with a trained model, without an endpoint.

`python scripts/transform.py --help` lists its options; the command is classifier_host.cli.transform.main
(also on the venv's PATH as `classifier-transform`).
"""

import sys

from classifier_host.cli import transform

if __name__ == "__main__":
    sys.exit(transform.main())
