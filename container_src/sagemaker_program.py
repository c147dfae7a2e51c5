"""SAGEMAKER_PROGRAM of the training image (copied to /opt/ml/code/train.py).

sagemaker-training also passes the hyperparameters as --name value arguments; the trainer reads
hyperparameters.json instead, so it sees them exactly as SageMaker delivered them.
"""

import sys

from classifier.training.trainer import main

sys.exit(main())
