"""Search hyperparameters over the training image: SageMaker's tuner on AWS, or the same search locally.

    python scripts/tune.py --local --data DIR --max-jobs N --output-dir DIR [--hp NAME=VALUE ...]
    python scripts/tune.py --data s3://BUCKET/PREFIX --max-jobs N --max-parallel-jobs M [--spot] [--no-wait]
    python scripts/tune.py --attach TUNING_JOB_NAME [--output-dir DIR]

The command lives in classifier_host.cli.tune (`--help` for every option).
"""

import sys

from classifier_host.cli import tune

if __name__ == "__main__":
    sys.exit(tune.main())
