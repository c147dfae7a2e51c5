"""Download the Udacity dog-breed set (dogImages.zip) and upload it to S3 for cloud runs.

python scripts/download_dataset.py --s3 s3://BUCKET/dog-breeds [--workdir build/dogImages]
"""

import sys

from classifier_host.cli import download_dataset

if __name__ == "__main__":
    sys.exit(download_dataset.main())
