"""Push the built images to ECR (default) or to any registry, and record their digests, labels and SBOMs.

python scripts/push_images.py [--registry HOST:PORT] [--output build/images.json] ROLE=IMAGE ...
e.g. push_images.py train=sagemaker-image-classifier-train:3f2a... serve=sagemaker-image-classifier-serve:3f2a...
"""

import sys

from classifier_host.cli import push_images

if __name__ == "__main__":
    sys.exit(push_images.main())
