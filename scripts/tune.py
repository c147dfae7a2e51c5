"""Search hyperparameters over the training image: SageMaker's tuner on AWS, or the same search locally.

`python scripts/tune.py --help` lists its options; the command is classifier_host.cli.tune.main
(also on the venv's PATH as `classifier-tune`).
"""

import sys

from classifier_host.cli import tune

if __name__ == "__main__":
    sys.exit(tune.main())
