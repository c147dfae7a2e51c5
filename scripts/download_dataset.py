"""Download the Udacity dog-breed set (dogImages.zip) and upload it to S3 for cloud runs.

`python scripts/download_dataset.py --help` lists its options; the command is classifier_host.cli.download_dataset.main
(also on the venv's PATH as `classifier-download-dataset`).
"""

import sys

from classifier_host.cli import download_dataset

if __name__ == "__main__":
    sys.exit(download_dataset.main())
