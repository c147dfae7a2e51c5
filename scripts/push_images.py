"""Push the built images to ECR (default) or to any registry, and record their digests, labels and SBOMs.

`python scripts/push_images.py --help` lists its options; the command is classifier_host.cli.push_images.main
(also on the venv's PATH as `classifier-push-images`).
"""

import sys

from classifier_host.cli import push_images

if __name__ == "__main__":
    sys.exit(push_images.main())
