"""Start a training job on the training image: SageMaker local mode here, SageMaker in the cloud.

    python scripts/train.py --local --data DIR --output-dir DIR [--hp NAME=VALUE ...] [--gpu]
                            [--hyperparameters-file best_hyperparameters.json]   (from scripts/tune.py)
                            [--instance-count N] [--checkpoint-dir DIR]   (multi-instance; resumable)
    python scripts/train.py --data DIR|s3://... --output-dir DIR [--hp ...] [--instance-type ml.g5.xlarge]
        [--instance-count 1] [--spot] [--max-run S] [--max-wait S] [--network-isolation]
        [--debugger sagemaker|project|off]                                      (cloud)

The command lives in classifier_host.cli.train (`--help` for every option).
"""

import sys

from classifier_host.cli import train

if __name__ == "__main__":
    sys.exit(train.main())
