"""Deploy a trained model.tar.gz on a serving image: SageMaker local mode here, a real-time endpoint in the cloud.

`python scripts/deploy.py --help` lists its options; the command is classifier_host.cli.deploy.main
(also on the venv's PATH as `classifier-deploy`).
"""

import sys

from classifier_host.cli import deploy

if __name__ == "__main__":
    sys.exit(deploy.main())
