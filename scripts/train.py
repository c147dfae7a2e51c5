"""Start a training job on the training image: SageMaker local mode here, SageMaker in the cloud.

`python scripts/train.py --help` lists its options; the command is classifier_host.cli.train.main
(also on the venv's PATH as `classifier-train`).
"""

import sys

from classifier_host.cli import train

if __name__ == "__main__":
    sys.exit(train.main())
