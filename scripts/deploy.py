"""Deploy a trained model.tar.gz on a serving image: SageMaker local mode here, a real-time endpoint in the cloud.

    python scripts/deploy.py --local --model-data file://build/output/model.tar.gz [--image IMAGE] [--gpu]
        SageMaker local mode: the endpoint answers on http://localhost:8080 until Ctrl-C (or SIGTERM),
        then its container is removed.
    ... --local --model-data ... --query IMAGE|DIR ...
        deploy, classify those images (as scripts/query.py does) against the endpoint, tear down (make demo).
    python scripts/deploy.py [--training-job NAME | --model-data s3://.../model.tar.gz]
        [--instance-type ml.m5.xlarge] [--instance-count 1] [--autoscale MIN:MAX] [--invocations-per-instance N]
        [--data-capture] [--endpoint-name NAME] [--network-isolation]               (cloud)
    python scripts/deploy.py --delete [NAME]

The command lives in classifier_host.cli.deploy (`--help` for every option).
"""

import sys

from classifier_host.cli import deploy

if __name__ == "__main__":
    sys.exit(deploy.main())
